"""JupyterHub for a class on one GPU server (hub/docker-compose.yml runs it). Every setting is hub/.env's, passed on
by compose and read here as ``os.environ["NAME"]``: a missing or wrong one stops the hub with one line naming it.

- Login: NativeAuthenticator (mnist_lab_deploy/hub/accounts.py, its pages in Japanese: hub/templates). Students
  sign up with a name and password on the hub's page; they can log in only after the admin approved them
  (/hub/authorize, by POST). The admin's account is made by the hub with a random password kept in its volume.
  The lab's server accounts stay out of it: the hub runs in a container and needs no access to the host's
  passwords (PAM would), and a student's hub account opens nothing but their own server, on its own subdomain
  (NAME.localhost): a page a student's server serves runs no script on the hub's.
- Servers: DockerSpawner starts one container per student from the lesson image, as its user 1000 (never root),
  with the student's own volume at /work (the lesson is put there by the image, mnist_lab_deploy/lesson.py),
  within the limits of hub/.env, on the hub's own network (no port on the host), read-only but for /work and a /tmp in memory;
  from there it reaches the hub and (INTERNET) the internet, nothing else (mnist_lab_deploy/hub/network.py). The
  image's command start-singleuser chooses its mode (the lesson put into /work, the hub's login).
- Disk: each student's /work is watched against DISK_QUOTA, and the hub keeps DISK_RESERVE for itself
  (mnist_lab_deploy/hub/disk.py). Why a server was stopped or could not start reaches the student in Japanese
  (mnist_lab_deploy/hub/messages.py, hub/templates).
- GPUs: one per server, given as a device request; which one follows mnist_lab_deploy/gpu_policy.py (fewest
  students, a maximum per GPU, the student's previous GPU kept), from nvidia-smi's list and the GPUs of the running
  servers; each kernel holds at most its share of the GPU's memory (GPU_MEMORY_SHARE, mnist_lab_deploy/gpu_share.py).
- Idle servers are stopped by jupyterhub-idle-culler; their volume stays.
"""

import asyncio
import os
import re
import shutil
import sys

import docker.errors
import nativeauthenticator
from dockerspawner import DockerSpawner
from traitlets import Dict, Integer

from mnist_lab_deploy.gpu_policy import NvidiaSmiError, choose_gpu, memory_share, requested_gpus, server_gpus
from mnist_lab_deploy.hub import messages
from mnist_lab_deploy.hub.disk import DiskWatch
from mnist_lab_deploy.hub.helper import own_image
from mnist_lab_deploy.hub.network import fence
from mnist_lab_deploy.settings import PARSERS, cpus, docker_size, port, size_in_bytes  # one reading for every mode

HERE = os.path.dirname(os.path.abspath(__file__))

c = get_config()  # noqa: F821 -- provided by JupyterHub when it loads this file


def setting(name, parse):
    """hub/.env's ``name``, read by ``parse``: a missing or wrong value stops the hub with one line saying which."""
    if name not in os.environ:
        sys.exit(f"{name} がありません。hub/.env に書き、hub/docker-compose.yml から渡してください。")
    try:
        return parse(os.environ[name])
    except (ValueError, OverflowError) as e:
        sys.exit(f"hub/.env の {name}={os.environ.get(name, '')} が読めません（{e}）。直してから起動してください。")


def one_of(*choices):
    """A parser that takes exactly one of ``choices``."""

    def parse(value):
        if value not in choices:
            raise ValueError(f"{' / '.join(choices)} のどれか")
        return value
    return parse


def account_name(value):
    """HUB_ADMIN as JupyterHub stores it (lower case), if it is a name this hub accepts (USERNAME_PATTERN)."""
    if not re.fullmatch(USERNAME_PATTERN, value.strip().lower()):
        raise ValueError("英小文字・数字・_・- の 32 文字までにしてください（例: teacher）")
    return value.strip().lower()


USERNAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"  # a container, volume and subdomain name
if not os.environ.get("HUB_ADMIN", "unset").strip():
    sys.exit("HUB_ADMIN が空です。hub/.env に管理者のアカウント名を書いてから起動してください。")
ADMIN = setting("HUB_ADMIN", account_name)
INTERNET = setting("INTERNET", one_of("yes", "no")) == "yes"
GPUS = setting("GPUS", one_of("all", "none")) == "all"
DISK_QUOTA, DISK_RESERVE = setting("DISK_QUOTA", PARSERS["DISK_QUOTA"]), setting("DISK_RESERVE", size_in_bytes)
DISK_CHECK = setting("DISK_CHECK", PARSERS["DISK_CHECK"])
DATA = "/srv/jupyterhub"  # the hub's volume: database, cookie secret, the admin's password, the disk reserve
MEM_LIMIT = setting("MEM_LIMIT", docker_size)
CPUS = setting("CPUS", cpus)
PIDS_LIMIT = setting("PIDS_LIMIT", PARSERS["PIDS_LIMIT"])
SHM_SIZE = setting("SHM_SIZE", docker_size)
JUPYTER_PORT = setting("JUPYTER_PORT", port)  # the lesson image's (its Dockerfile's build argument, from hub/.env)
MAX_PER_GPU = setting("MAX_PER_GPU", PARSERS["MAX_PER_GPU"])
GPU_MEMORY_SHARE = setting("GPU_MEMORY_SHARE", lambda value: memory_share(value, MAX_PER_GPU))
CULL_TIMEOUT = setting("CULL_TIMEOUT", PARSERS["CULL_TIMEOUT"])
MNIST_DIR = setting("MNIST_DIR", PARSERS["MNIST_DIR"])
NETWORK = setting("HUB_NETWORK", str)
LESSON_IMAGE = setting("LESSON_IMAGE", str)


def student_gpus():
    """The GPUs to give out (``[]``: none, GPUS=none or no GPU here); nvidia-smi's error as one line to the student."""
    try:
        return server_gpus() if GPUS else []
    except NvidiaSmiError as e:
        raise messages.nvidia_smi_failed(e) from e


