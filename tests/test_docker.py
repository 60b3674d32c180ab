"""Docker: the Dockerfiles lint, the compose file validates with real Compose and is safe, make_env writes a private
.env from hub/.env and chooses GPUs and ports well, the image's two modes are chosen by their commands and its
health check reads the running server's own state, and (marker ``docker``) on a real Docker engine (tests/engine.py;
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
from engine import compose_binary
from jupyter_helpers import RUN_ON_FIRST_IMAGES, every_cell_ran

from mnist_lab_deploy import make_env, settings
from mnist_lab_deploy.gpu_policy import GPU

REPO = Path(__file__).resolve().parents[1]
DEPLOYMENT = settings.load()  # hub/.env: the image and limits every mode follows


@pytest.fixture(autouse=True)
def reservations(tmp_path, monkeypatch):
    """make_env's reservations file (the server's, under /tmp), this test's own."""
    monkeypatch.setattr(make_env, "RESERVATIONS", tmp_path / "reservations", raising=False)


def compose_config(tmp_path, env_text, *files):
    (tmp_path / ".env").write_text(env_text)
    shutil.copy(REPO / "docker-compose.yml", tmp_path / "docker-compose.yml")
    (tmp_path / "docker").mkdir(exist_ok=True)
    shutil.copy(REPO / "docker" / "gpus.yml", tmp_path / "docker" / "gpus.yml")
    chosen = [arg for name in files for arg in ("-f", name)]
    return subprocess.run([compose_binary(), *chosen, "config", "--format", "json"], cwd=tmp_path,
                          capture_output=True, text=True, check=False)


ENV = make_env.env_text(make_env.student_env("hanako", 1234, 1234, 8801, "f" * 48, 1))


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
    assert [(p["host_ip"], str(p["published"]), p["target"]) for p in service["ports"]] == [
        ("127.0.0.1", "8801", int(DEPLOYMENT["JUPYTER_PORT"]))]
    assert service["command"] == ["start-notebook"]  # the image's standalone mode, by its command
    assert service["environment"]["JUPYTER_TOKEN"] == "f" * 48
    (device,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"] and device["device_ids"] == ["1"]
    assert service["init"] is True and service["build"]["args"]["JUPYTER_PORT"] == DEPLOYMENT["JUPYTER_PORT"]
    assert service["build"]["args"]["CUDA"] == DEPLOYMENT["CUDA"]
    assert service["build"]["args"]["BASE_IMAGE"] == DEPLOYMENT["BASE_IMAGE"]


@pytest.mark.parametrize("missing", ["JUPYTER_TOKEN", "MNIST_LAB_USER", "HOST_UID", "HOST_PORT", "JUPYTER_PORT",
                                     "MEM_LIMIT", "CUDA", "GPUS", "SHM_SIZE"])
def test_compose_refuses_without_its_settings(tmp_path, missing):
    env = "\n".join(line for line in ENV.splitlines() if not line.startswith(missing + "="))
    result = compose_config(tmp_path, env)
    assert result.returncode != 0 and missing in result.stderr and "make_env" in result.stderr


def test_make_env_writes_a_private_env(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "getuid", lambda: 1500)
    monkeypatch.setattr(os, "getgid", lambda: 1500)
    monkeypatch.setattr(make_env.getpass, "getuser", lambda: "Taro.Yamada")
    monkeypatch.setattr(make_env, "server_gpus", lambda: [GPU(i) for i in range(4)])  # --gpu 2 is one of them
    path = tmp_path / ".env"
    assert make_env.main(["--output", str(path), "--gpu", "2"]) == 0
    values = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and line[0] != "#")
    assert values["MNIST_LAB_USER"] == "taro-yamada-1500" and values["HOST_UID"] == values["HOST_GID"] == "1500"
    assert len(values["JUPYTER_TOKEN"]) == 48 and values["GPU_ID"] == "2" and values["GPUS"] == "one"
    assert {name: values[name] for name in settings.SHARED} == {name: DEPLOYMENT[name] for name in settings.SHARED}
    assert 8800 <= int(values["HOST_PORT"]) < 9000
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


