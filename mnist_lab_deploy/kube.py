"""The Kubernetes values (hub/k8s/values.yaml, Zero to JupyterHub) checked against the deployment's settings.

Helm cannot read hub/.env, so the values repeat a few of its settings; this check says, one line each, where they
disagree (and what to write), and exits 1 then. CI runs it (tests/test_hub_config.py); run it after changing
hub/.env:

    python3 -m mnist_lab_deploy.kube

>>> kube_quantity("8g"), kube_quantity("512m")
('8Gi', '512Mi')
"""

import sys
from pathlib import Path

from .gpu_policy import memory_share
from .settings import REPO
from .settings import load as load_settings

VALUES = REPO / "hub" / "k8s" / "values.yaml"


def kube_quantity(size):
    """A Docker size (``8g``, powers of 1024) as a Kubernetes quantity (``8Gi``)."""
    number, unit = size.strip().lower()[:-1], size.strip().lower()[-1]
    return f"{number}{ {'k': 'Ki', 'm': 'Mi', 'g': 'Gi', 't': 'Ti'}[unit]}"


def expected(settings):
    """``{path in the values: the value the settings ask for}``."""
    share = memory_share(settings["GPU_MEMORY_SHARE"], int(settings["MAX_PER_GPU"]))
    return {
        "singleuser.image.tag": settings["CUDA"],
        "singleuser.cmd": "start-singleuser",
        "hub.config.KubeSpawner.port": int(settings["JUPYTER_PORT"]),
        "singleuser.memory.limit": kube_quantity(settings["MEM_LIMIT"]),
        "singleuser.cpu.limit": float(settings["CPUS"]),
        "singleuser.storage.extraVolumes.shm.emptyDir.sizeLimit": kube_quantity(settings["SHM_SIZE"]),
        "singleuser.storage.capacity": kube_quantity(settings["DISK_QUOTA"]),
        "singleuser.extraEnv.MNIST_LAB_GPU_MEMORY_SHARE": f"{share:g}",
        "cull.timeout": int(settings["CULL_TIMEOUT"]),
    }


def found(values, path):
    """The value at a dotted ``path`` (a list is entered by its items' ``name``); ``None`` when absent."""
    for key in path.split("."):
        if isinstance(values, list):
            values = next((item for item in values if item.get("name") == key), None)
        elif isinstance(values, dict):
            values = values.get(key)
        else:
            return None
    return values


def disagreements(values, settings):
    """One line per value that is not what the settings ask for."""
    return [f"{path}: {found(values, path)!r}（hub/.env からは {want!r}）"
            for path, want in expected(settings).items() if found(values, path) != want]


def main(values_path=VALUES, settings=None):
    import yaml

    lines = disagreements(yaml.safe_load(Path(values_path).read_text()), settings or load_settings())
    for line in lines:
        print(f"{values_path}: {line}", file=sys.stderr)
    if not lines:
        print(f"{values_path} は hub/.env と合っています。")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
