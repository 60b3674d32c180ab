"""Docker: the Dockerfiles lint, the compose file validates with real Compose and is safe, docker/make_env.py writes
a private .env and chooses GPUs and ports well, and (marker ``docker``) on a real Docker engine (tests/engine.py;
the engine and the image are conftest.py's, shared with test_hub.py) two students' compose projects come up side
by side, each on 127.0.0.1 behind its own token, as the student's UID with a name, within their limits, and
main.ipynb runs inside."""

import json
import os
import runpy
import shutil
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "docker"))

import make_env
from engine import compose_binary


def compose_config(tmp_path, env_text, *files):
    (tmp_path / ".env").write_text(env_text)
    shutil.copy(REPO / "docker-compose.yml", tmp_path / "docker-compose.yml")
    (tmp_path / "docker").mkdir(exist_ok=True)
    shutil.copy(REPO / "docker" / "no-gpu.yml", tmp_path / "docker" / "no-gpu.yml")
    chosen = [arg for name in files for arg in ("-f", name)]
    return subprocess.run([compose_binary(), *chosen, "config", "--format", "json"], cwd=tmp_path,
                          capture_output=True, text=True, check=False)


ENV = make_env.env_text("hanako", 1234, 1234, 8801, "f" * 48, 1, "cu126")


