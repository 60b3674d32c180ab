"""The class's hub without an engine: hub/jupyterhub_config.py read as JupyterHub reads it (limits from hub/.env,
the GPU choice with a fake nvidia-smi and fake running containers), the hub's compose file as real Compose reads
it, the lock files, the pinned base images, and the Kubernetes values agreeing with all of that. The same hub on a
real engine: tests/test_hub.py."""

import asyncio
import json
import os
import re
import runpy
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]
HUB = REPO / "hub"


def hub_env():
    """hub/.env as compose reads it: ``NAME=value`` lines, comments and blank lines skipped."""
    return dict(line.split("=", 1) for line in (HUB / ".env").read_text().splitlines()
                if line.strip() and not line.startswith("#"))


def load_config(monkeypatch, **overrides):
    """Run hub/jupyterhub_config.py with hub/.env's values (and ``overrides``) in the environment, as compose
    passes them to the hub; return its namespace (``c``, ``LabSpawner``...)."""
    from traitlets.config import Config

    for name, value in {**hub_env(), "LESSON_IMAGE": "mnist-lab-class:cu126", **overrides}.items():
        monkeypatch.setenv(name, value)
    namespace = {"get_config": lambda: namespace.setdefault("c", Config())}
    return runpy.run_path(str(HUB / "jupyterhub_config.py"), init_globals=namespace)


def test_the_limits_of_hub_env_reach_every_students_container(monkeypatch):
    c = load_config(monkeypatch, MEM_LIMIT="6g", CPUS="2.5", PIDS_LIMIT="300", SHM_SIZE="512m")["c"]
    spawner = c.DockerSpawner
    assert spawner.mem_limit == "6G" and spawner.cpu_limit == 2.5
    host = spawner.extra_host_config
    assert host["memswap_limit"] == "6g" and host["pids_limit"] == 300 and host["shm_size"] == "512m"
    assert host["cap_drop"] == ["ALL"] and host["security_opt"] == ["no-new-privileges"] and host["init"] is True
    assert spawner.volumes == {"mnist-lab-work-{username}": "/work"} and spawner.notebook_dir == "/work"
    assert spawner.remove is True and spawner.use_internal_ip is True and spawner.cmd == ["jupyterhub-singleuser"]
    (culler,) = c.JupyterHub.services
    assert f"--timeout={hub_env()['CULL_TIMEOUT']}" in culler["command"]
    assert c.Authenticator.admin_users == {hub_env()["HUB_ADMIN"]} and c.NativeAuthenticator.open_signup is False


def test_mnist_dir_is_given_read_only(monkeypatch):
    spawner = load_config(monkeypatch, MNIST_DIR="/srv/datasets")["c"].DockerSpawner
    assert spawner.volumes["/srv/datasets"] == {"bind": "/data/mnist", "mode": "ro"}
    assert spawner.environment["MNIST_LAB_DATA"] == "/data/mnist"


def fake_nvidia_smi(tmp_path, monkeypatch, output, exit_code=0):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "nvidia-smi").write_text(f"#!/bin/sh\ncat <<'EOF'\n{output}\nEOF\nexit {exit_code}\n")
    (bin_dir / "nvidia-smi").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


class FakeDocker:
    """The running students' containers, as DockerSpawner's ``docker(...)`` calls return them."""

    def __init__(self):
        self.containers = {}  # name -> GPU index

    async def __call__(self, method, *args, **kwargs):
        if method == "containers":
            return [{"Id": name, "Labels": {"mnist-lab.student": name}} for name in self.containers]
        if method == "inspect_container":
            return {"HostConfig": {"DeviceRequests": [{"Driver": "nvidia",
                                                        "DeviceIDs": [str(self.containers[args[0]])]}]}}
        raise AssertionError(method)


@pytest.fixture
def docker(monkeypatch):
    """Docker faked: DockerSpawner's own start (create and start the container) records the GPU it was given."""
    from dockerspawner import DockerSpawner

    fake = FakeDocker()

    async def started(spawner):
        (request,) = spawner.extra_host_config["device_requests"]
        fake.containers[spawner.user.name] = int(request["device_ids"][0])
        return ("10.0.0.2", 8888)

    monkeypatch.setattr(DockerSpawner, "start", started)
    return fake


def start_server(namespace, name, docker, state=None):
    """Start ``name``'s server with the hub's LabSpawner; return the spawner."""
    spawner = namespace["LabSpawner"](user=SimpleNamespace(name=name, id=1, url=f"/user/{name}/"),
                                      config=namespace["c"])
    spawner.load_state(state or {})
    spawner.docker = docker
    asyncio.run(spawner.start())
    return spawner


def test_the_hub_spreads_students_over_gpus_and_keeps_each_ones(tmp_path, monkeypatch, docker):
    from tornado import web

    fake_nvidia_smi(tmp_path, monkeypatch, "0, 81000\n1, 81000\n2, 40000")
    namespace = load_config(monkeypatch, MAX_PER_GPU="1")
    gpus = [start_server(namespace, name, docker).gpu for name in ("aoi", "ren", "sora")]
    assert gpus == [0, 1, 2]  # fewest students, then most free memory, then lowest index
    aoi = start_server(namespace, "aoi", docker, state={})
    assert aoi.gpu == 0  # aoi's own running server does not count against aoi
    state = aoi.get_state()
    aoi.clear_state()  # the server stops: its container is forgotten, its GPU is not
    assert aoi.gpu == 0 and state["gpu"] == 0
    del docker.containers["aoi"], docker.containers["ren"]
    docker.containers["mio"] = 0  # someone else took GPU 0 while aoi was away: aoi gets a free one
    assert start_server(namespace, "aoi", docker, state=state).gpu == 1
    with pytest.raises(web.HTTPError, match="どの GPU もすでに 1 人が使っています"):
        start_server(namespace, "kai", docker)  # 0, 1 and 2 are full


