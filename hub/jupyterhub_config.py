"""JupyterHub for a class on one GPU server (hub/docker-compose.yml runs it; settings come from hub/.env).

- Login: NativeAuthenticator. Students sign up with a name and password on the hub's page; they can log in only
  after the admin approved them (/hub/authorize). The lab's server accounts stay out of it: the hub runs in a
  container and needs no access to the host's passwords (PAM would), and a student's hub account opens nothing
  but their own server.
- Servers: DockerSpawner starts one container per student from the lesson image, as its user 1000 (never root),
  with the student's own volume at /work (the lesson is put there by the image, docker/lesson.py), within the
  limits of hub/.env, on the hub's own network (no port on the host).
- GPUs: one per server, given as a device request; which one follows docker/gpu_policy.py (fewest students, a
  maximum per GPU, the student's previous GPU kept), from nvidia-smi's list and the GPUs of the running servers;
  each kernel holds at most its share of the GPU's memory (GPU_MEMORY_SHARE, docker/gpu_share.py).
- Idle servers are stopped by jupyterhub-idle-culler; their volume stays.
"""

import asyncio
import os
import shutil
import sys

import nativeauthenticator
from dockerspawner import DockerSpawner
from tornado import web
from traitlets import Integer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "docker")]  # in the image: beside this file (hub/Dockerfile)
from gpu_policy import choose_gpu, memory_share, read_gpus, requested_gpus

c = get_config()  # noqa: F821 -- provided by JupyterHub when it loads this file

ADMIN = os.environ["HUB_ADMIN"]
MEM_LIMIT = os.environ.get("MEM_LIMIT", "8g")
MAX_PER_GPU = int(os.environ.get("MAX_PER_GPU", "4"))
try:
    GPU_MEMORY_SHARE = memory_share(os.environ.get("GPU_MEMORY_SHARE", ""), MAX_PER_GPU)
except ValueError as e:
    sys.exit(f"mnist-lab hub: {e}（hub/.env）")
CULL_TIMEOUT = int(os.environ.get("CULL_TIMEOUT", "3600"))
MNIST_DIR = os.environ.get("MNIST_DIR", "")
NETWORK = os.environ.get("HUB_NETWORK", "mnist-lab-hub")


def server_gpus():
    """The server's GPUs (``None`` on a server without them); nvidia-smi's error as one line to the student."""
    try:
        return read_gpus()
    except ValueError as e:
        raise web.HTTPError(503, f"GPU の状態が読めません（nvidia-smi: {e}）。管理者に知らせてください。") from e


class LabSpawner(DockerSpawner):
    """DockerSpawner that gives each student's server one GPU, chosen by the class's policy."""

    gpu = Integer(None, allow_none=True, help="the student's GPU, kept (in the hub's database) for their next start")
    _choosing = asyncio.Lock()  # two students starting at once never get the same GPU by a race

    def load_state(self, state):
        super().load_state(state)
        self.gpu = state.get("gpu")

    def get_state(self):
        state = super().get_state()
        if self.gpu is not None:
            state["gpu"] = self.gpu
        return state

    def clear_state(self):
        gpu = self.gpu
        super().clear_state()
        self.gpu = gpu  # a stopped server forgets its container, not its GPU

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
        async with self._choosing:
            gpus = server_gpus()
            if gpus is not None:
                choice = choose_gpu(gpus, await self.gpus_of_other_students(), MAX_PER_GPU, previous=self.gpu)
                if choice is None:
                    raise web.HTTPError(503, f"どの GPU もすでに {MAX_PER_GPU} 人が使っています。"
                                             "しばらくしてからもう一度始めてください。")
                self.gpu = choice
                self.extra_host_config = {**HOST_CONFIG, "device_requests": [
                    {"driver": "nvidia", "device_ids": [str(choice)], "capabilities": [["gpu"]]}]}
                self.log.info("%s gets GPU %d", self.user.name, choice)
            return await super().start()


# ---- where the hub listens ----
c.JupyterHub.bind_url = "http://:8000"  # inside its container; compose publishes it on the host's 127.0.0.1 only
c.JupyterHub.hub_bind_url = "http://:8081"  # the hub's API, for the students' servers on the hub's network
c.JupyterHub.hub_connect_url = "http://hub:8081"
c.JupyterHub.db_url = "sqlite:////srv/jupyterhub/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "/srv/jupyterhub/jupyterhub_cookie_secret"

# ---- login ----
c.JupyterHub.authenticator_class = "nativeauthenticator.NativeAuthenticator"
c.Authenticator.admin_users = {ADMIN}
c.NativeAuthenticator.allow_all = True  # every *approved* account: NativeAuthenticator refuses the others
c.NativeAuthenticator.open_signup = False  # the admin approves each new account
c.NativeAuthenticator.minimum_password_length = 10
c.NativeAuthenticator.check_common_password = True
c.NativeAuthenticator.allowed_failed_logins = 5  # then wait:
c.NativeAuthenticator.seconds_before_next_try = 300
# its signup page, linked from the login page
c.JupyterHub.template_paths = [os.path.join(os.path.dirname(nativeauthenticator.__file__), "templates")]

# ---- the students' servers ----
HOST_CONFIG = {
    "memswap_limit": MEM_LIMIT,  # no swap beyond the memory limit
    "pids_limit": int(os.environ.get("PIDS_LIMIT", "1024")),
    "shm_size": os.environ.get("SHM_SIZE", "1g"),
    "init": True,
    "security_opt": ["no-new-privileges"],
    "cap_drop": ["ALL"],
}
c.JupyterHub.spawner_class = LabSpawner
c.DockerSpawner.image = os.environ.get("LESSON_IMAGE", "mnist-lab-class:cu126")
c.DockerSpawner.pull_policy = "never"  # built on this server by `docker compose up -d --build`
c.DockerSpawner.cmd = ["jupyterhub-singleuser"]
c.DockerSpawner.network_name = NETWORK
c.DockerSpawner.use_internal_ip = True
c.DockerSpawner.remove = True  # a stopped server's container goes; its volume stays
c.DockerSpawner.name_template = "mnist-lab-{username}"
c.DockerSpawner.notebook_dir = "/work"
c.DockerSpawner.volumes = {"mnist-lab-work-{username}": "/work"}
c.DockerSpawner.environment = {"MNIST_LAB_DATA": "/data/mnist" if MNIST_DIR else "/work/data",
                                "MNIST_LAB_GPU_MEMORY_SHARE": f"{GPU_MEMORY_SHARE:g}"}  # docker/gpu_share.py
if MNIST_DIR:
    c.DockerSpawner.volumes[MNIST_DIR] = {"bind": "/data/mnist", "mode": "ro"}
c.DockerSpawner.mem_limit = MEM_LIMIT.upper()  # JupyterHub reads 8G, Docker 8g
c.DockerSpawner.cpu_limit = float(os.environ.get("CPUS", "4"))
c.DockerSpawner.extra_host_config = HOST_CONFIG
c.DockerSpawner.extra_create_kwargs = {"labels": {"mnist-lab.student": "{raw_username}"}}
c.Spawner.default_url = "/lab/tree/main.ipynb"
c.Spawner.start_timeout = 300  # a first start copies the lesson into the new volume
c.Spawner.http_timeout = 120

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

if shutil.which("nvidia-smi") is None:
    print("mnist-lab hub: no nvidia-smi here (hub/no-gpu.yml?): students' servers start without a GPU", file=sys.stderr)
