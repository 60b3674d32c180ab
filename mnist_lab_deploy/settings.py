"""The deployment's settings: written once, in ``hub/.env``, and read from there by every mode.

As in DockerSpawner's examples: compose reads ``hub/.env`` and passes each value on as ``${VAR}`` without a default
(a missing one stops compose with its name), and the code reads ``os.environ["VAR"]``. The standalone mode gets the
same values through the ``.env`` that ``make_env`` writes from this file; the Kubernetes values are checked against
it (:mod:`.kube`); the tests read it too. So the memory limit, the CUDA version or the port is one line here.

>>> parse("# a comment\\nCUDA=cu126\\n\\nHUB_URL=\\n")
{'CUDA': 'cu126', 'HUB_URL': ''}
"""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "hub" / ".env"
# What a standalone .env takes from hub/.env: the image and each container's limits.
SHARED = ("BASE_IMAGE", "CUDA", "JUPYTER_PORT", "MEM_LIMIT", "CPUS", "PIDS_LIMIT", "SHM_SIZE")


def parse(text):
    """``NAME=value`` lines as compose reads a ``.env`` (comments and blank lines skipped), in order."""
    return dict(line.split("=", 1) for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))


def load(path=SOURCE):
    """The settings of ``path`` (``hub/.env``)."""
    return parse(Path(path).read_text())