class LabSpawner(DockerSpawner):
    """DockerSpawner that gives each student's server one GPU, chosen by the class's policy, fences its network,
    watches its disk and tells the student why it could not start or was stopped."""

    gpu = Integer(None, allow_none=True, help="the student's GPU, kept (in the hub's database) for their next start")
    stop_note = Dict(None, allow_none=True, help="why the hub stopped the server (messages.note), until its next start")
    disk_baseline = Integer(0, help="what /work held when the disk watcher last stopped the server for its quota")
    _choosing = asyncio.Lock()  # two students starting at once never get the same GPU by a race
    KEPT = ("gpu", "stop_note", "disk_baseline")  # kept in the hub's database across stops

    def load_state(self, state):
        super().load_state(state)
        self.gpu, self.stop_note, self.disk_baseline = state.get("gpu"), state.get("stop_note"), \
            state.get("disk_baseline", 0)

    def get_state(self):
        state = super().get_state()
        state.update({name: getattr(self, name) for name in self.KEPT if getattr(self, name) is not None})
        return state

    def clear_state(self):
        kept = {name: getattr(self, name) for name in self.KEPT}
        super().clear_state()
        for name, value in kept.items():  # a stopped server forgets its container, not its GPU or why it stopped
            setattr(self, name, value)

    @property
    def stop_message(self):
        """Why the hub stopped this server, in Japanese ("" when it did not): shown on the student's page."""
        return messages.from_note(self.stop_note).jupyterhub_message if self.stop_note else ""

    @property
    def stop_why(self):
        return self.stop_note["why"] if self.stop_note else ""

    async def pull_image(self, image):
        try:
            await super().pull_image(image)
        except docker.errors.NotFound as e:
            raise messages.image_missing(image) from e

    async def poll(self):
        """DockerSpawner's poll, and the disk watcher's look: a server it stops is reported stopped."""
        status = await super().poll()
        if status is not None or self.pending:  # stopped, or starting/stopping: JupyterHub is on it
            return status
        self.stop_note = await WATCH.check(self)
        if self.stop_note is None:
            return None
        if self.stop_note["why"] == "disk-quota":
            self.disk_baseline = self.stop_note["args"][0]
        self.log.warning("Stopping %s's server: %s", self.user.name, self.stop_message)
        await self.stop()
        return f"stopped by the disk watcher ({self.stop_why})"

    async def gpus_of_other_students(self):
        """The GPU index of every other student's running server (a list with repeats)."""
        taken = []
        for container in await self.docker("containers", filters={"label": "mnist-lab.student"}):
            if container["Labels"]["mnist-lab.student"] == self.user.name:
                continue
            info = await self.docker("inspect_container", container["Id"])
            taken += requested_gpus(info["HostConfig"])
        return taken

    async def start(self):
        self.stop_note = None  # shown on the page the student started from; a new start is a new story
        async with self._choosing:
            gpus = student_gpus()
            if gpus:
                choice = choose_gpu(gpus, await self.gpus_of_other_students(), MAX_PER_GPU, previous=self.gpu)
                if choice is None:
                    raise messages.gpus_full(MAX_PER_GPU)
                self.gpu = choice
                self.extra_host_config = {**HOST_CONFIG, "device_requests": [
                    {"driver": "nvidia", "device_ids": [str(choice)], "capabilities": [["gpu"]]}]}
                self.log.info("%s gets GPU %d", self.user.name, choice)
            address = await super().start()
        try:
            await fence(self, await own_image(self), NETWORK, INTERNET, JUPYTER_PORT)
        except Exception as e:  # JupyterHub stops the container of a failed start
            self.log.error("Could not fence %s's server: %s", self.user.name, e)
            raise messages.fence_failed(e) from e
        return address


# ---- where the hub listens ----
c.JupyterHub.bind_url = "http://:8000"  # inside its container; compose publishes it on the host's 127.0.0.1 only
c.JupyterHub.hub_bind_url = "http://:8081"  # the hub's API, for the students' servers on the hub's network
c.JupyterHub.hub_connect_url = "http://hub:8081"
c.JupyterHub.db_url = f"sqlite:///{DATA}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{DATA}/jupyterhub_cookie_secret"
# Not in the volume: a pid file left there by a killed hub names a process of the next container (compose gives
# the hub a fresh /tmp at every start).
c.ConfigurableHTTPProxy.pid_file = "/tmp/jupyterhub-proxy.pid"
# Each student's server on its own origin, NAME.localhost (browsers resolve *.localhost to this computer, which
# `ssh -L` forwards): a page a student's server serves cannot act on the hub's origin with the admin's cookies.
c.JupyterHub.subdomain_host = setting("HUB_URL", PARSERS["HUB_URL"]) or f"http://localhost:{setting('HUB_PORT', port)}"
# SameSite=Lax on every cookie of the hub (login, session, _xsrf) and, through JUPYTERHUB_COOKIE_OPTIONS, on the
# students' servers' login cookies: another site's form or script never sends them along.
c.JupyterHub.tornado_settings = {"cookie_options": {"samesite": "Lax"}}

# ---- login ----
c.JupyterHub.authenticator_class = "mnist_lab_deploy.hub.accounts.LabAuthenticator"
c.Authenticator.admin_users = {ADMIN}
c.LabAuthenticator.admin_password_file = f"{DATA}/admin-password"
c.Authenticator.username_pattern = USERNAME_PATTERN
c.NativeAuthenticator.allow_all = True  # every *approved* account: NativeAuthenticator refuses the others
c.NativeAuthenticator.open_signup = False  # the admin approves each new account
c.NativeAuthenticator.minimum_password_length = 10
c.NativeAuthenticator.check_common_password = True
c.NativeAuthenticator.allowed_failed_logins = 5  # then wait (never the admin: mnist_lab_deploy/hub/accounts.py):
c.NativeAuthenticator.seconds_before_next_try = 300
# The pages in Japanese (login, sign-up, error, server not running, approval by POST) first, then
# NativeAuthenticator's (those not translated), then JupyterHub's own.
c.JupyterHub.template_paths = [os.path.join(HERE, "templates"),
                               os.path.join(os.path.dirname(nativeauthenticator.__file__), "templates")]

