"""Docker HEALTHCHECK: healthy when the Jupyter server answers.

Standalone: an authenticated request with JUPYTER_TOKEN. Spawned by the hub: the server's own version endpoint
under its prefix (/user/NAME/api); the hub checks the login itself, and the server's token is not a user's.
"""

import os
import sys
import urllib.request

prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX")
if prefix:
    request = urllib.request.Request(f"http://127.0.0.1:8888{prefix}api")
else:
    request = urllib.request.Request("http://127.0.0.1:8888/api/status",
                                     headers={"Authorization": f"token {os.environ.get('JUPYTER_TOKEN', '')}"})
try:
    urllib.request.urlopen(request, timeout=4)
except Exception as e:  # noqa: BLE001 -- any failure means unhealthy
    sys.exit(f"unhealthy: {e}")
