"""Write the two lock files, so that two builds on different days install the same packages:

- ``docker/requirements.lock``: the lesson image's packages (requirements.txt, plus the hub's JupyterHub version for
  ``jupyterhub-singleuser``), every one pinned. PyTorch, torchvision and their CUDA packages (triton, nvidia-*,
  cuda-*) are left out: the Dockerfile pins torch and torchvision itself and installs them from the CUDA index it
  is given, constrained by this lock for what they share with the lesson (numpy, pillow, sympy...).
- ``hub/requirements.lock``: the hub's packages (hub/requirements.txt), every one pinned.

Both images install their lock with ``pip install --no-deps`` (nothing is resolved at build time) and then run
``pip check``. After changing requirements.txt or hub/requirements.txt:

    python3 -m mnist_lab_deploy.lock   # Python 3.11 on Linux x86-64, as in the images; then rebuild and run the tests

Standard library and pip only (pip resolves without installing: ``pip install --dry-run --report``).
"""

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from .usage import Parser

REPO = Path(__file__).resolve().parents[1]
# The oldest Python the images run: Debian bookworm's 3.11.2 (CI builds them on a bookworm stand-in); the pinned
# base image has 3.11.11. Resolving for the oldest keeps out releases that need a newer 3.11 (soupsieve 4.1 does).
PYTHON = "3.11.2"
# Resolving for another Python takes wheels only: the few projects published as source only are built into
# wheels first (pure Python; the images build them the same way).
SOURCE_ONLY = ("onetimepass",)  # NativeAuthenticator's
LEFT_TO_THE_TORCH_INDEX = ("torch", "torchvision", "triton", "nvidia-", "cuda-")


def normalized(name):
    """A project's name as pip compares it (PEP 503): lower case, runs of -, _ and . as one -.

    >>> normalized("Jupyter_Server.Terminals")
    'jupyter-server-terminals'
    """
    return re.sub(r"[-_.]+", "-", name).lower()


def resolved(*requirements):
    """Return ``{name: version}`` of everything pip would install for ``requirements`` into an empty environment."""
    with tempfile.TemporaryDirectory() as tmp:
        report, wheels = Path(tmp) / "report.json", Path(tmp) / "wheels"
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels),
                        *SOURCE_ONLY], check=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                        "--python-version", PYTHON, "--only-binary", ":all:", "--find-links", str(wheels),
                        "--target", str(Path(tmp) / "target"), "--report", str(report), *requirements], check=True)
        return {normalized(item["metadata"]["name"]): item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]}


def jupyterhub_pin(hub_requirements):
    """The ``jupyterhub==X`` line of hub/requirements.txt: the one place JupyterHub's version is chosen."""
    (line,) = [line.split("#")[0].strip() for line in hub_requirements.read_text().splitlines()
               if normalized(line.split("=")[0].strip()) == "jupyterhub"]
    return line


def lock_text(versions, source):
    """The lock: one ``name==version`` per line, sorted, the torch family left out.

    >>> print(lock_text({"torch": "2.7.1", "numpy": "2.3.0", "nvidia-cublas": "12"}, "x.txt"), end="")
    # Made by `python3 -m mnist_lab_deploy.lock` from x.txt (Python 3.11.2, Linux x86-64). Do not edit by hand.
    numpy==2.3.0
    """
    kept = sorted((name, version) for name, version in versions.items()
                  if not name.startswith(LEFT_TO_THE_TORCH_INDEX))
    return (f"# Made by `python3 -m mnist_lab_deploy.lock` from {source} (Python {PYTHON}, Linux x86-64). Do not edit by hand.\n"
            + "".join(f"{name}=={version}\n" for name, version in kept))


def main(argv=None):
    Parser(prog="python3 -m mnist_lab_deploy.lock",
           description="docker/requirements.lock と hub/requirements.lock を作り直す（PyPI につながるマシンで）").parse_args(argv)
    if sys.version_info[:2] != (3, 11):
        sys.exit("エラー: イメージと同じ Python 3.11 で実行してください。")
    hub = REPO / "hub" / "requirements.txt"
    lesson = resolved("-r", str(REPO / "requirements.txt"), jupyterhub_pin(hub))
    (REPO / "docker" / "requirements.lock").write_text(lock_text(lesson, "requirements.txt + " + jupyterhub_pin(hub)))
    (REPO / "hub" / "requirements.lock").write_text(lock_text(resolved("-r", str(hub)), "hub/requirements.txt"))
    print("docker/requirements.lock と hub/requirements.lock を書きました。")
    return 0


if __name__ == "__main__":
    sys.exit(main())