def load_server_config(**env):
    """docker/jupyter_server_config.py as Jupyter loads it, with ``env`` as the whole environment."""
    from traitlets.config import Config

    namespace = {"get_config": lambda: namespace.setdefault("c", Config())}
    old = os.environ.copy()
    os.environ.clear()
    os.environ.update(env)
    try:
        runpy.run_path(str(REPO / "docker" / "jupyter_server_config.py"), init_globals=namespace)
    finally:
        os.environ.clear()
        os.environ.update(old)
    return namespace["c"]


def test_server_settings_are_the_same_in_both_modes_with_the_images_port():
    standalone = load_server_config(JUPYTER_PORT="8765", JUPYTER_TOKEN="a" * 32)
    spawned = load_server_config(JUPYTER_PORT="8765", JUPYTERHUB_API_TOKEN="h" * 32)
    assert standalone == spawned  # the mode is the command's (start-notebook / start-singleuser), never guessed
    c = standalone
    assert c.ServerApp.port == 8765 and c.ServerApp.root_dir == "/work" and "token" not in c.IdentityProvider
    assert c.ServerApp.allow_root is False and c.ServerApp.allow_origin != "*"
    assert c.MappingKernelManager.cull_idle_timeout == 1800 and c.MappingKernelManager.cull_connected is True
    assert c.TerminalManager.cull_inactive_timeout == 1800
    overrides = json.loads((REPO / "docker" / "overrides.json").read_text())
    assert overrides["@jupyterlab/notebook-extension:tracker"]["kernelShutdown"] is True
    with pytest.raises(KeyError, match="JUPYTER_PORT"):
        load_server_config(JUPYTER_TOKEN="a" * 32)  # no default: the image sets it (Dockerfile, from hub/.env)


def fake_commands(tmp_path, *names):
    """PATH with fake ``names`` that print their name and arguments, one per line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in names:
        (bin_dir / name).write_text(f'#!/bin/sh\necho {name}; for a in "$@"; do echo "$a"; done\n')
        (bin_dir / name).chmod(0o755)
    return f"{bin_dir}:{os.environ['PATH']}"


@pytest.mark.parametrize("token", [None, "", "short"])
def test_start_notebook_refuses_to_start_without_a_real_token(tmp_path, token):
    env = {"PATH": fake_commands(tmp_path, "jupyter"), **({"JUPYTER_TOKEN": token} if token is not None else {})}
    result = subprocess.run([REPO / "docker" / "start-notebook"], env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 2 and result.stdout == ""  # jupyter never started
    assert "JUPYTER_TOKEN" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_each_mode_starts_its_own_server():
    """start-notebook: JupyterLab (its token from the environment, read by Jupyter itself); start-singleuser:
    jupyterhub-singleuser, deletions freeing their space (no trash inside the disk quota)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = fake_commands(Path(tmp), "jupyter", "jupyterhub-singleuser", "python")
        standalone = subprocess.run([REPO / "docker" / "start-notebook", "--x=1"], capture_output=True, text=True,
                                    env={"PATH": path, "JUPYTER_TOKEN": "t" * 32}, check=True).stdout.split()
        spawned = subprocess.run([REPO / "docker" / "start-singleuser", "--y=2"], capture_output=True, text=True,
                                 env={"PATH": path}, check=True).stdout.split()
    assert standalone == ["jupyter", "lab", "--x=1"]
    assert spawned[:5] == ["python", "-m", "mnist_lab_deploy.lesson", "/opt/mnist-lab/lesson", "/work"]  # into /work
    assert spawned[5:] == ["jupyterhub-singleuser", "--FileContentsManager.delete_to_trash=False", "--y=2"]
    image = (REPO / "Dockerfile").read_text()
    assert 'CMD ["start-notebook"]' in image and "COPY docker/start-notebook docker/start-singleuser" in image


