"""The class's hub (hub/) on a real Docker engine (tests/engine.py, marker ``docker``): the admin starts it with
compose; students sign up, wait for the admin's approval, log in through the hub's own login page and each get
their own container and volume from the lesson image, with their own GPU (a fake list of two) and the limits of
hub/.env; one cannot reach another's server; main.ipynb runs inside; an edit survives a restart; an idle server
is stopped by the culler. The time from login to a ready server and an idle server's memory are printed
(README「クラスで使う」)."""

import json
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HUB_IMAGE = "mnist-lab-hub:5.5.4"
ADMIN, STUDENTS = "teacher", ("aoi", "ren")
PASSWORD = "kaeru-no-uta-42"
FAKE_GPUS = "0, 1000\n1, 81000"  # GPU 1 has the most free memory: the first student gets it, the next one GPU 0
FAKE_NVIDIA_SMI = f"#!/bin/sh\nprintf '{FAKE_GPUS}\\n'\n"
LIMITS = {"MEM_LIMIT": "2g", "CPUS": "1.5", "PIDS_LIMIT": "512", "SHM_SIZE": "256m", "MAX_PER_GPU": "1"}

pytestmark = [pytest.mark.docker, pytest.mark.slow]


class Hub:
    """The running hub: its URL, the compose command that started it, and logged-in students' sessions."""

    def __init__(self, engine, folder, env):
        self.engine, self.folder, self.env = engine, folder, env
        self.url = f"http://127.0.0.1:{env['HUB_PORT']}"

    def compose(self, *args, check=True):
        return self.engine.compose(self.folder, "-f", "docker-compose.yml", "-f", "test.yml", *args, env=self.env,
                                   check=check)

    def wait_healthy(self, seconds=120):
        import requests

        for _ in range(seconds):
            try:
                if requests.get(f"{self.url}/hub/health", timeout=5).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(1)
        raise AssertionError("the hub never answered:\n" + self.compose("logs", "hub")[-3000:])

    def session(self, name, password=PASSWORD, spawn=False):
        """Log ``name`` in through the login form; return ``(session, response)``. A login starts the server
        (the hub sends the student on to /hub/spawn) only when ``spawn``."""
        import requests

        session = requests.Session()
        session.get(f"{self.url}/hub/login", timeout=30)
        response = session.post(f"{self.url}/hub/login" + ("" if spawn else "?next=/hub/token"),
                                data={"username": name, "password": password, "_xsrf": xsrf(session)}, timeout=120)
        return session, response

    def token(self, name):
        """An API token of ``name``'s own, made through their logged-in session."""
        session, _ = self.session(name)
        response = session.post(f"{self.url}/hub/api/users/{name}/tokens", json={"note": "test"},
                                headers={"X-XSRFToken": xsrf(session)}, timeout=30)
        assert response.status_code == 201, response.text
        return response.json()["token"]

    def api(self, method, path, token, **kwargs):
        import requests

        return requests.request(method, f"{self.url}{path}", headers={"Authorization": f"token {token}"},
                                timeout=60, **kwargs)

    def server(self, name, token):
        """``name``'s default server as the hub's API describes it, or ``None`` when it is not running."""
        return self.api("GET", f"/hub/api/users/{name}", token).json()["servers"].get("")

    def wait_ready(self, name, token, seconds=300):
        for _ in range(seconds * 2):
            server = self.server(name, token)
            if server and server["ready"]:
                return server
            time.sleep(0.5)
        raise AssertionError(f"{name}'s server never became ready:\n" + self.compose("logs", "hub")[-3000:])


def xsrf(session):
    return next(cookie.value for cookie in session.cookies if cookie.name == "_xsrf")


def sign_up(hub, name, password=PASSWORD):
    import requests

    session = requests.Session()
    session.get(f"{hub.url}/hub/signup", timeout=30)
    response = session.post(f"{hub.url}/hub/signup", data={
        "username": name, "signup_password": password, "signup_password_confirmation": password,
        "_xsrf": xsrf(session)}, timeout=30)
    said = "The signup was successful!" if name == ADMIN else "Your information has been sent to the admin."
    assert response.status_code == 200 and said in response.text, response.text[-2000:]


