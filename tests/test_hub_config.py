"""The class's hub without an engine: hub/jupyterhub_config.py read as JupyterHub reads it (limits from hub/.env,
the GPU choice with a fake nvidia-smi and fake running containers, what a stopped server remembers), the disk
watcher's decisions, the hub's compose file as real Compose reads it, the lock files, the pinned base images, and
the Kubernetes values agreeing with all of that. The same hub on a real engine: tests/test_hub.py."""

import asyncio
import json
import os
import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from mnist_lab_deploy import settings
from mnist_lab_deploy.hub import disk, messages, network

REPO = Path(__file__).resolve().parents[1]
HUB = REPO / "hub"


def hub_env():
    """hub/.env as compose reads it: the deployment's settings, the one place of each."""
    return settings.load()


def load_config(monkeypatch, missing=None, **overrides):
    """Run hub/jupyterhub_config.py with hub/.env's values (and ``overrides``, without ``missing``) in the
    environment, as compose passes them to the hub; return its namespace (``c``, ``LabSpawner``...)."""
    from traitlets.config import Config

    env = hub_env()
    for name, value in {**env, "HUB_ADMIN": "teacher", "LESSON_IMAGE": f"mnist-lab-class:{env['CUDA']}",
                        "HUB_NETWORK": "mnist-lab-hub", **overrides}.items():
        monkeypatch.setenv(name, value)
    if missing:
        monkeypatch.delenv(missing)
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
    assert spawner.remove is True and spawner.use_internal_ip is True and spawner.cmd == ["start-singleuser"]
    assert spawner.port == int(hub_env()["JUPYTER_PORT"])
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


@pytest.mark.parametrize("name, value", [("INTERNET", "maybe"), ("DISK_QUOTA", "ten"), ("DISK_CHECK", ""),
                                         ("MEM_LIMIT", "lots"), ("JUPYTER_PORT", "88a"), ("GPUS", "some")])
def test_a_wrong_setting_stops_the_hub_with_one_line_naming_it(monkeypatch, name, value):
    with pytest.raises(SystemExit) as refused:
        load_config(monkeypatch, **{name: value})
    assert name in str(refused.value) and "\n" not in str(refused.value)


def test_every_setting_the_hub_reads_is_required(monkeypatch):
    """No default anywhere: without any one of hub/.env's settings the hub stops with one line naming it."""
    read_by_compose_only = ("BASE_IMAGE", "CUDA", "DOCKER_SOCKET")  # the images, the socket: compose uses them
    for name in [*hub_env(), "LESSON_IMAGE", "HUB_NETWORK"]:
        if name in read_by_compose_only:
            continue
        with pytest.raises(SystemExit, match=name) as refused:
            load_config(monkeypatch, missing=name)
        assert name in str(refused.value) and "\n" not in str(refused.value), name


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
        return ("10.0.0.2", int(hub_env()["JUPYTER_PORT"]))

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
    install = (REPO / "docker" / "install.sh").read_text()  # the one locked install, shared by both images
    assert "pip install --no-deps -r /tmp/install/requirements.lock" in install
    for dockerfile, lock in ((REPO / "Dockerfile", "docker/requirements.lock"), (HUB / "Dockerfile",
                                                                                 "hub/requirements.lock")):
        text = dockerfile.read_text()
        assert f"COPY docker/install.sh {lock} /tmp/install/" in text and "/tmp/install/install.sh locked" in text
        assert "COPY mnist_lab_deploy /tmp/install/mnist_lab_deploy" in text and "install.sh package" in text
        assert "pip check" in text and "ARG BASE_IMAGE\n" in text  # the base: hub/.env's, passed by compose


def test_the_base_image_is_pinned_by_digest_and_given_to_both_images():
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", hub_env()["BASE_IMAGE"])
    config = json.loads(compose_hub(HUB_ADMIN="teacher").stdout)["services"]
    assert config["hub"]["build"]["args"]["BASE_IMAGE"] == config["lesson"]["build"]["args"]["BASE_IMAGE"] == \
        hub_env()["BASE_IMAGE"]


