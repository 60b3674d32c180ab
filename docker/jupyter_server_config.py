"""JupyterLab server settings baked into the image (see Dockerfile), the same in both of its modes. Safe on a server
many students share. The mode is the command's: ``start-notebook`` (standalone, JUPYTER_TOKEN guards it, read by
Jupyter itself) or ``start-singleuser`` (spawned by the hub, whose login guards it)."""

import os

c = get_config()  # noqa: F821 -- provided by Jupyter when it loads this file

c.ServerApp.ip = "0.0.0.0"  # inside the container only: compose publishes the port on the host's 127.0.0.1
c.ServerApp.port = int(os.environ["JUPYTER_PORT"])  # the image's (Dockerfile), from hub/.env
c.ServerApp.open_browser = False
c.ServerApp.allow_root = False
c.ServerApp.allow_origin = ""  # same origin only (never "*")
c.ServerApp.allow_remote_access = True  # requests arrive through the container's network, from ssh -L
c.ServerApp.root_dir = "/work"
c.ServerApp.terminals_enabled = True
# The hub's login cookies are SameSite=Lax (hub/jupyterhub_config.py); this server's _xsrf cookie too.
c.ServerApp.tornado_settings = {"xsrf_cookie_kwargs": {"samesite": "Lax"}}

# A forgotten kernel gives its GPU memory back: shut down after 30 minutes of no activity, even with a tab open.
c.MappingKernelManager.cull_idle_timeout = 30 * 60
c.MappingKernelManager.cull_interval = 5 * 60
c.MappingKernelManager.cull_connected = True
c.MappingKernelManager.cull_busy = False  # never stop a kernel that is still training

# A forgotten terminal too (the hub stops the whole server after its own idle time, CULL_TIMEOUT in hub/.env).
c.TerminalManager.cull_inactive_timeout = 30 * 60
c.TerminalManager.cull_interval = 5 * 60