def test_hadolint_passes(hadolint):
    result = subprocess.run([hadolint, "Dockerfile", "hub/Dockerfile"], cwd=REPO, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_is_safe_for_a_shared_server(tmp_path):
    result = compose_config(tmp_path, ENV)
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert config["name"] == "mnist-lab-hanako"  # per-student project: two students never replace each other
    (service,) = config["services"].values()
    assert "container_name" not in service
    assert service["user"] == "1234:1234"
    assert [(p["host_ip"], str(p["published"]), p["target"]) for p in service["ports"]] == [("127.0.0.1", "8801",
                                                                                              8888)]
    assert service["environment"]["JUPYTER_TOKEN"] == "f" * 48
    (device,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"] and device["device_ids"] == ["1"]
    assert service["init"] is True and int(service["shm_size"]) >= 2**30
    assert service["build"]["args"]["CUDA"] == "cu126"


@pytest.mark.parametrize("missing", ["JUPYTER_TOKEN", "MNIST_LAB_USER", "HOST_UID", "JUPYTER_PORT"])
def test_compose_refuses_without_its_settings(tmp_path, missing):
    env = "\n".join(line for line in ENV.splitlines() if not line.startswith(missing + "="))
    result = compose_config(tmp_path, env)
    assert result.returncode != 0 and missing in result.stderr and "make_env.py" in result.stderr


def test_make_env_writes_a_private_env(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "getuid", lambda: 1500)
    monkeypatch.setattr(os, "getgid", lambda: 1500)
    monkeypatch.setattr(make_env.getpass, "getuser", lambda: "Taro.Yamada")
    path = tmp_path / ".env"
    assert make_env.main(["--output", str(path), "--gpu", "2"]) == 0
    values = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and line[0] != "#")
    assert values["MNIST_LAB_USER"] == "taro-yamada" and values["HOST_UID"] == values["HOST_GID"] == "1500"
    assert len(values["JUPYTER_TOKEN"]) == 48 and values["GPU_ID"] == "2" and values["CUDA"] == "cu126"
    assert 8800 <= int(values["JUPYTER_PORT"]) < 9000
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert compose_config(tmp_path, path.read_text()).returncode == 0
    with pytest.raises(SystemExit, match="--force"):
        make_env.main(["--output", str(path)])
    token = values["JUPYTER_TOKEN"]
    make_env.main(["--output", str(path), "--force"])
    assert token not in path.read_text()  # a fresh random token


def test_make_env_refuses_root_and_busy_ports(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "getuid", lambda: 0)
    with pytest.raises(SystemExit, match="root"):
        make_env.main(["--output", str(tmp_path / ".env")])
    monkeypatch.setattr(os, "getuid", lambda: 1500)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(SystemExit, match=str(port)):
            make_env.main(["--output", str(tmp_path / ".env"), "--port", str(port)])
    assert not (tmp_path / ".env").exists()


def load_server_config(token, **more):
    from traitlets.config import Config

    namespace = {"get_config": lambda: namespace.setdefault("c", Config())}
    env = {k: v for k, v in os.environ.items() if k not in ("JUPYTER_TOKEN", "JUPYTERHUB_API_TOKEN")}
    env.update(more)
    if token is not None:
        env["JUPYTER_TOKEN"] = token
    old = os.environ.copy()
    os.environ.clear()
    os.environ.update(env)
    try:
        runpy.run_path(str(REPO / "docker" / "jupyter_server_config.py"), init_globals=namespace)
    finally:
        os.environ.clear()
        os.environ.update(old)
    return namespace["c"]


@pytest.mark.parametrize("token", [None, "", "short"])
def test_server_refuses_to_start_without_a_real_token(token):
    with pytest.raises(SystemExit, match="JUPYTER_TOKEN"):
        load_server_config(token)


def test_server_settings():
    c = load_server_config("a" * 32)
    assert c.IdentityProvider.token == "a" * 32
    assert c.ServerApp.allow_root is False and c.ServerApp.allow_origin != "*"
    assert c.MappingKernelManager.cull_idle_timeout == 1800 and c.MappingKernelManager.cull_connected is True
    assert c.TerminalManager.cull_inactive_timeout == 1800
    overrides = json.loads((REPO / "docker" / "overrides.json").read_text())
    assert overrides["@jupyterlab/notebook-extension:tracker"]["kernelShutdown"] is True


def test_a_server_spawned_by_the_hub_needs_no_token_of_its_own():
    c = load_server_config(None, JUPYTERHUB_API_TOKEN="h" * 32)  # the hub's login guards it
    assert "token" not in c.IdentityProvider and c.ServerApp.root_dir == "/work"
    assert c.MappingKernelManager.cull_idle_timeout == 1800 and c.TerminalManager.cull_inactive_timeout == 1800


def test_env_file_is_ignored_by_git(git_checkout):
    result = subprocess.run(["git", "check-ignore", ".env"], cwd=git_checkout, capture_output=True, text=True, check=False)
    assert result.returncode == 0


# ---- a real Docker engine (marker docker): tests/engine.py ----

STUDENTS = {"aoi": (1234, 8811), "ren": (1235, 8812)}  # name: (UID, port)
COMPOSE_FILES = ("-f", "docker-compose.yml", "-f", "docker/no-gpu.yml")  # CI has no GPU


@pytest.fixture(scope="module")
def classroom(engine, image, mnist_root, tmp_path_factory):
    """Two students side by side: each a clone, a .env as make_env.py writes it, and `docker compose up -d`."""
    import secrets

    from jupyter_helpers import clean_copy

    students = {}
    for name, (uid, port) in STUDENTS.items():
        folder = clean_copy(tmp_path_factory.mktemp(name))
        shutil.copytree(Path(mnist_root) / "MNIST", folder / "data" / "MNIST")
        token = secrets.token_hex(24)
        (folder / ".env").write_text(make_env.env_text(name, uid, uid, port, token, 0, "cu126", "4g", "1.5"))
        subprocess.run(["chown", "-R", f"{uid}:{uid}", str(folder)], check=True)
        engine.compose(folder, *COMPOSE_FILES, "up", "-d", "--no-build")
        students[name] = {"folder": folder, "uid": uid, "port": port, "token": token,
                          "container": f"mnist-lab-{name}-jupyter-1"}
    try:
        for student in students.values():
            wait_healthy(engine, student["container"])
        yield students
    finally:
        for student in students.values():
            engine.compose(student["folder"], *COMPOSE_FILES, "down", check=False)


def wait_healthy(engine, container, seconds=240):
    for _ in range(seconds):
        state = engine.inspect(container)["State"]
        if state.get("Health", {}).get("Status") == "healthy":
            return
        assert state["Running"], engine.docker("logs", container, check=False).stderr[-2000:]
        time.sleep(1)
    raise AssertionError(f"{container} never became healthy")


def status_of(url, token=None):
    headers = {"Authorization": f"token {token}"} if token else {}
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10).status
    except urllib.error.HTTPError as e:
        return e.code


def test_each_student_gets_their_own_server_on_loopback_behind_their_token(engine, classroom):
    aoi, ren = classroom["aoi"], classroom["ren"]
    for student, other in ((aoi, ren), (ren, aoi)):
        config = engine.inspect(student["container"])
        bindings = config["HostConfig"]["PortBindings"]["8888/tcp"]
        assert [(b["HostIp"], b["HostPort"]) for b in bindings] == [("127.0.0.1", str(student["port"]))]
        assert config["HostConfig"]["RestartPolicy"]["Name"] == "no" and config["HostConfig"]["Init"] is True
        api = f"http://127.0.0.1:{student['port']}/api/status"
        assert status_of(api) == 403 and status_of(api, "wrong-token-0123456789") == 403
        assert status_of(api, other["token"]) == 403  # the other student's token opens nothing here
        assert status_of(api, student["token"]) == 200
        mount = next(m for m in config["Mounts"] if m["Destination"] == "/work")
        assert Path(mount["Source"]) == student["folder"]


