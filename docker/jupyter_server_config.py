"""JupyterLab server settings baked into the image (see Dockerfile). Safe on a server many students share.

Standalone, JUPYTER_TOKEN guards the server; spawned by the hub (JUPYTERHUB_API_TOKEN set), the hub's login does,
and jupyterhub-singleuser sets the address and port it is given."""

import os
import sys

c = get_config()  # noqa: F821 -- provided by Jupyter when it loads this file

spawned_by_hub = bool(os.environ.get("JUPYTERHUB_API_TOKEN"))
token = os.environ.get("JUPYTER_TOKEN", "")
if not spawned_by_hub and len(token) < 16:
    sys.exit("JUPYTER_TOKEN が設定されていないか短すぎます（16文字以上）。"
             "`python docker/make_env.py` で .env を作ってから `docker compose up -d` してください。")

if not spawned_by_hub:
    c.IdentityProvider.token = token  # every request needs it; never empty
else:  # the hub's login cookies are SameSite=Lax (hub/jupyterhub_config.py); this server's _xsrf cookie too
    c.ServerApp.tornado_settings = {"xsrf_cookie_kwargs": {"samesite": "Lax"}}
    # Deleting a file frees its space: the trash would be /work/.Trash-1000, still inside the disk quota.
    c.FileContentsManager.delete_to_trash = False
c.ServerApp.ip = "0.0.0.0"  # inside the container only: compose publishes the port on the host's 127.0.0.1
c.ServerApp.port = 8888
c.ServerApp.open_browser = False
c.ServerApp.allow_root = False
c.ServerApp.allow_origin = ""  # same origin only (never "*")
c.ServerApp.allow_remote_access = True  # requests arrive through the container's network, from ssh -L
c.ServerApp.root_dir = "/work"
c.ServerApp.terminals_enabled = True

# A forgotten kernel gives its GPU memory back: shut down after 30 minutes of no activity, even with a tab open.
c.MappingKernelManager.cull_idle_timeout = 30 * 60
c.MappingKernelManager.cull_interval = 5 * 60
c.MappingKernelManager.cull_connected = True
c.MappingKernelManager.cull_busy = False  # never stop a kernel that is still training

# A forgotten terminal too (the hub stops the whole server after its own idle time, CULL_TIMEOUT in hub/.env).
c.TerminalManager.cull_inactive_timeout = 30 * 60
c.TerminalManager.cull_interval = 5 * 60
