"""The class's hub without an engine: hub/jupyterhub_config.py read as JupyterHub reads it (limits from hub/.env,
the GPU choice with a fake nvidia-smi and fake running containers, what a stopped server remembers), the disk
watcher's decisions, the hub's compose file as real Compose reads it, the lock files, the pinned base images, and
the Kubernetes values agreeing with all of that. The same hub on a real engine: tests/test_hub.py."""

import asyncio
import json
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]
HUB = REPO / "hub"
sys.path.insert(0, str(HUB))

import disk  # hub/disk.py
import messages  # hub/messages.py
import network  # hub/network.py


def hub_env():
    """hub/.env as compose reads it: ``NAME=value`` lines, comments and blank lines skipped."""
    return dict(line.split("=", 1) for line in (HUB / ".env").read_text().splitlines()
                if line.strip() and not line.startswith("#"))


def load_config(monkeypatch, **overrides):
    """Run hub/jupyterhub_config.py with hub/.env's values (and ``overrides``) in the environment, as compose
    passes them to the hub; return its namespace (``c``, ``LabSpawner``...)."""
    from traitlets.config import Config

    for name, value in {**hub_env(), "HUB_ADMIN": "teacher", "LESSON_IMAGE": "mnist-lab-class:cu126",
                        **overrides}.items():
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
    assert c.Authenticator.admin_users == {"teacher"} and c.NativeAuthenticator.open_signup is False
    assert host["read_only"] is True and host["tmpfs"] == {"/tmp": "size=512m,mode=1777"}  # only /work on disk


def test_no_admin_name_is_shipped_and_the_hub_refuses_to_start_without_one(monkeypatch):
    assert hub_env()["HUB_ADMIN"] == ""  # the lab chooses it: nobody can guess it from this repository
    with pytest.raises(SystemExit) as refused:
        load_config(monkeypatch, HUB_ADMIN="")
    assert "HUB_ADMIN" in str(refused.value) and "hub/.env" in str(refused.value)


def test_mnist_dir_is_given_read_only(monkeypatch):
    spawner = load_config(monkeypatch, MNIST_DIR="/srv/datasets")["c"].DockerSpawner
    assert spawner.volumes["/srv/datasets"] == {"bind": "/data/mnist", "mode": "ro"}
    assert spawner.environment["MNIST_LAB_DATA"] == "/data/mnist"


@pytest.mark.parametrize("name, value", [("INTERNET", "maybe"), ("DISK_QUOTA", "ten"), ("DISK_CHECK", "")])
def test_a_wrong_setting_stops_the_hub_with_one_line_naming_it(monkeypatch, name, value):
    with pytest.raises(SystemExit) as refused:
        load_config(monkeypatch, **{name: value})
    assert name in str(refused.value) and "\n" not in str(refused.value)


def test_sizes_are_read_as_docker_writes_them(monkeypatch):
    size = load_config(monkeypatch)["size_in_bytes"]
    assert [size(s) for s in ("10g", "1.5G", "512m", "64MiB", "1024")] == [10 * 2**30, 3 * 2**29, 2**29, 2**26, 1024]


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
    """Docker faked: DockerSpawner's own start (create and start the container) records the GPU it was given; the
    network fence (tested on a real engine) is skipped."""
    from dockerspawner import DockerSpawner

    fake = FakeDocker()

    async def started(spawner):
        (request,) = spawner.extra_host_config["device_requests"]
        fake.containers[spawner.user.name] = int(request["device_ids"][0])
        return ("10.0.0.2", 8888)

    async def nothing(*args):
        return None

    monkeypatch.setattr(DockerSpawner, "start", started)
    fake.skip_fence = lambda namespace: [monkeypatch.setitem(namespace["LabSpawner"].start.__globals__, name, nothing)
                                         for name in ("fence", "own_image")]
    return fake


def start_server(namespace, name, docker, state=None):
    """Start ``name``'s server with the hub's LabSpawner; return the spawner."""
    docker.skip_fence(namespace)
    spawner = namespace["LabSpawner"](user=SimpleNamespace(name=name, id=1, url=f"/user/{name}/"),
                                      config=namespace["c"])
    spawner.load_state(state or {})
    spawner.docker = docker
    asyncio.run(spawner.start())
    return spawner


def test_the_hub_spreads_students_over_gpus_and_keeps_each_ones(tmp_path, monkeypatch, docker):

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
    with pytest.raises(messages.StudentError) as full:
        start_server(namespace, "kai", docker)  # 0, 1 and 2 are full
    assert full.value.why == "gpus-full" and full.value.jupyterhub_message == messages.gpus_full(1).jupyterhub_message


def test_a_stopped_server_keeps_its_gpu_and_why_the_hub_stopped_it(monkeypatch):
    namespace = load_config(monkeypatch)
    spawner = namespace["LabSpawner"](user=SimpleNamespace(name="aoi", id=1, url="/user/aoi/"), config=namespace["c"])
    spawner.load_state({"gpu": 1, "stop_note": messages.note("disk-quota", 3 * 2**30, 2**30),
                        "disk_baseline": 3 * 2**30})
    spawner.clear_state()
    assert spawner.get_state() == {"gpu": 1, "stop_note": messages.note("disk-quota", 3 * 2**30, 2**30),
                                   "disk_baseline": 3 * 2**30}
    assert spawner.stop_why == "disk-quota" and "3.0 GiB" in spawner.stop_message and "1.0 GiB" in spawner.stop_message