def test_nvidia_smis_error_reaches_the_student_as_one_line(tmp_path, monkeypatch, docker):
    from tornado import web

    fake_nvidia_smi(tmp_path, monkeypatch, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA "
                                           "driver.\nMake sure that the latest NVIDIA driver is installed.", 9)
    with pytest.raises(web.HTTPError) as error:
        start_server(load_config(monkeypatch), "aoi", docker)
    assert error.value.status_code == 503 and "\n" not in error.value.log_message
    assert "couldn't communicate" in error.value.log_message and "管理者" in error.value.log_message


def locked(path):
    return dict(line.split("==") for line in path.read_text().splitlines() if line and not line.startswith("#"))


def test_both_images_lock_every_package_and_the_same_jupyterhub():
    lesson, hub = locked(REPO / "docker" / "requirements.lock"), locked(HUB / "requirements.lock")
    pin = re.search(r"^jupyterhub==(\S+)", (HUB / "requirements.txt").read_text(), re.MULTILINE).group(1)
    assert lesson["jupyterhub"] == hub["jupyterhub"] == pin  # jupyterhub-singleuser speaks the hub's version
    wanted = [re.split(r"[<>=\[ ;#]", line.strip())[0].lower().replace("_", "-")
              for line in (REPO / "requirements.txt").read_text().splitlines() if line.strip()[:1].isalpha()]
    assert {name for name in wanted if name not in ("torch", "torchvision")} <= lesson.keys()
    assert not [name for name in lesson if name.startswith(("torch", "nvidia-", "triton", "cuda-"))]
    assert {"dockerspawner", "jupyterhub-nativeauthenticator", "jupyterhub-idle-culler"} <= hub.keys()
    for dockerfile, lock in ((REPO / "Dockerfile", "docker/requirements.lock"), (HUB / "Dockerfile",
                                                                                 "hub/requirements.lock")):
        text = dockerfile.read_text()
        assert f"COPY {lock} /tmp/requirements.lock" in text and "--no-deps -r /tmp/requirements.lock" in text
        assert "pip check" in text


def test_base_images_are_pinned_by_digest():
    bases = {re.search(r"^ARG BASE_IMAGE=(\S+)", path.read_text(), re.MULTILINE).group(1)
             for path in (REPO / "Dockerfile", HUB / "Dockerfile")}
    (base,) = bases  # one base for both images
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", base)


def compose_hub(*files, **env):
    from engine import compose_binary

    chosen = [arg for name in files or ("docker-compose.yml",) for arg in ("-f", name)]
    clean = {k: v for k, v in os.environ.items() if k not in hub_env()}
    return subprocess.run([compose_binary(), *chosen, "config", "--format", "json"], cwd=HUB, capture_output=True,
                          text=True, check=False, env={**clean, **env})


def test_the_hub_listens_on_loopback_and_alone_holds_the_docker_socket():
    result = compose_hub()
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    hub, lesson = config["services"]["hub"], config["services"]["lesson"]
    assert [(p["host_ip"], str(p["published"])) for p in hub["ports"]] == [("127.0.0.1", hub_env()["HUB_PORT"])]
    assert any(v["target"] == "/var/run/docker.sock" for v in hub["volumes"])
    assert hub["environment"]["MEM_LIMIT"] == hub_env()["MEM_LIMIT"]  # hub/.env, the one place
    assert lesson["image"] == "mnist-lab-class:" + hub_env()["CUDA"] and lesson["scale"] == 0
    assert config["networks"]["hub"]["name"] == hub["environment"]["HUB_NETWORK"]
    no_gpu = json.loads(compose_hub("docker-compose.yml", "no-gpu.yml").stdout)["services"]["hub"]
    assert not no_gpu.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices")
    assert no_gpu["ports"] == hub["ports"] and no_gpu["volumes"] == hub["volumes"]


def test_the_hub_refuses_to_start_without_an_admin():
    result = compose_hub(HUB_ADMIN="")
    assert result.returncode != 0 and "HUB_ADMIN" in result.stderr and "hub/.env" in result.stderr


def test_the_kubernetes_values_match_the_hub():
    import yaml

    values = yaml.safe_load((HUB / "k8s" / "values.yaml").read_text())
    env, single = hub_env(), values["singleuser"]
    assert single["cmd"] == "jupyterhub-singleuser" and single["uid"] == 1000
    assert single["storage"]["homeMountPath"] == "/work" and single["defaultUrl"] == "/lab/tree/main.ipynb"
    assert single["memory"]["limit"] == env["MEM_LIMIT"].upper() and single["cpu"]["limit"] == float(env["CPUS"])
    (shm,) = single["storage"]["extraVolumes"]
    assert shm["emptyDir"]["medium"] == "Memory" and single["storage"]["extraVolumeMounts"][0]["mountPath"] == "/dev/shm"
    gpu = next(p for p in single["profileList"] if p.get("default"))
    assert gpu["kubespawner_override"]["extra_resource_limits"] == {"nvidia.com/gpu": "1"}
    assert values["cull"] == {"enabled": True, "timeout": int(env["CULL_TIMEOUT"]), "every": 300}
    assert values["hub"]["config"]["JupyterHub"]["authenticator_class"] == "nativeauthenticator.NativeAuthenticator"
    assert "NOT TESTED ON A CLUSTER" in (HUB / "k8s" / "values.yaml").read_text()