def test_the_health_check_asks_the_running_server_where_it_says_it_listens(tmp_path):
    """A real server started by start-notebook on a port of its own and (as under the hub) a prefix: the check
    finds both in the server's runtime file; once the server is killed, its stale file makes no one healthy."""
    base_url = "/user/aoi/"
    from jupyter_helpers import free_port

    port = free_port()
    env = {**os.environ, "JUPYTER_TOKEN": "t" * 32, "JUPYTER_PORT": str(port),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path / "config")}
    (tmp_path / "config").mkdir()
    shutil.copy(REPO / "docker" / "jupyter_server_config.py", tmp_path / "config")
    check = [sys.executable, REPO / "docker" / "healthcheck.py"]
    assert subprocess.run(check, env=env, capture_output=True, check=False).returncode != 0  # nothing runs yet
    server = subprocess.Popen([REPO / "docker" / "start-notebook", f"--ServerApp.root_dir={tmp_path}",
                               f"--ServerApp.base_url={base_url}", "--ServerApp.ip=127.0.0.1",
                               "--ServerApp.allow_root=True"], env=env,  # CI runs as root; the image never does
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(120):
            result = subprocess.run(check, env=env, capture_output=True, text=True, check=False)
            if result.returncode == 0:
                break
            time.sleep(0.5)
        assert result.returncode == 0, result.stderr
        (state,) = (tmp_path / "runtime").glob("jpserver-*.json")
        assert json.loads(state.read_text())["port"] == port
        status = f"http://127.0.0.1:{port}{base_url}api/status"  # JUPYTER_TOKEN guards it, read by Jupyter itself
        assert status_of(status) == 403 and status_of(status, "t" * 32) == 200
    finally:
        server.kill()
        server.wait()
    result = subprocess.run(check, env=env, capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "unhealthy" in result.stderr


def test_env_file_is_ignored_by_git(git_checkout):
    result = subprocess.run(["git", "check-ignore", ".env"], cwd=git_checkout, capture_output=True, text=True, check=False)
    assert result.returncode == 0


# ---- a real Docker engine (marker docker): tests/engine.py ----

STUDENTS = {"aoi": (1234, 8811), "ren": (1235, 8812)}  # name: (UID, port)
COMPOSE_FILES = ("-f", "docker-compose.yml")


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
        (folder / ".env").write_text(make_env.env_text(make_env.student_env(  # GPUS=none: CI has no GPU
            name, uid, uid, port, token, 0, "none", MEM_LIMIT="4g", CPUS="1.5")))
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
        bindings = config["HostConfig"]["PortBindings"][f"{DEPLOYMENT['JUPYTER_PORT']}/tcp"]
        assert [(b["HostIp"], b["HostPort"]) for b in bindings] == [("127.0.0.1", str(student["port"]))]
        assert config["HostConfig"]["RestartPolicy"]["Name"] == "no" and config["HostConfig"]["Init"] is True
        api = f"http://127.0.0.1:{student['port']}/api/status"
        assert status_of(api) == 403 and status_of(api, "wrong-token-0123456789") == 403
        assert status_of(api, other["token"]) == 403  # the other student's token opens nothing here
        assert status_of(api, student["token"]) == 200
        mount = next(m for m in config["Mounts"] if m["Destination"] == "/work")
        assert Path(mount["Source"]) == student["folder"]


def test_the_server_runs_as_the_student_who_has_a_name(engine, image, classroom):
    for name, student in classroom.items():
        said = engine.docker("exec", student["container"], "sh", "-c",
                             "id -u && whoami && python -c 'import getpass, torch, mnist_lab; "
                             "print(getpass.getuser(), torch.__version__, mnist_lab.__file__)'").split()
        assert said[:3] == [str(student["uid"]), name, name]
        assert said[3].startswith("2.14.1") and said[4] == "/work/mnist_lab/__init__.py"
    config = json.loads(engine.docker("image", "inspect", image))[0]["Config"]
    assert config["User"] == "1000:1000" and config["Entrypoint"] == ["/opt/entrypoint.sh"]
    assert config["Cmd"] == ["start-notebook"] and f"JUPYTER_PORT={DEPLOYMENT['JUPYTER_PORT']}" in config["Env"]
    assert config["Healthcheck"]["Test"][-1] == "/opt/healthcheck.py"


def test_limits_are_in_the_containers_own_cgroup(engine, classroom):
    from engine import limits_inside

    for student in classroom.values():
        limits = limits_inside(engine, student["container"])
        assert limits["memory"] == 4 * 2**30 and limits["pids"] == DEPLOYMENT["PIDS_LIMIT"] and limits["cpus"] == 1.5
        assert limits["shm"] == size_in_bytes(DEPLOYMENT["SHM_SIZE"])


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
    result = engine.docker("exec", "-e", "MNIST_LAB_EPOCHS=1", aoi["container"], "python", "-c", RUN_ON_FIRST_IMAGES,
                           "/tmp/executed.ipynb", check=False, timeout=900)  # every cell; its work on the first images
    assert result.returncode == 0 and every_cell_ran(result.stdout), (result.stdout[-500:], result.stderr[-3000:])
    model = aoi["folder"] / "runs" / "notebook" / "model.pt"
    assert model.is_file() and model.stat().st_uid == aoi["uid"]  # written as the student, not root


def test_gpus_none_only_drops_the_gpu(tmp_path):
    plain = json.loads(compose_config(tmp_path, ENV).stdout)["services"]["jupyter"]
    result = compose_config(tmp_path, ENV.replace("GPUS=one", "GPUS=none"))
    assert result.returncode == 0, result.stderr
    service = json.loads(result.stdout)["services"]["jupyter"]
    assert not service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices")
    for key in ("user", "ports", "environment", "mem_limit", "cpus", "pids_limit", "image", "init", "command"):
        assert service[key] == plain[key]


def test_compose_limits_each_students_container_and_tags_their_own_image(tmp_path):
    config = json.loads(compose_config(tmp_path, make_env.env_text(make_env.student_env(
        "hanako", 1234, 1234, 8801, "f" * 48, 1, MEM_LIMIT="6g", CPUS="2"))).stdout)
    (service,) = config["services"].values()
    assert service["image"] == f"mnist-lab-hanako:{DEPLOYMENT['CUDA']}"  # never replaces another student's image
    assert int(service["mem_limit"]) == 6 * 2**30 == int(service["memswap_limit"])
    assert float(service["cpus"]) == 2 and service["pids_limit"] == int(DEPLOYMENT["PIDS_LIMIT"])
    assert int(service["shm_size"]) == size_in_bytes(DEPLOYMENT["SHM_SIZE"])


def size_in_bytes(text):
    """``1g``, ``512m`` (Docker's units) -> bytes."""
    units = {"k": 2**10, "m": 2**20, "g": 2**30}
    return int(float(text[:-1]) * units[text[-1].lower()]) if text[-1].lower() in units else int(text)


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
                       "HostConfig": {"PortBindings": {f"{DEPLOYMENT['JUPYTER_PORT']}/tcp": [{"HostIp": "127.0.0.1",
                                                                     "HostPort": values["HOST_PORT"]}]},
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
                                  "HostConfig": {"PortBindings": {f"{DEPLOYMENT['JUPYTER_PORT']}/tcp": [{"HostPort": str(first)}]}}}]))
    values = student_starts(tmp_path, monkeypatch, state, "kai", uid)
    assert int(values["HOST_PORT"]) != first
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


def test_make_env_on_a_machine_without_nvidia_gpus_asks_for_none(tmp_path, monkeypatch):
    state = fake_server(tmp_path, monkeypatch, IDLE_4_GPUS)
    (tmp_path / "bin" / "nvidia-smi").unlink()  # no NVIDIA driver: a laptop, CI (whatever this machine has)
    from mnist_lab_deploy import gpu_policy

    real_which = gpu_policy.shutil.which
    monkeypatch.setattr(gpu_policy.shutil, "which", lambda name: None if name == "nvidia-smi" else real_which(name))
    values = student_starts(tmp_path, monkeypatch, state, "hina", 2700)
    assert values["GPUS"] == "none"
    result = compose_config(tmp_path, (tmp_path / "hina.env").read_text())
    assert result.returncode == 0, result.stderr
    service = json.loads(result.stdout)["services"]["jupyter"]
    assert not service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices")
