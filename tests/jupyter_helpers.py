"""A real JupyterLab on 127.0.0.1 and a real Chromium, for the browser tests."""

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Flags that keep Chromium from phoning home on a closed network, as root, without a GPU.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},  # every cell in the DOM
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false"},
}


FIRST_IMAGES = (8000, 1000)  # training and test images kept by KEEP_FIRST_IMAGES: the lesson's paths, in seconds
KEEP_FIRST_IMAGES = f"""
import mnist_lab.data as _data
_load_mnist = _data.load_mnist
_data.load_mnist = lambda *args, **kwargs: _load_mnist(*args, **kwargs).head{FIRST_IMAGES}
"""
# Runs main.ipynb (in the current folder) top to bottom in a new kernel, as nbconvert --execute does, after a first
# cell that keeps all of MNIST loaded but the lesson's work to the first images; saved to the path in argv[1]. For a
# container: the lesson's paths, permissions and data are what is tested there, not the time of a full training.
RUN_ON_FIRST_IMAGES = f"""
import os, sys
import nbformat
from nbclient import NotebookClient
nb = nbformat.read("main.ipynb", as_version=4)
nb.cells.insert(0, nbformat.v4.new_code_cell({KEEP_FIRST_IMAGES!r}))
NotebookClient(nb, timeout=1800, kernel_name="python3", resources={{"metadata": {{"path": os.getcwd()}}}}).execute()
nbformat.write(nb, sys.argv[1])
code = [c for c in nb.cells if c.cell_type == "code"]
print("cells run:", sum(1 for c in code if c.execution_count), "of", len(code))
"""


def every_cell_ran(printed):
    """Whether what :data:`RUN_ON_FIRST_IMAGES` printed says that every code cell of the lesson ran."""
    import re

    found = re.search(r"cells run: (\d+) of (\d+)", printed)
    return bool(found) and found.group(1) == found.group(2) and int(found.group(2)) > 10


def require_browser():
    """Skip when Chromium or Playwright is missing, except under CI=true, where that is a failure."""
    import importlib.util

    missing = [what for what, ok in (("chromium", Path(CHROMIUM).is_file()),
                                     ("playwright", importlib.util.find_spec("playwright") is not None)) if not ok]
    if missing:
        message = f"browser test needs {', '.join(missing)} (apt-get install chromium; pip install playwright)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def clean_copy(destination):
    """Copy the repository's files (tracked or not ignored: no data, runs or caches) into ``destination``."""
    names = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    for name in names:
        if (REPO / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, destination / name)
    return destination


def dark_run(page, canvas, row):
    """The number of dark pixels in one row of the page's canvas (what the student sees)."""
    return canvas.evaluate("""(c, row) => { const d = c.getContext('2d').getImageData(0, row, c.width, 1).data;
                                           let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] < 128) n++;
                                           return n; }""", row)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def jupyter_lab(root, env=None):
    """Start JupyterLab in ``root`` on 127.0.0.1 with a random token; yield ``(url, token)``; stop it after."""
    port, token = free_port(), secrets.token_hex(16)
    settings = root / ".lab-settings"
    for name, values in LAB_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(values))
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--allow-root"]
    environ = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(settings), **(env or {})}
    process = subprocess.Popen(cmd, cwd=root, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("JupyterLab did not start") from None
                time.sleep(0.5)
        yield url, token
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