@pytest.fixture(scope="module")
def hub(engine, image, mnist_root, tmp_path_factory):
    """The hub as the admin starts it (hub/docker-compose.yml, hub/.env), with a fake nvidia-smi listing two GPUs,
    the test's limits, MNIST given read-only; the admin and two approved students have signed up."""
    from engine import STANDIN
    from jupyter_helpers import clean_copy, free_port

    work = clean_copy(tmp_path_factory.mktemp("hub-repo"))
    engine.docker("build", "--network", "host", "--build-arg", f"BASE_IMAGE={STANDIN}", "-f", "hub/Dockerfile",
                  "-t", HUB_IMAGE, work, timeout=1800)  # what `docker compose up -d --build` builds
    fake = work / "hub" / "nvidia-smi"
    fake.write_text(FAKE_NVIDIA_SMI)
    fake.chmod(0o755)
    (work / "hub" / "test.yml").write_text(
        f"services:\n  hub:\n    volumes:\n      - {fake}:/usr/local/bin/nvidia-smi:ro\n")
    env = {"HUB_PORT": str(free_port()), "HUB_ADMIN": ADMIN, "DOCKER_SOCKET": str(engine.root / "docker.sock"),
           "MNIST_DIR": str(Path(mnist_root).resolve()), "CULL_TIMEOUT": "3600", **LIMITS}
    running = Hub(engine, work / "hub", env)
    running.compose("up", "-d", "--no-build")
    try:
        running.wait_healthy()
        for name in (ADMIN, *STUDENTS):
            sign_up(running, name)
        yield running
    finally:
        running.compose("down", "--volumes", check=False)
        for name in STUDENTS:
            engine.docker("rm", "-f", f"mnist-lab-{name}", check=False)
            engine.docker("volume", "rm", f"mnist-lab-work-{name}", check=False)


@pytest.fixture(scope="module")
def approved(hub):
    """The admin approves both students on the hub's authorize page; returns their API tokens (and the admin's)."""
    _, refused = hub.session("aoi")
    assert refused.url.startswith(f"{hub.url}/hub/login") and "has not been authorized" in refused.text
    admin, _ = hub.session(ADMIN)
    for name in STUDENTS:
        assert admin.get(f"{hub.url}/hub/authorize/{name}", timeout=30).status_code == 200
    return {name: hub.token(name) for name in (ADMIN, *STUDENTS)}


@pytest.fixture(scope="module")
def servers(hub, approved):
    """Both students log in on the hub's page, which starts their servers; returns the seconds to a ready server."""
    seconds = {}
    for name in STUDENTS:
        start = time.perf_counter()
        _, response = hub.session(name, spawn=True)
        assert response.status_code == 200 and response.url.endswith(f"/hub/spawn-pending/{name}"), response.url
        hub.wait_ready(name, approved[name])
        seconds[name] = time.perf_counter() - start
    return seconds


def container(engine, name):
    return engine.inspect(f"mnist-lab-{name}")


def run_in(engine, name, script, **kwargs):
    return engine.docker("exec", f"mnist-lab-{name}", "sh", "-c", script, **kwargs)


IDLE_RSS = """python -c 'import os, psutil
print(sum(p.memory_info().rss for p in psutil.process_iter() if p.pid != os.getpid()))'"""


def test_each_student_gets_their_own_container_volume_and_gpu(hub, servers, approved):
    engine = hub.engine
    gpus = {}
    for name in STUDENTS:
        config = container(engine, name)
        assert config["State"]["Running"] and config["Config"]["Image"] == "mnist-lab-class:cu126"
        volume = next(m for m in config["Mounts"] if m["Destination"] == "/work")
        assert volume["Type"] == "volume" and volume["Name"] == f"mnist-lab-work-{name}"
        mnist = next(m for m in config["Mounts"] if m["Destination"] == "/data/mnist")
        assert mnist["RW"] is False
        assert not any(config["NetworkSettings"]["Ports"].values())  # nothing published on the host
        (request,) = config["HostConfig"]["DeviceRequests"]
        gpus[name] = request["DeviceIDs"]
        visible = run_in(engine, name, "tr '\\0' '\\n' </proc/1/environ | grep ^NVIDIA_VISIBLE_DEVICES=")
        assert request["Capabilities"] == [["gpu"]] and visible == "NVIDIA_VISIBLE_DEVICES=" + request["DeviceIDs"][0]
        said = run_in(engine, name, "id -u; whoami; ls /work; python -c 'import mnist_lab; print(mnist_lab.__file__)'")
        uid, whoami, *files, module = said.split()
        assert uid == "1000" and whoami == name and "main.ipynb" in files and module == "/work/mnist_lab/__init__.py"
    assert gpus == {"aoi": ["1"], "ren": ["0"]}  # most free memory first, then the other: never the same GPU
    mib = {name: round(int(run_in(engine, name, IDLE_RSS)) / 2**20) for name in STUDENTS}
    print(f"\nlogin -> ready server: { {k: round(v, 1) for k, v in servers.items()} } s; "
          f"idle server memory (RSS of its processes): {mib} MiB")


def test_a_third_student_waits_when_every_gpu_is_full(hub, servers, approved):
    sign_up(hub, "sora")
    admin, _ = hub.session(ADMIN)
    admin.get(f"{hub.url}/hub/authorize/sora", timeout=30)
    token = hub.token("sora")
    hub.api("POST", "/hub/api/users/sora/server", token)
    for _ in range(60):  # a spawn still pending shows as a server until it fails
        if hub.server("sora", token) is None:
            break
        time.sleep(1)
    logs = hub.compose("logs", "hub")
    assert "どの GPU もすでに 1 人が使っています" in logs and hub.server("sora", token) is None
    assert hub.engine.docker("ps", "-q", "--filter", "name=mnist-lab-sora") == ""