def test_nvidia_smis_error_reaches_the_student_as_one_line(tmp_path, monkeypatch, docker):
    fake_nvidia_smi(tmp_path, monkeypatch, "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA "
                                           "driver.\nMake sure that the latest NVIDIA driver is installed.", 9)
    with pytest.raises(messages.StudentError) as error:
        start_server(load_config(monkeypatch), "aoi", docker)
    said = error.value.jupyterhub_message  # what JupyterHub shows the student
    assert error.value.status_code == 503 and error.value.why == "nvidia-smi" and "\n" not in said
    assert "couldn't communicate" in said


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
    result = compose_hub(HUB_ADMIN="teacher")  # hub/.env ships no admin name: the lab writes one
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    hub, lesson = config["services"]["hub"], config["services"]["lesson"]
    assert hub["tmpfs"] == ["/tmp"]  # the proxy's pid file never outlives a killed hub
    assert {name: hub["environment"][name] for name in ("INTERNET", "DISK_QUOTA", "DISK_RESERVE", "DISK_CHECK")} == \
        {name: hub_env()[name] for name in ("INTERNET", "DISK_QUOTA", "DISK_RESERVE", "DISK_CHECK")}
    assert [(p["host_ip"], str(p["published"])) for p in hub["ports"]] == [("127.0.0.1", hub_env()["HUB_PORT"])]
    assert any(v["target"] == "/var/run/docker.sock" for v in hub["volumes"])
    assert hub["environment"]["MEM_LIMIT"] == hub_env()["MEM_LIMIT"]  # hub/.env, the one place
    assert lesson["image"] == "mnist-lab-class:" + hub_env()["CUDA"] and lesson["scale"] == 0
    assert config["networks"]["hub"]["name"] == hub["environment"]["HUB_NETWORK"]
    no_gpu = json.loads(compose_hub("docker-compose.yml", "no-gpu.yml", HUB_ADMIN="teacher").stdout)["services"]["hub"]
    assert not no_gpu.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices")
    assert no_gpu["ports"] == hub["ports"] and no_gpu["volumes"] == hub["volumes"]


def test_the_hub_refuses_to_start_without_an_admin():
    result = compose_hub(HUB_ADMIN="")
    assert result.returncode != 0 and "HUB_ADMIN" in result.stderr and "hub/.env" in result.stderr


GB = 2**30


@pytest.mark.parametrize("used, before, baseline, short, stopped", [
    (0.5 * GB, 0.4 * GB, 0, False, None),  # under the quota
    (1.0 * GB, 0.9 * GB, 0, False, "disk-quota"),  # reached it
    (1.5 * GB, None, 0, False, "disk-quota"),  # over it at the first look
    (1.5 * GB, 1.5 * GB, 1.5 * GB, False, None),  # started again over the quota to clean up: left alone
    (1.2 * GB, 1.5 * GB, 1.5 * GB, False, None),  # cleaning up
    (1.6 * GB, 1.5 * GB, 1.5 * GB, False, "disk-quota"),  # over the quota and growing again
    (0.5 * GB, 0.4 * GB, 0, True, "disk-full"),  # the disk is short of room and this one writes
    (0.5 * GB, 0.5 * GB, 0, True, None),  # the disk is short of room, this one does not write
    (0.5 * GB, None, 0, True, None),  # first look: not known to write
])
def test_the_disk_watcher_stops_a_server_over_its_quota_or_writing_on_a_full_disk(used, before, baseline, short,
                                                                                  stopped):
    note = disk.verdict(used, before, GB, baseline, short, 10 * 2**20)
    assert (note and note["why"]) == stopped
    if note:
        error = messages.from_note(json.loads(json.dumps(note)))  # as kept in the hub's database
        assert error.why == stopped and error.status_code == 507


def test_the_disk_watcher_keeps_room_for_the_hub(tmp_path):
    watch = disk.DiskWatch(quota=GB, reserve=2**20, every=30, data_dir=tmp_path)
    log = SimpleNamespace(warning=lambda *args: None)
    for free, kept in ((10 * 2**20, True), (2**19, False), (int(1.5 * 2**20), False), (3 * 2**20, True)):
        watch.free_at_look = free
        watch.keep_room(log)
        assert watch.ballast.exists() == kept, free
        if kept:
            assert os.stat(watch.ballast).st_blocks * 512 >= 2**20  # really on the disk, not a sparse file


def test_the_disk_watcher_reads_du_and_the_fence_reads_ip_addr():
    assert disk.parse_du("1234\t/v/aoi\n56\t/v/ren\ndu: cannot read\n") == {"aoi": 1234, "ren": 56}
    said = ("1: lo    inet 127.0.0.1/8 scope host lo\n2: eth0    inet 10.1.2.3/24 brd 10.1.2.255 scope global\n"
            "2: eth0    inet6 fe80::1/64 scope link\n3: docker0    inet 172.17.0.1/16 scope global docker0")
    assert network.addresses_in(said) == ["127.0.0.1", "10.1.2.3", "fe80::1", "172.17.0.1"]
    rules = network.ipv4_rules(["172.18.0.0/16", "fd00::/64"], ["127.0.0.1", "10.1.2.3", "fe80::1"], internet=False)
    assert "-d 10.1.2.3/32 -j REJECT" in rules and "fd00" not in rules and "fe80" not in rules


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
