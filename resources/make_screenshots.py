"""Regenerate resources/release_memory.png: JupyterLab with main.ipynb open and Kernel → Shut Down Kernel shown.

Needs Debian's chromium and the playwright package:

    python resources/make_screenshots.py
"""

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def jupyter_lab(root, env=None):
    """Start JupyterLab on 127.0.0.1 with a random token; yield its base URL and token; stop it afterwards."""
    port, token = free_port(), secrets.token_hex(16)
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--allow-root",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    process = subprocess.Popen(cmd, cwd=root, env={**os.environ, **(env or {})},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError("JupyterLab did not start")
        yield url, token
    finally:
        process.terminate()
        process.wait(timeout=30)


def clean_copy(destination):
    """Copy the repository's files (tracked or not ignored: no data, runs or caches) to ``destination``."""
    names = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    for name in names:
        if (REPO / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, destination / name)
    return destination


def dismiss_news(page):
    """Answer JupyterLab's 'notified about news?' toast so it does not cover the picture."""
    no = page.get_by_role("button", name="No", exact=True)
    if no.count():
        no.first.click()


def main():
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, jupyter_lab(clean_copy(Path(tmp))) as (url, token), \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 620}, locale="ja-JP")
        page.goto(f"{url}/lab/tree/main.ipynb?token={token}")
        page.locator(".jp-Notebook").wait_for(timeout=60_000)
        page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=60_000)
        time.sleep(1)
        dismiss_news(page)
        page.get_by_role("menuitem", name="Kernel", exact=True).click()
        page.get_by_role("menuitem", name="Shut Down Kernel").hover()
        time.sleep(0.5)
        page.screenshot(path=str(REPO / "resources" / "release_memory.png"))
        browser.close()
    print("wrote resources/release_memory.png")


if __name__ == "__main__":
    main()
