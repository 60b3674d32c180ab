"""Docker HEALTHCHECK: healthy when the Jupyter server of this container answers where it says it listens.

As Jupyter Docker Stacks' health check: a running server writes its own state (``jpserver-PID.json``: port,
base URL...) into Jupyter's runtime folder; the check asks that port and base URL for ``api`` (the version, which
needs no login), in either mode (standalone, or under the hub's /user/NAME/ prefix). A file left by a server that
is gone (a restarted container) is not a running server.
"""

import json
import os
import sys
import urllib.request
from pathlib import Path

from jupyter_core.paths import jupyter_runtime_dir


def running_servers(runtime):
    """The state of each Jupyter server in ``runtime`` whose process is alive."""
    servers = []
    for path in sorted(Path(runtime).glob("jpserver-*.json")):
        try:
            state = json.loads(path.read_text())
            os.kill(int(state["pid"]), 0)
        except PermissionError:
            pass  # alive, another user's
        except (OSError, ValueError, KeyError):
            continue
        servers.append(state)
    return servers


def main():
    servers = running_servers(jupyter_runtime_dir())
    if not servers:
        return f"unhealthy: no running Jupyter server in {jupyter_runtime_dir()}"
    state = servers[-1]
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{state['port']}{state['base_url']}api", timeout=4)
    except Exception as e:  # noqa: BLE001 -- any failure means unhealthy
        return f"unhealthy: {e}"
    return 0


if __name__ == "__main__":
    sys.exit(main())