def test_the_server_runs_as_the_student_who_has_a_name(engine, classroom):
    for name, student in classroom.items():
        said = engine.docker("exec", student["container"], "sh", "-c",
                             "id -u && whoami && python -c 'import getpass, torch, mnist_lab; "
                             "print(getpass.getuser(), torch.__version__, mnist_lab.__file__)'").split()
        assert said[:3] == [str(student["uid"]), name, name]
        assert said[3].startswith("2.14.1") and said[4] == "/work/mnist_lab/__init__.py"
    config = json.loads(engine.docker("image", "inspect", "mnist-lab-aoi:cu126"))[0]["Config"]
    assert config["User"] == "1000:1000" and config["Entrypoint"] == ["/opt/entrypoint.sh"]
    assert config["Healthcheck"]["Test"][-1] == "/opt/healthcheck.py"


def test_limits_are_in_the_containers_own_cgroup(engine, classroom):
    from engine import limits_inside

    for student in classroom.values():
        limits = limits_inside(engine, student["container"])
        assert limits["memory"] == 4 * 2**30 and limits["pids"] == "1024" and limits["cpus"] == 1.5
        assert limits["shm"] == 2**30


def test_the_draw_pad_app_opens_inside_the_students_jupyterlab(classroom):
    aoi = classroom["aoi"]
    app = urllib.request.urlopen(urllib.request.Request(
        f"http://127.0.0.1:{aoi['port']}/voila/render/mnist_lab/app.ipynb",
        headers={"Authorization": f"token {aoi['token']}"}), timeout=180)
    page = app.read().decode()  # README: お絵かきアプリ; mnist_lab is not pip-installed in the image
    assert app.status == 200 and "application/vnd.jupyter.widget-view+json" in page
    assert "There was an error when executing cell" not in page and "ModuleNotFoundError" not in page