# ---- the students' servers ----
HOST_CONFIG = {
    "memswap_limit": MEM_LIMIT,  # no swap beyond the memory limit
    "pids_limit": PIDS_LIMIT,
    "shm_size": SHM_SIZE,
    # Only /work (the watched volume) takes disk: the image read-only, /tmp (HOME too) in the student's memory.
    "read_only": True,
    "tmpfs": {"/tmp": f"size={SHM_SIZE},mode=1777"},
    "init": True,
    "security_opt": ["no-new-privileges"],
    "cap_drop": ["ALL"],
}
c.JupyterHub.spawner_class = LabSpawner
c.DockerSpawner.image = LESSON_IMAGE
c.DockerSpawner.pull_policy = "never"  # built on this server by `docker compose up -d --build`
c.DockerSpawner.cmd = ["start-singleuser"]  # the image's hub mode (docker/start-singleuser)
c.DockerSpawner.port = JUPYTER_PORT
c.DockerSpawner.network_name = NETWORK
c.DockerSpawner.use_internal_ip = True
c.DockerSpawner.remove = True  # a stopped server's container goes; its volume stays
c.DockerSpawner.name_template = "mnist-lab-{username}"
c.DockerSpawner.notebook_dir = "/work"
c.DockerSpawner.volumes = {"mnist-lab-work-{username}": "/work"}
c.DockerSpawner.environment = {"MNIST_LAB_GPU_MEMORY_SHARE": f"{GPU_MEMORY_SHARE:g}"}  # mnist_lab_deploy/gpu_share.py
if MNIST_DIR:  # else the image's own MNIST_LAB_DATA (/work/data, in the student's volume)
    c.DockerSpawner.volumes[MNIST_DIR] = {"bind": "/data/mnist", "mode": "ro"}
    c.DockerSpawner.environment["MNIST_LAB_DATA"] = "/data/mnist"
c.DockerSpawner.mem_limit = int(MEM_LIMIT) if MEM_LIMIT.isdigit() else MEM_LIMIT.upper()  # JupyterHub: 8G, Docker: 8g
c.DockerSpawner.cpu_limit = CPUS
c.DockerSpawner.extra_host_config = HOST_CONFIG
c.DockerSpawner.extra_create_kwargs = {"labels": {"mnist-lab.student": "{raw_username}"}}
c.Spawner.default_url = "/lab/tree/main.ipynb"
c.Spawner.start_timeout = 300  # a first start copies the lesson into the new volume
c.Spawner.http_timeout = 120
c.Spawner.poll_interval = DISK_CHECK  # each poll also asks the disk watcher
WATCH = DiskWatch(DISK_QUOTA, DISK_RESERVE, DISK_CHECK, DATA)

# ---- idle servers ----
c.JupyterHub.services = [{
    "name": "idle-culler",
    "command": [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={CULL_TIMEOUT}",
                f"--cull-every={max(5, min(300, CULL_TIMEOUT // 4))}"],
}]
c.JupyterHub.load_roles = [{
    "name": "idle-culler",
    "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
    "services": ["idle-culler"],
}]

if GPUS and shutil.which("nvidia-smi") is None:
    print("mnist-lab hub: GPUS=all but no nvidia-smi here: students' servers start without a GPU (hub/.env: GPUS=none "
          "on a server without NVIDIA GPUs)", file=sys.stderr)