def test_the_limits_of_hub_env_are_in_each_servers_cgroup(hub, servers):
    from engine import limits_inside

    for name in STUDENTS:
        limits = limits_inside(hub.engine, f"mnist-lab-{name}")
        assert limits["memory"] == 2 * 2**30 and limits["pids"] == "512" and limits["cpus"] == 1.5
        assert limits["shm"] == 256 * 2**20 and limits["capabilities"] == 0  # cap_drop ALL: none, ever


def test_one_student_cannot_reach_anothers_server(hub, servers, approved):
    aoi, ren = approved["aoi"], approved["ren"]
    assert hub.api("GET", "/user/ren/api/contents", ren).status_code == 200
    assert hub.api("GET", "/user/ren/api/contents", aoi).status_code == 403  # through the hub's proxy
    assert hub.api("GET", "/user/ren/api/contents", "not-a-token").status_code in (302, 403)
    ren_ip = container(hub.engine, "ren")["NetworkSettings"]["Networks"]["mnist-lab-hub"]["IPAddress"]
    direct = run_in(hub.engine, "aoi", f"""python - <<'EOF'
import urllib.error, urllib.request
for token in ("", "{aoi}"):
    request = urllib.request.Request("http://{ren_ip}:8888/user/ren/api/contents",
                                     headers={{"Authorization": "token " + token}} if token else {{}})
    try:
        print(urllib.request.urlopen(request, timeout=10).status)
    except urllib.error.HTTPError as e:
        print(e.code)
EOF""")
    assert direct.split() == ["403", "403"], direct  # straight across the hub's network: no token, aoi's token


def test_the_notebook_runs_inside_a_spawned_server(hub, servers):
    result = hub.engine.docker("exec", "-e", "MNIST_LAB_EPOCHS=1", "-w", "/work", "mnist-lab-aoi", "jupyter",
                               "nbconvert", "--to", "notebook", "--execute", "main.ipynb", "--output",
                               "/tmp/executed.ipynb", check=False, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    said = run_in(hub.engine, "aoi", "stat -c %u /work/runs/notebook/model.pt; ls /work/data 2>&1 | head -1")
    assert said.split()[0] == "1000" and "No such file" in said  # MNIST read from the read-only copy


def test_a_students_edit_survives_stopping_and_starting_their_server(hub, servers, approved):
    token = approved["aoi"]
    notebook = hub.api("GET", "/user/aoi/api/contents/main.ipynb", token).json()["content"]
    notebook["cells"][0]["source"] = "# あおいのメモ\n" + "".join(notebook["cells"][0]["source"])
    assert hub.api("PUT", "/user/aoi/api/contents/main.ipynb", token,
                   json={"type": "notebook", "content": notebook}).status_code == 200
    assert hub.api("PUT", "/user/aoi/api/contents/my-notes.txt", token,
                   json={"type": "file", "format": "text", "content": "覚えておくこと"}).status_code in (200, 201)
    assert hub.api("DELETE", "/hub/api/users/aoi/server", token).status_code in (202, 204)
    for _ in range(60):
        if hub.server("aoi", token) is None:
            break
        time.sleep(1)
    assert hub.engine.docker("ps", "-aq", "--filter", "name=mnist-lab-aoi") == ""  # the container is gone
    assert hub.api("POST", "/hub/api/users/aoi/server", token).status_code in (201, 202)
    hub.wait_ready("aoi", token)
    again = hub.api("GET", "/user/aoi/api/contents/main.ipynb", token).json()["content"]
    assert "".join(again["cells"][0]["source"]).startswith("# あおいのメモ")
    assert hub.api("GET", "/user/aoi/api/contents/my-notes.txt", token).json()["content"] == "覚えておくこと"
    (request,) = container(hub.engine, "aoi")["HostConfig"]["DeviceRequests"]
    assert request["DeviceIDs"] == ["1"]  # the same GPU as before


def test_an_idle_server_is_stopped_by_the_culler(hub, servers, approved):
    """The admin sets a short idle time in hub/.env and restarts the hub; an idle server is stopped, its files stay."""
    hub.env["CULL_TIMEOUT"] = "20"
    hub.compose("up", "-d", "--no-build")
    hub.wait_healthy()
    token = hub.token("ren")
    assert hub.api("POST", "/hub/api/users/ren/server", token).status_code in (201, 202)
    hub.wait_ready("ren", token)
    started = time.perf_counter()
    while hub.server("ren", token) is not None:
        assert time.perf_counter() - started < 120, "ren's idle server was never stopped"
        time.sleep(2)
    assert hub.engine.docker("ps", "-aq", "--filter", "name=mnist-lab-ren") == ""
    assert json.loads(hub.engine.docker("volume", "inspect", "mnist-lab-work-ren"))[0]["Name"]  # files stay
    print(f"\nidle server stopped {time.perf_counter() - started:.0f} s after it was ready (timeout 20 s)")