def test_notebook_runs_inside_a_students_container(engine, classroom):
    aoi = classroom["aoi"]
    result = engine.docker("exec", "-e", "MNIST_LAB_EPOCHS=1", aoi["container"], "jupyter", "nbconvert", "--to",
                           "notebook", "--execute", "main.ipynb", "--output", "/tmp/executed.ipynb", check=False,
                           timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    model = aoi["folder"] / "runs" / "notebook" / "model.pt"
    assert model.is_file() and model.stat().st_uid == aoi["uid"]  # written as the student, not root


def test_the_no_gpu_override_only_drops_the_gpu(tmp_path):
    plain = json.loads(compose_config(tmp_path, ENV).stdout)["services"]["jupyter"]
    result = compose_config(tmp_path, ENV, "docker-compose.yml", "docker/no-gpu.yml")
    assert result.returncode == 0, result.stderr
    service = json.loads(result.stdout)["services"]["jupyter"]
    assert not service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices")
    for key in ("user", "ports", "environment", "mem_limit", "cpus", "pids_limit", "image", "init"):
        assert service[key] == plain[key]


def test_compose_limits_each_students_container_and_tags_their_own_image(tmp_path):
    config = json.loads(compose_config(tmp_path, make_env.env_text("hanako", 1234, 1234, 8801, "f" * 48, 1, "cu126",
                                                                   "8g", "2")).stdout)
    (service,) = config["services"].values()
    assert service["image"] == "mnist-lab-hanako:cu126"  # a student's build never replaces another's image
    assert int(service["mem_limit"]) == 8 * 2**30 == int(service["memswap_limit"])
    assert float(service["cpus"]) == 2 and service["pids_limit"] == 1024


FAKE_DOCKER = """#!/bin/sh
# docker, as far as make_env.py asks it: the containers listed in $FAKE_DOCKER_STATE (JSON), and $FAKE_DOCKER_VERSION
case "$1" in
  version) echo "$FAKE_DOCKER_VERSION" ;;
  ps) python3 -c "import json,os; [print(c['Id']) for c in json.load(open(os.environ['FAKE_DOCKER_STATE']))]" ;;
  inspect) python3 -c "import json,os,sys; print(json.dumps([c for c in json.load(open(os.environ['FAKE_DOCKER_STATE']))
if c['Id'] in sys.argv[1:]]))" "$@" ;;
esac
"""


def fake_server(tmp_path, monkeypatch, nvidia_smi_output, exit_code=0, version="28.3.0"):
    """PATH with a fake nvidia-smi (printing ``nvidia_smi_output``) and a fake docker; returns the containers' list."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text(f"#!/bin/sh\ncat <<'EOF'\n{nvidia_smi_output}\nEOF\nexit {exit_code}\n")
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    state = tmp_path / "containers.json"
    state.write_text("[]")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_DOCKER_STATE", str(state))
    monkeypatch.setenv("FAKE_DOCKER_VERSION", version)
    return state


def student_starts(tmp_path, monkeypatch, state, name, uid, *args):
    """``name`` runs make_env.py and `docker compose up` (recorded as a container in the fake docker)."""
    monkeypatch.setattr(os, "getuid", lambda: uid)
    monkeypatch.setattr(os, "getgid", lambda: uid)
    monkeypatch.setattr(make_env.getpass, "getuser", lambda: name)
    path = tmp_path / f"{name}.env"
    assert make_env.main(["--output", str(path), *args]) == 0
    values = make_env.previous_values(path)
    containers = [c for c in json.loads(state.read_text())
                  if c["Config"]["Labels"]["com.docker.compose.project"] != f"mnist-lab-{name}"]
    containers.append({"Id": name, "Config": {"Labels": {"com.docker.compose.project": f"mnist-lab-{name}",
                                                         "com.docker.compose.service": "jupyter"}},
                       "HostConfig": {"PortBindings": {"8888/tcp": [{"HostIp": "127.0.0.1",
                                                                     "HostPort": values["JUPYTER_PORT"]}]},
                                      "DeviceRequests": [{"Driver": "nvidia", "DeviceIDs": [values["GPU_ID"]]}]}})
    state.write_text(json.dumps(containers))
    return values


IDLE_4_GPUS = "0, 81000\n1, 81000\n2, 81000\n3, 81000"


def test_make_env_spreads_students_over_an_idle_servers_gpus(tmp_path, monkeypatch):
    state = fake_server(tmp_path, monkeypatch, IDLE_4_GPUS)
    gpus = [student_starts(tmp_path, monkeypatch, state, name, 2000 + i)["GPU_ID"]
            for i, name in enumerate(["aoi", "ren", "sora"])]
    assert gpus == ["0", "1", "2"]
    again = student_starts(tmp_path, monkeypatch, state, "aoi", 2000, "--force")  # a new .env keeps aoi's GPU
    assert again["GPU_ID"] == "0"
    assert student_starts(tmp_path, monkeypatch, state, "mio", 2010)["GPU_ID"] == "3"


def test_make_env_caps_students_per_gpu(tmp_path, monkeypatch):
    state = fake_server(tmp_path, monkeypatch, "0, 81000\n1, 81000")
    for i, name in enumerate(["a", "b", "c", "d"]):
        student_starts(tmp_path, monkeypatch, state, name, 2100 + i, "--max-per-gpu", "2")
    with pytest.raises(SystemExit, match="2 人が使っています"):
        student_starts(tmp_path, monkeypatch, state, "e", 2200, "--max-per-gpu", "2")


def test_make_env_leaves_a_stopped_containers_port_alone(tmp_path, monkeypatch):
    state = fake_server(tmp_path, monkeypatch, IDLE_4_GPUS)
    uid = 2300
    first = make_env.PORTS[uid % len(make_env.PORTS)]  # the port this UID tries first
    state.write_text(json.dumps([{"Id": "stopped", "Config": {"Labels": {"com.docker.compose.project": "mnist-lab-x",
                                                                         "com.docker.compose.service": "jupyter"}},
                                  "HostConfig": {"PortBindings": {"8888/tcp": [{"HostPort": str(first)}]}}}]))
    values = student_starts(tmp_path, monkeypatch, state, "kai", uid)
    assert int(values["JUPYTER_PORT"]) != first
    with pytest.raises(SystemExit, match=f"ポート {first} は止まっているほかのコンテナ"):
        student_starts(tmp_path, monkeypatch, state, "rin", uid + 1, "--port", str(first))


def test_make_env_says_in_one_line_when_nvidia_smi_fails(tmp_path, monkeypatch, capsys):
    error = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
    state = fake_server(tmp_path, monkeypatch, error, exit_code=9)
    with pytest.raises(SystemExit) as stopped:
        student_starts(tmp_path, monkeypatch, state, "yui", 2400)
    message = str(stopped.value)
    assert "\n" not in message and "couldn't communicate" in message and "--gpu" in message
    assert student_starts(tmp_path, monkeypatch, state, "yui", 2400, "--gpu", "1")["GPU_ID"] == "1"


def test_make_env_warns_about_an_old_docker_engine(tmp_path, monkeypatch, capsys):
    state = fake_server(tmp_path, monkeypatch, IDLE_4_GPUS, version="20.10.24+dfsg1")
    student_starts(tmp_path, monkeypatch, state, "nao", 2500)
    assert "Docker 20.10.24+dfsg1 は古すぎます" in capsys.readouterr().err