def compose_hub(*files, cwd=HUB, **env):
    from engine import compose_binary

    chosen = [arg for name in files or ("docker-compose.yml",) for arg in ("-f", name)]
    clean = {k: v for k, v in os.environ.items() if k not in hub_env()}
    return subprocess.run([compose_binary(), *chosen, "config", "--format", "json"], cwd=cwd, capture_output=True,
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
    compose_only = ("BASE_IMAGE", "CUDA", "DOCKER_SOCKET")  # the images' builds and tag, the socket's mount
    for name in hub_env():  # every other setting reaches the hub's config as it is in hub/.env, the one place
        if name not in compose_only:
            assert hub["environment"].get(name) == ("teacher" if name == "HUB_ADMIN" else hub_env()[name]), name
    assert lesson["image"] == hub["environment"]["LESSON_IMAGE"] == "mnist-lab-class:" + hub_env()["CUDA"]
    assert lesson["build"]["args"]["CUDA"] == hub_env()["CUDA"] and lesson["scale"] == 0
    assert lesson["build"]["args"]["JUPYTER_PORT"] == hub_env()["JUPYTER_PORT"]
    assert config["networks"]["hub"]["name"] == hub["environment"]["HUB_NETWORK"]
    (gpus,) = hub["deploy"]["resources"]["reservations"]["devices"]
    assert hub_env()["GPUS"] == "all" and gpus["count"] in (-1, "all")
    no_gpu = json.loads(compose_hub(HUB_ADMIN="teacher", GPUS="none").stdout)["services"]["hub"]
    assert not no_gpu.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices")
    assert no_gpu["ports"] == hub["ports"] and no_gpu["volumes"] == hub["volumes"]


@pytest.mark.parametrize("name", ["MEM_LIMIT", "CUDA", "JUPYTER_PORT", "GPUS", "MNIST_DIR"])
def test_the_hubs_compose_refuses_without_a_setting(tmp_path, name):
    """Each value is written once, in hub/.env: compose has no default to fall back on."""
    (tmp_path / "hub").mkdir()
    shutil.copytree(REPO / "docker", tmp_path / "docker")
    shutil.copy(HUB / "docker-compose.yml", tmp_path / "hub")
    env = {k: v for k, v in hub_env().items() if k != name}
    (tmp_path / "hub" / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    result = compose_hub(HUB_ADMIN="teacher", cwd=tmp_path / "hub")
    assert result.returncode != 0 and name in result.stderr and "hub/.env" in result.stderr


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
    rules = network.ipv4_rules(["172.18.0.0/16", "fd00::/64"], ["127.0.0.1", "10.1.2.3", "fe80::1"], internet=False,
                               server_port=8765)
    assert "-d 10.1.2.3/32 -j REJECT" in rules and "fd00" not in rules and "fe80" not in rules
    assert "-A INPUT -s 172.18.0.0/16 -p tcp --dport 8765 -j ACCEPT" in rules


def test_the_kubernetes_values_agree_with_hub_env(capsys):
    import yaml

    from mnist_lab_deploy import kube

    assert kube.main() == 0  # what CI and the admin run: `python3 -m mnist_lab_deploy.kube`
    values = yaml.safe_load(kube.VALUES.read_text())
    changed = {**hub_env(), "MEM_LIMIT": "6g", "CUDA": "cu999", "JUPYTER_PORT": "8765"}  # one line each in hub/.env
    said = kube.disagreements(values, changed)
    assert [line.split(":")[0] for line in said] == ["singleuser.image.tag", "hub.config.KubeSpawner.port",
                                                     "singleuser.memory.limit"]
    assert kube.main(settings=changed) == 1 and len(capsys.readouterr().err.splitlines()) == 3
    single = values["singleuser"]
    assert single["uid"] == 1000 and single["storage"]["homeMountPath"] == "/work"
    assert single["defaultUrl"] == "/lab/tree/main.ipynb"
    assert single["storage"]["extraVolumeMounts"][0]["mountPath"] == "/dev/shm"
    gpu = next(p for p in single["profileList"] if p.get("default"))
    assert gpu["kubespawner_override"]["extra_resource_limits"] == {"nvidia.com/gpu": "1"}
    assert values["hub"]["config"]["JupyterHub"]["authenticator_class"] == "nativeauthenticator.NativeAuthenticator"
    assert "NOT TESTED ON A CLUSTER" in kube.VALUES.read_text()


def hub_templates(monkeypatch):
    """The hub's Jinja environment as JupyterHub builds it from the config's template_paths (its own pages under
    ``templates/``), and the namespace every hub page gets (JupyterHub's template_namespace, logged out)."""
    from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader
    from jupyterhub.app import JupyterHub

    paths = list(load_config(monkeypatch)["c"].JupyterHub.template_paths)
    base = JupyterHub()._template_paths_default()[0]
    loader = ChoiceLoader([PrefixLoader({"templates": FileSystemLoader([base])}, "/"),
                           FileSystemLoader([*paths, base])])
    namespace = {"base_url": "/hub/", "prefix": "/", "user": None, "login_url": "/hub/login",
                 "logout_url": "/hub/logout", "static_url": lambda path, **kwargs: f"/hub/static/{path}",
                 "version_hash": "", "services": [], "parsed_scopes": set(), "expanded_scopes": set(), "xsrf": "x"}
    return Environment(loader=loader, autoescape=True), namespace


def visible_text(page):
    import html
    import re

    body = re.sub(r"<(script|style)\b.*?</\1>", "", page, flags=re.DOTALL)
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


def form_fields(page):
    import re

    return set(re.findall(r'<input[^>]*\bname="([^"]+)"', page))


def is_japanese(text):
    return any("\u3040" <= ch <= "\u30ff" for ch in text)


def test_the_login_and_sign_up_pages_students_see_are_the_hubs_own(monkeypatch):
    env, namespace = hub_templates(monkeypatch)
    login = env.get_template("native-login.html")
    assert login.filename.startswith(str(HUB / "templates"))  # ours, before NativeAuthenticator's
    page = login.render(**namespace, next="", enable_signup=True, login_error=None, username=None)
    assert {"username", "password", "_xsrf"} <= form_fields(page) and 'href="/hub/signup"' in page
    assert 'action="/hub/login?next=' in page and is_japanese(visible_text(page)) and 'id="lab-message"' not in page
    for why in messages.LOGIN:
        line = messages.login_refused(why, "aoi", 5)
        assert "\n" not in line and is_japanese(line)
        page = login.render(**namespace, next="", enable_signup=True, login_error=line, username="aoi", why=why)
        assert f'id="lab-message" data-why="{why}"' in page and line in visible_text(page)
    signup = env.get_template("signup.html")
    page = signup.render(**namespace, post_url="/hub/signup")
    assert {"username", "signup_password", "signup_password_confirmation", "_xsrf"} <= form_fields(page)
    assert 'href="/hub/login"' in page and is_japanese(visible_text(page))
    for why in messages.SIGN_UP:  # after a sign-up: waiting for approval, or why it was refused
        line = messages.sign_up_result(why, 10)
        assert "\n" not in line and is_japanese(line)
        page = signup.render(**namespace, post_url="/hub/signup", alert="alert-info", result_message=line, why=why)
        assert f'id="lab-message" data-why="{why}"' in page and line in visible_text(page)


def test_every_hub_page_a_student_meets_is_in_japanese(monkeypatch):
    """The menu of every page, the error page, a server that is not running, one that is starting."""
    env, namespace = hub_templates(monkeypatch)
    user = SimpleNamespace(name="aoi", admin=False, spawner=SimpleNamespace(stop_message="", stop_why=""))
    pages = {"error.html": {"status_code": 503, "status_message": "Service Unavailable",
                            "message": messages.gpus_full(2).jupyterhub_message, "exception": messages.gpus_full(2)},
             "not_running.html": {"failed": False, "spawn_url": "/hub/spawn/aoi", "server_name": ""},
             "spawn_pending.html": {"progress_url": "/hub/api/users/aoi/server/progress", "spawner": user.spawner}}
    for name, more in pages.items():
        page = env.get_template(name).render(**{**namespace, "user": user, **more})
        text = visible_text(page)
        assert is_japanese(text) and "Logout" not in text, name  # the menu too (hub/templates/page.html)
        assert env.get_template(name).filename.startswith(str(HUB / "templates")), name
    said = visible_text(env.get_template("error.html").render(**{**namespace, **pages["error.html"]}))
    assert messages.gpus_full(2).jupyterhub_message in said


def test_the_sign_up_page_names_each_case_and_says_it_in_japanese():
    from mnist_lab_deploy.hub import accounts

    handler = object.__new__(accounts.SignUpHandler)  # no request needed: the decision is the handler's own
    authenticator = SimpleNamespace(minimum_password_length=10, open_signup=False, login_email_sent=False)
    handler.application = SimpleNamespace(settings={"authenticator": authenticator})
    created = SimpleNamespace(login_email_sent=False)
    cases = {"waiting-for-approval": (created, True, False, True, False), "name-taken": (None, True, True, True, False),
             "password-mismatch": (None, True, False, False, False), "refused": (None, True, False, True, False),
             "signed-up": (created, True, False, True, True), "not-human": (None, False, False, True, False)}
    for why, args in cases.items():
        alert, message = handler.get_result_message(*args)
        assert handler.why == why and message == messages.sign_up_result(why, 10), why
        assert alert.startswith("alert-")


def test_a_refused_login_names_why():
    from mnist_lab_deploy.hub import accounts

    users = {"aoi": SimpleNamespace(is_authorized=False, password="right"),
             "ren": SimpleNamespace(is_authorized=True, password="right")}
    for info in users.values():
        info.is_valid_password = lambda password, info=info: password == info.password
    blocked = {"ren"}
    authenticator = SimpleNamespace(get_user=users.get, is_blocked=lambda name: name in blocked)
    handler = object.__new__(accounts.LoginHandler)
    handler.application = SimpleNamespace(settings={"authenticator": authenticator})
    for name, password, why in (("aoi", "right", "waiting-for-approval"), ("aoi", "wrong", "wrong-password"),
                                ("ren", "right", "locked"), ("nobody", "right", "wrong-password")):
        handler.get_body_argument = lambda argument, default, strip, password=password: password
        assert handler.refusal(name) == why, (name, password)


def japanese_line(text):
    return "\n" not in text.strip() and re.search(r"[\u3040-\u30ff]", text) and "Error" not in text


@pytest.mark.parametrize("name, value", [
    ("MEM_LIMIT", "inf"), ("MEM_LIMIT", "1e400g"), ("DISK_QUOTA", "inf"), ("DISK_QUOTA", "0"), ("DISK_QUOTA", "-1g"),
    ("DISK_CHECK", "0"), ("DISK_CHECK", "-5"), ("CULL_TIMEOUT", "0"), ("CULL_TIMEOUT", "-1"), ("CPUS", "0"),
    ("CPUS", "-2"), ("CPUS", "nan"), ("CPUS", "abc"), ("PIDS_LIMIT", "0"), ("PIDS_LIMIT", "-1"), ("JUPYTER_PORT", "0"),
    ("JUPYTER_PORT", "99999"), ("MNIST_DIR", "mnist"), ("MNIST_DIR", "~/mnist"), ("MAX_PER_GPU", "0"),
    ("MAX_PER_GPU", "-1"), ("MAX_PER_GPU", "1000"), ("HUB_ADMIN", "t.yamada"), ("HUB_ADMIN", "山田"),
    ("HUB_ADMIN", "a b"), ("HUB_PORT", "abc"), ("HUB_URL", "localhost:8000")])
def test_a_setting_that_would_switch_a_protection_off_stops_the_hub_in_one_line(monkeypatch, name, value):
    with pytest.raises(SystemExit) as refused:
        load_config(monkeypatch, **{name: value})
    said = str(refused.value)
    assert name in said and japanese_line(said) and "could not convert" not in said and "invalid literal" not in said


def test_an_admin_name_in_capitals_is_the_one_jupyterhub_logs_in(monkeypatch):
    c = load_config(monkeypatch, HUB_ADMIN="Teacher", HUB_URL="https://hub.lab.example")["c"]
    assert c.Authenticator.admin_users == {"teacher"} and c.JupyterHub.subdomain_host == "https://hub.lab.example"


@pytest.mark.parametrize("text", ["\ufeff", "MEM_LIM\n", "  CUDA cu126\n"])
def test_a_broken_hub_env_is_one_line_naming_the_file_and_the_line(tmp_path, text):
    path = tmp_path / ".env"
    path.write_text(text + (REPO / "hub" / ".env").read_text())
    if text == "\ufeff":
        assert settings.load(path) == hub_env()  # a BOM is read as compose reads it
        return
    with pytest.raises(settings.SettingsError) as refused:
        settings.load(path)
    assert str(path) in str(refused.value) and "1" in str(refused.value) and japanese_line(str(refused.value))


def test_a_missing_or_unreadable_hub_env_is_one_line(tmp_path):
    env = (REPO / "hub" / ".env").read_text()
    (tmp_path / "missing-key.env").write_text(env.replace("\nMEM_LIMIT=", "\n#MEM_LIMIT="))
    (tmp_path / "folder.env").mkdir()
    (tmp_path / "sjis.env").write_bytes(env.encode() + "# コメント\n".encode("shift_jis"))
    for name, want in [("missing-key.env", "MEM_LIMIT"), ("folder.env", "folder.env"), ("absent.env", "absent.env"),
                       ("sjis.env", "UTF-8")]:
        with pytest.raises(settings.SettingsError) as refused:
            settings.load(tmp_path / name)
        assert want in str(refused.value) and japanese_line(str(refused.value)), name


def test_values_compose_accepts_mean_the_same_to_the_hub_make_env_and_kubernetes(monkeypatch):
    from mnist_lab_deploy import kube

    written = {"8G": "8g", "8gb": "8g", "8589934592": "8589934592", '"8g"': "8g", "8g  # per student": "8g"}
    for raw, want in written.items():
        value = settings.parse(f"MEM_LIMIT={raw}\n")["MEM_LIMIT"]
        assert settings.checked({"MEM_LIMIT": value}, "MEM_LIMIT") == want
        assert load_config(monkeypatch, MEM_LIMIT=value)["MEM_LIMIT"] == want
        assert kube.expected({**hub_env(), "MEM_LIMIT": value})["singleuser.memory.limit"] in ("8Gi", "8589934592")
    assert settings.checked({"MEM_LIMIT": "1.5g"}, "MEM_LIMIT") == str(3 * 2**29)
    from jupyterhub.traitlets import ByteSpecification

    for value in ("1.5g", "8589934592", "8G"):  # JupyterHub takes each as it is given to the spawner
        mem_limit = load_config(monkeypatch, MEM_LIMIT=value)["c"].DockerSpawner.mem_limit
        assert ByteSpecification().validate(None, mem_limit) == settings.size_in_bytes(value)


@pytest.mark.parametrize("name, value", [("MEM_LIMIT", "8gb"), ("MEM_LIMIT", "8589934592"), ("MEM_LIMIT", "lots"),
                                         ("GPU_MEMORY_SHARE", "abc"), ("MAX_PER_GPU", ""), ("DISK_QUOTA", "")])
def test_the_kubernetes_check_reads_hub_env_as_the_hub_does_and_never_crashes(capsys, name, value):
    from mnist_lab_deploy import kube

    status = kube.main(settings={**hub_env(), name: value})
    said = capsys.readouterr().err
    hub_refuses = value in ("lots", "abc", "")
    assert status == (1 if hub_refuses else 0) or (status == 1 and "memory.limit" in said)
    assert "Traceback" not in said and (not hub_refuses or (name in said and japanese_line(said)))


def test_the_kubernetes_check_says_a_broken_values_file_in_one_line(tmp_path, capsys):
    from mnist_lab_deploy import kube

    (tmp_path / "values.yaml").write_text("singleuser: [unclosed\n")
    assert kube.main(values_path=tmp_path / "values.yaml") == 1
    assert japanese_line(capsys.readouterr().err)


def test_a_hanging_nvidia_smi_reaches_the_student_as_one_line(tmp_path, monkeypatch, docker):
    from mnist_lab_deploy import gpu_policy

    fake_nvidia_smi(tmp_path, monkeypatch, "")
    (tmp_path / "bin" / "nvidia-smi").write_text("#!/bin/sh\nexec sleep 30\n")
    real_run = gpu_policy.subprocess.run
    monkeypatch.setattr(gpu_policy.subprocess, "run", lambda *a, **k: real_run(*a, **{**k, "timeout": 0.5}))
    with pytest.raises(messages.StudentError) as error:
        start_server(load_config(monkeypatch), "aoi", docker)
    assert error.value.why == "nvidia-smi" and japanese_line(error.value.jupyterhub_message)


def run_entrypoint(tmp_path, data, *command):
    """docker/entrypoint.sh (its passwd copy written into ``tmp_path``) with MNIST_LAB_DATA=``data``, then
    ``command``; returns the finished process."""
    entrypoint = tmp_path / "entrypoint.sh"
    entrypoint.write_text((REPO / "docker" / "entrypoint.sh").read_text().replace("/tmp/passwd", str(tmp_path / "passwd")))
    env = {**os.environ, "MNIST_LAB_DATA": str(data), "HOME": str(tmp_path / "home")}
    return subprocess.run(["sh", str(entrypoint), *command], env=env, capture_output=True, text=True, check=False)


CHECKED = "import sys; from mnist_lab.data import _checked_root, UserError\ntry: _checked_root(None)\nexcept UserError: sys.exit(3)"


def test_a_fresh_volume_gets_the_images_mnist_folder_and_the_lesson_accepts_it(tmp_path):
    """The image's own MNIST_LAB_DATA with hub/.env as shipped (MNIST_DIR empty: the hub names no folder) on a fresh,
    empty /work: the entrypoint makes the folder, so the lesson's first MNIST cell can download into it."""
    image = re.search(r"^\s*MNIST_LAB_DATA=(\S+)", (REPO / "Dockerfile").read_text(), re.MULTILINE)[1]
    assert hub_env()["MNIST_DIR"] == ""  # as shipped: each student downloads MNIST into their volume
    data = tmp_path / "root" / image.lstrip("/")
    data.parent.mkdir(parents=True)  # the volume, mounted and empty
    result = run_entrypoint(tmp_path, data, sys.executable, "-c", CHECKED)
    assert result.returncode == 0, result.stderr
    assert data.is_dir()


def test_the_entrypoint_leaves_an_existing_mnist_folder_and_a_missing_mount_alone(tmp_path):
    mounted = tmp_path / "mnist"
    mounted.mkdir()
    (mounted / "MNIST").mkdir()
    mounted.chmod(0o555)
    assert run_entrypoint(tmp_path, mounted, "true").returncode == 0
    assert [p.name for p in mounted.iterdir()] == ["MNIST"]
    nowhere = tmp_path / "no" / "data"
    assert run_entrypoint(tmp_path, nowhere, "true").returncode == 0 and not nowhere.parent.exists()
    assert (tmp_path / "passwd").is_file()


@pytest.mark.parametrize("line, want", [  # each as `docker-compose config` reads it (compose v2.40)
    ('B="8g"junk', "8g"), ("B=a#b", "a#b"), ("B=a #b", "a"), ("B=$$A", "$A"), ("B=\\$A", "\\file"), ('B="\\$A"', "$A"),
    ('B="x\\\\y\\"z\\q"', 'x\\y"z\\q'), ("B=a\\tb", "a\\tb"), ("B='x\\ty'", "x\\ty"), ('B="a\\tb"', "a\tb"),
    ("B=${A}${A:-z}$A.", "filefilefile."), ('B= "q" ', "q"), ("B=${NOPE}", ""), ("B=${A:+r}${NOPE+r}", "r"),
    ("B=$Aq", ""), ('B="${A}"#c', "file"), ("B='l1\nl2'", "l1\nl2"), ("B=${NOPE:-4}", "4"), ("B='${A}'", "${A}")])
def test_hub_env_is_read_as_compose_reads_it(line, want):
    assert settings.parse(f"A=file\n{line}\nC=3\n", environ={}) == {"A": "file", "B": want, "C": "3"}
