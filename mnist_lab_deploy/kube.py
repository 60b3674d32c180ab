"""The Kubernetes values (hub/k8s/values.yaml, Zero to JupyterHub) checked against the deployment's settings.

Helm cannot read hub/.env, so the values repeat a few of its settings; this check says, one line each, where they
disagree (and what to write), and exits 1 then. CI runs it (tests/test_hub_config.py); run it after changing
hub/.env:

    python3 -m mnist_lab_deploy.kube

>>> from .settings import kube_quantity
>>> kube_quantity("8g"), kube_quantity("512m")
('8Gi', '512Mi')
"""

import sys
from pathlib import Path

from .gpu_policy import memory_share
from .settings import REPO, SettingsError, checked, kube_quantity
from .settings import load as load_settings
from .usage import Parser

VALUES = REPO / "hub" / "k8s" / "values.yaml"
KEYS = ("CUDA", "JUPYTER_PORT", "MEM_LIMIT", "CPUS", "SHM_SIZE", "DISK_QUOTA", "GPU_MEMORY_SHARE", "MAX_PER_GPU",
        "CULL_TIMEOUT")  # what the values repeat


def expected(settings):
    """``{path in the values: the value the settings ask for}``, each read as the hub reads it (:mod:`.settings`);
    :class:`SettingsError` naming a value the hub would refuse."""
    def read(name):
        return checked(settings, name)

    def quantity(name):
        read(name)
        return kube_quantity(settings[name])

    max_per_gpu = read("MAX_PER_GPU")
    try:
        share = memory_share(settings["GPU_MEMORY_SHARE"], max_per_gpu)
    except ValueError as e:
        raise SettingsError(f"エラー: hub/.env の {e}") from None
    return {
        "singleuser.image.tag": read("CUDA"),
        "singleuser.cmd": "start-singleuser",
        "hub.config.KubeSpawner.port": read("JUPYTER_PORT"),
        "singleuser.memory.limit": quantity("MEM_LIMIT"),
        "singleuser.cpu.limit": read("CPUS"),
        "singleuser.storage.extraVolumes.shm.emptyDir.sizeLimit": quantity("SHM_SIZE"),
        "singleuser.storage.capacity": quantity("DISK_QUOTA"),
        "singleuser.extraEnv.MNIST_LAB_GPU_MEMORY_SHARE": f"{share:g}",
        "cull.timeout": read("CULL_TIMEOUT"),
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

    try:
        settings = settings or load_settings(required=KEYS)
        values = yaml.safe_load(Path(values_path).read_text(encoding="utf-8"))
        lines = disagreements(values, settings)
    except SettingsError as e:
        print(e, file=sys.stderr)
        return 1
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        print(f"エラー: {values_path} が読めません（{str(e).splitlines()[0]}）。YAML を直してください。", file=sys.stderr)
        return 1
    for line in lines:
        print(f"{values_path}: {line}", file=sys.stderr)
    if not lines:
        print(f"{values_path} は hub/.env と合っています。")
    return 1 if lines else 0


if __name__ == "__main__":
    Parser(prog="python3 -m mnist_lab_deploy.kube",
           description="Kubernetes の values ファイルが hub/.env と合っているか確かめる").parse_args()
    sys.exit(main())
