"""The draw pad as a web app (``mnist-lab app``): its checks before serving, its model, and a real Chromium drawing
on it with the mouse and, as on a phone, with touch events.

With MNIST_LAB_UPDATE_SCREENSHOTS=1 the browser test replaces resources/app.png, which the README shows.
"""

import base64
import contextlib
import html
import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from invariants import JAPANESE, assert_one_japanese_line
from jupyter_helpers import CHROMIUM_ARGS, REPO, dark_run, free_port
from test_cli import assert_one_line_error

from mnist_lab import UserError, paths
from mnist_lab.app import CHECKPOINT_ENV, PAD_MODEL, checked_address, drawing_app, model_source
from mnist_lab.checkpoint import read_checkpoint
from mnist_lab.cli import main
from mnist_lab.paths import HOME_FOLDERS
from mnist_lab.widgets import DrawPad

sys.path.insert(0, str(REPO / "benchmarks"))
from handwriting import drawings, render, upright

# --- before serving: one line for every mistake ------------------------------------------------------------------

def test_a_port_in_use_is_one_line_naming_the_port(capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(UserError, match=str(port)):
            checked_address("127.0.0.1", port, None)
        code = main(["app", "--port", str(port)])
    out, err = capsys.readouterr()
    assert_one_line_error(code, err, str(port), "--port")
    assert out == ""  # nothing was started


def test_a_token_is_made_unless_refused_and_only_loopback_may_go_without():
    port = free_port()
    token = checked_address("127.0.0.1", port, None)
    assert len(token) >= 24 and token != checked_address("127.0.0.1", port, None)
    assert checked_address("127.0.0.1", port, "") == ""
    with pytest.raises(UserError, match="トークンが必要"):
        checked_address("0.0.0.0", port, "")
    with pytest.raises(UserError, match="ポート番号 70000"):
        checked_address("127.0.0.1", 70000, None)


@pytest.mark.parametrize("checkpoint", ["missing.pt", "notes.txt"])
def test_a_bad_checkpoint_is_one_line_before_any_server_starts(tmp_path, checkpoint, capsys):
    (tmp_path / "notes.txt").write_text("not a model")
    code = main(["app", str(tmp_path / checkpoint), "--port", str(free_port())])
    out, err = capsys.readouterr()
    assert_one_line_error(code, err, checkpoint)
    assert out == ""  # nothing was started


# --- the model the app reads with --------------------------------------------------------------------------------

def test_the_shipped_pad_model_is_small_and_made_by_the_pad_recipe():
    from dataclasses import asdict

    from mnist_lab.recipes import PRESETS

    assert PAD_MODEL.stat().st_size < 500_000  # resources/make_pad_model.py writes it
    ckpt = read_checkpoint(PAD_MODEL)
    assert ckpt["model"] == "pad_cnn" and ckpt["config"] == asdict(PRESETS["pad"])
    assert ckpt["results"]["test_accuracy"] >= 0.993 and ckpt["results"]["energy_threshold"] is not None


def test_the_pad_model_reads_the_drawn_set():
    import torch

    from mnist_lab.checkpoint import load_checkpoint
    from mnist_lab.inference import predict_proba
    from mnist_lab.preprocess import preprocess_drawing

    model, _ = load_checkpoint(PAD_MODEL)
    items = drawings(24, seed=0)
    X = torch.cat([preprocess_drawing(render(strokes, width)) for _, _, strokes, width in items])
    y = torch.tensor([digit for digit, *_ in items])
    assert (predict_proba(model, X).argmax(1) == y).float().mean() >= 0.95  # benchmarks/pad_model.py: the figures


def test_the_app_widget_says_which_model_it_reads_with(tmp_path, monkeypatch):
    monkeypatch.delenv(CHECKPOINT_ENV, raising=False)
    app = drawing_app()
    source, pad = app.children
    accuracy = read_checkpoint(PAD_MODEL)["metrics"]["test_accuracy"]
    assert model_source()[0] == PAD_MODEL and PAD_MODEL.name in source.value and f"{accuracy:.2%}" in source.value
    assert isinstance(pad, DrawPad) and next(pad.model.parameters()).device.type == "cpu"
    monkeypatch.setenv(CHECKPOINT_ENV, str(tmp_path / "mine.pt"))
    path, words = model_source()
    assert path == tmp_path / "mine.pt" and str(path) in words


def test_a_replaced_pad_model_is_not_called_the_bundled_one(tmp_path, monkeypatch):
    import shutil

    from mnist_lab import app, build_model
    from mnist_lab.checkpoint import write_checkpoint

    monkeypatch.delenv(CHECKPOINT_ENV, raising=False)
    copy = tmp_path / "pad_model.pt"
    shutil.copy(PAD_MODEL, copy)
    monkeypatch.setattr(app, "PAD_MODEL", copy)
    bundled = model_source()[1]
    for model, results in (("quick_cnn", {"test_accuracy": 0.995}), ("pad_cnn", {"test_accuracy": 0.995})):
        write_checkpoint(copy, build_model(model), {"model": model}, results)  # as a student's model saved there
        assert model_source() == (copy, model_source()[1]) and model_source()[1] != bundled
        source, _ = drawing_app().children
        assert bundled not in html.unescape(source.value)


def test_a_checkpoint_gone_after_the_start_is_one_line_on_the_page(tmp_path, monkeypatch):
    import ipywidgets as widgets

    (tmp_path / "notes.txt").write_text("not a model")
    for unreadable in (tmp_path / "appck" / "model.pt", tmp_path / "notes.txt"):  # removed, or replaced by another file
        monkeypatch.setenv(CHECKPOINT_ENV, str(unreadable))  # as `mnist-lab app CHECKPOINT` tells the page's kernel
        page = drawing_app()
        assert isinstance(page, widgets.HTML) and str(unreadable) in page.value  # no pad, the file named


def test_the_title_shows_the_checkpoint_path_as_text(tmp_path):
    import shutil

    odd = tmp_path / "odd" / "<i>x" / "model.pt"
    odd.parent.mkdir(parents=True)
    shutil.copy(PAD_MODEL, odd)
    source, _ = drawing_app(str(odd)).children
    assert "<i>" not in source.value and str(odd) in html.unescape(source.value)


# --- in a real browser ---------------------------------------------------------------------------------------------

# --- the server: kernels, the terminal, signals ----------------------------------------------------------------

class RunningApp:
    """``mnist-lab app`` as a student runs it: ``url`` (with the token) and ``process``; once stopped, ``out`` and
    ``err`` (all it printed)."""

    def kernels(self):
        """The kernel processes it runs (ipykernel children), as ``{pid: kernel id}``."""
        return kernel_processes(self.process.pid)


def kernel_processes(parent):
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes().decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        kernel = re.search(r"kernel-([0-9a-f-]{36})\.json", command)
        if ppid == parent and "ipykernel" in command and kernel:
            found[int(entry.name)] = kernel.group(1)
    return found


# Run the app with the kernels of pages nobody uses culled within seconds (minutes in real use).
FAST_CULLING = ("import sys, mnist_lab.app_server as s; s.IDLE_SECONDS, s.CULL_EVERY = 3, 1; "
                "from mnist_lab.cli import main; sys.exit(main(sys.argv[1:]))")


READY_WITHIN = 180  # seconds: the app says it is ready within about 10 s on 2 cores (30 s on a loaded machine)


@contextmanager
def app_server(*args, fast_culling=False, env=None):
    """Run ``mnist-lab app`` on a free port (in ``env``, by default this process's environment); yield a
    :class:`RunningApp` once it says it is ready; stop it with Ctrl+C after, and check that it stopped as it says."""
    port = free_port()
    start = ["-c", FAST_CULLING] if fast_culling else ["-m", "mnist_lab"]
    app = RunningApp()
    app.process = subprocess.Popen([sys.executable, *start, "app", "--port", str(port), *args],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env={**(os.environ if env is None else env), "PYTHONPATH": str(REPO)})
    never_ready = threading.Timer(READY_WITHIN, app.process.kill)  # an app that hangs fails the test, not CI
    never_ready.start()
    try:
        app.url, lines = None, []
        for line in app.process.stdout:
            lines.append(line)
            found = re.search(r"(http://127\.0\.0\.1:\d+/\S*)", line)
            if found:
                app.url = found.group(1)
                break
        never_ready.cancel()
        assert app.url, f"the app never said it was ready: {app.process.stderr.read()[-2000:]}"
        yield app
    finally:
        app.process.send_signal(signal.SIGINT)  # as Ctrl+C
        try:
            app.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            app.process.kill()
        rest, app.err = app.process.communicate()
        app.out = "".join(lines) + rest
        assert "アプリを止めました" in rest and app.process.returncode == 0, app.err[-2000:]


class Visitor:
    """A browser without JavaScript (as ``curl``), keeping cookies; ``close_page`` sends what the page's script
    sends when the page closes or reloads (Voilà's shutdown request, with the ``_xsrf`` cookie's value)."""

    def __init__(self):
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def open_page(self, url):
        """Return the kernel id of the page at ``url``."""
        with self.opener.open(url, timeout=120) as response:
            return re.search(r'"kernelId": "([0-9a-f-]{36})"', response.read().decode()).group(1)

    def close_page(self, url, kernel_id):
        xsrf = next((cookie.value for cookie in self.jar if cookie.name == "_xsrf"), "")
        body = f'--b\r\nContent-Disposition: form-data; name="_xsrf"\r\n\r\n{xsrf}\r\n--b--\r\n'.encode()
        request = urllib.request.Request(f"{url.split('?')[0]}voila/api/shutdown/{kernel_id}", data=body,
                                         headers={"Content-Type": "multipart/form-data; boundary=b"})
        try:
            with self.opener.open(request, timeout=60) as response:
                return response.status
        except urllib.error.HTTPError as e:
            return e.code

    def connect(self, url, kernel_id):
        """Open the page's websocket to its kernel, as the page's script does; return ``(HTTP status, socket)``
        (101 when connected; close the socket to leave)."""
        port = int(re.search(r":(\d+)/", url).group(1))
        cookies = "; ".join(f"{cookie.name}={cookie.value}" for cookie in self.jar)
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(f"GET /api/kernels/{kernel_id}/channels HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                     f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\nCookie: {cookies}\r\n"
                     f"Origin: http://127.0.0.1:{port}\r\n\r\n".encode())
        return int(sock.recv(4096).split()[1]), sock


def wait_for(condition, seconds):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.2)
    return condition()


def test_every_page_gives_its_kernel_back_once_closed_or_left_alone():
    """Closed or reloaded: at once (the page's own request). Never connected (curl) or gone without a word (a
    crashed browser, a sleeping phone): once idle. A page still connected keeps its kernel."""
    with app_server(fast_culling=True) as app:  # kernels nobody connects to go after 3 s (2 min in real use)
        student = Visitor()
        closed = student.open_page(app.url)
        assert closed in app.kernels().values()
        assert student.close_page(app.url, closed) == 204 and closed not in app.kernels().values()

        drawing = student.open_page(app.url)
        status, websocket = student.connect(app.url, drawing)
        assert status == 101
        never_connected = Visitor().open_page(app.url)
        assert never_connected in app.kernels().values()
        assert wait_for(lambda: never_connected not in app.kernels().values(), 60)
        assert drawing in app.kernels().values()  # connected all along: kept while the others went
        websocket.close()
        assert wait_for(lambda: drawing not in app.kernels().values(), 60)
        assert len(app.kernels()) == 1  # the pool's kernel, waiting for the next page
        assert Visitor().open_page(app.url)


CAPPED = ("import sys, mnist_lab.app_server as s; s.MAX_KERNELS, s.EVICT_AFTER, s.CULL_EVERY = 3, 0, 1; "
          "from mnist_lab.cli import main; sys.exit(main(sys.argv[1:]))")


def test_reloads_that_never_connect_cannot_fill_the_memory(monkeypatch):
    """A client that loads the page again and again without ever connecting (curl, a link preview) leaves at most
    MAX_KERNELS kernels (3 here, 6 in real use), and a page that is connected keeps its kernel all along."""
    monkeypatch.setattr(sys.modules[__name__], "FAST_CULLING", CAPPED)
    with app_server(fast_culling=True) as app:
        student = Visitor()
        drawing = student.open_page(app.url)
        status, websocket = student.connect(app.url, drawing)
        assert status == 101
        time.sleep(2.5)  # a cull check has seen it connected
        counts = []
        for _ in range(6):
            Visitor().open_page(app.url)
            time.sleep(1.5)  # a cull check sees the new kernel alone
            counts.append(len(app.kernels()))
        assert max(counts) <= 3 + 1 and drawing in app.kernels().values(), counts  # + the pool's waiting kernel
        websocket.close()


BURST = ("import sys, mnist_lab.app_server as s; s.MAX_KERNELS, s.EVICT_AFTER = 2, 600; "
         "from mnist_lab.cli import main; sys.exit(main(sys.argv[1:]))")


def test_a_burst_of_page_loads_never_runs_more_than_max_kernels(monkeypatch):
    """Eight pages loaded at the same moment (a script, a phone reopening its tabs): never more than MAX_KERNELS
    kernels (2 here), the pool's waiting one and those starting included; the pages past it get a Japanese page
    saying the app is full (503), and the others the app (its kernel has started once its headers come)."""
    monkeypatch.setattr(sys.modules[__name__], "FAST_CULLING", BURST)
    with app_server(fast_culling=True) as app:
        seen, done = [], threading.Event()

        def watch():
            while not done.is_set():
                seen.append(len(app.kernels()))
                time.sleep(0.05)

        def load(_):
            """The page's status and, when refused, its text; None for a page still loading after 5 s (its kernel
            runs the app's cells first, a minute on a loaded machine): not refused, so counted as served."""
            try:
                with urllib.request.urlopen(app.url, timeout=5) as response:
                    return response.status, ""
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode()
            except (TimeoutError, urllib.error.URLError):
                return None, ""

        watcher = threading.Thread(target=watch)
        watcher.start()
        with ThreadPoolExecutor(8) as loads:
            pages = list(loads.map(load, range(8)))
        time.sleep(2)  # the pool refills FILL_DELAY (1 s) after a page took its kernel: it must wait for room
        done.set()
        watcher.join()
    statuses = [status for status, _ in pages]
    assert max(seen) <= 2, seen
    assert 200 in statuses and 503 in statuses and set(statuses) <= {200, 503, None}, statuses
    assert all(JAPANESE.search(text) for status, text in pages if status == 503)


def test_odd_requests_print_nothing_and_the_app_goes_on():
    """What browsers and old tabs send (a tab from an earlier run reconnecting to its kernel, odd paths, wrong
    methods, no token): the terminal shows only the app's own Japanese lines, and the app goes on serving. The URL
    without its token gets a Japanese page whose form logs in with the token."""
    with app_server() as app:
        base = app.url.split("?")[0]
        student, old_tab = Visitor(), str(uuid.uuid4())
        assert student.open_page(app.url)  # and logged in with this run's token
        for visitor in (student, Visitor()):  # a tab of an earlier run, with or without a login cookie, reconnecting
            status, websocket = visitor.connect(app.url, old_tab)
            websocket.close()
            assert status in (403, 404)
        for path, data in (("voila/templates/x", None), ("%ff%fe", None), ("", b"x"), ("api/kernels", None),
                           (f"voila/api/shutdown/{old_tab}", b"_xsrf=wrong"), ("voila/static/../../etc", None)):
            with contextlib.suppress(urllib.error.HTTPError):
                student.opener.open(urllib.request.Request(base + path, data=data), timeout=60).close()
        assert student.open_page(app.url)

        stranger = Visitor()  # the URL without its token: a page in Japanese whose form takes the token
        with stranger.opener.open(base, timeout=60) as response:
            login = response.read().decode()
        assert '<html lang="ja"' in login and 'name="password"' in login
        action = html.unescape(re.search(r'<form method="post" action="([^"]+)"', login).group(1))
        xsrf = next(cookie.value for cookie in stranger.jar if cookie.name == "_xsrf")
        for typed, status in (("wrong", 401), (app.url.split("token=")[1], 200)):
            form = urllib.parse.urlencode({"_xsrf": xsrf, "password": typed}).encode()
            try:
                with stranger.opener.open(base.rstrip("/") + action, data=form, timeout=120) as response:
                    answer, code = response.read().decode(), response.status
            except urllib.error.HTTPError as e:
                answer, code = e.read().decode(), e.code
            assert code == status and ('"kernelId"' in answer) == (status == 200)
    assert app.err == "" and "Traceback" not in app.out
    assert all(re.search(r"[^\x00-\x7f]", line) for line in app.out.splitlines() if line.strip())  # Japanese only


def test_a_signal_at_any_moment_of_the_start_is_one_line_at_most():
    """Ctrl+C (to the process group, as a terminal sends it) or SIGTERM while the app loads Voilà, starts its
    server, starts the page's kernel, runs the page: at most one line, and 128 + the signal's number, as a shell
    reports a command a signal stopped (once the app has said it is ready, stopping it is its normal end: 0)."""
    for seconds, signum in ((0.5, signal.SIGINT), (1.5, signal.SIGTERM), (2.5, signal.SIGINT), (3.5, signal.SIGTERM)):
        process = subprocess.Popen([sys.executable, "-m", "mnist_lab", "app", "--port", str(free_port()), "--no-token"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                                   env={**os.environ, "PYTHONPATH": str(REPO)})
        first = process.stdout.readline()  # it has started: from here Voilà loads, then its server starts
        time.sleep(seconds)
        os.killpg(process.pid, signum)
        out, err = process.communicate(timeout=60)
        ready = "http://" in out
        assert process.returncode in ((0,) if ready else (128 + signum, -signum)), (seconds, first + out, err)
        assert len([line for line in err.splitlines() if line.strip()]) <= 1 and "Traceback" not in first + out + err, (seconds, first + out, err)



def homeless_environment(tmp_path):
    """This process's environment with HOME "inside" a regular file, where nothing can be made, not even by root
    (as a read-only or missing home folder for a student), and no variable choosing the libraries' folders."""
    (tmp_path / "file").write_text("")
    env = {name: value for name, value in os.environ.items() if name not in HOME_FOLDERS and not name.startswith("XDG_")}
    return {**env, "HOME": str(tmp_path / "file" / "home")}


def environment_of(pid):
    entries = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(entry.decode(errors="replace").split("=", 1) for entry in entries if b"=" in entry)


def test_a_home_folder_nothing_can_be_written_in_still_serves_the_page(tmp_path):
    """Jupyter, IPython and matplotlib keep their folders in one private temporary folder instead, which the page's
    kernels use too and which goes when the app stops; the terminal shows the app's own lines only."""
    with app_server(env=homeless_environment(tmp_path)) as app:
        assert Visitor().open_page(app.url)  # the notebook ran in a kernel: the page has its widgets
        kernel = environment_of(next(iter(app.kernels())))
        folders = [Path(kernel[name]) for name in ("JUPYTER_DATA_DIR", "IPYTHONDIR", "MPLCONFIGDIR")]
        private = folders[0].parent
        assert private.is_dir() and all(folder.parent == private for folder in folders), folders
    assert not private.exists()
    assert app.err == "" and all(re.search(r"[^\x00-\x7f]", line) for line in app.out.splitlines() if line.strip())


def stray_processes(mark):
    """Processes whose environment carries ``mark`` (what an app and its kernels inherit)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if mark in (entry / "environ").read_bytes():
                found.append(int(entry.name))
    return found


# Run the app with its page failing as it failed with a home folder Jupyter could not write in.
FAILING_PAGE = ("import sys, nbformat.sign as sign\n"
                "def refuse(*args, **kwargs): raise PermissionError(13, 'Permission denied', '/home/x/.local')\n"
                "sign.NotebookNotary.__init__ = refuse\n"
                "from mnist_lab.cli import main; sys.exit(main(sys.argv[1:]))")


def test_a_page_that_cannot_be_made_is_one_line_and_status_2():
    """Never a server that runs without a page: the app stops, with its kernels, and says so in one line."""
    mark = str(uuid.uuid4())
    result = subprocess.run([sys.executable, "-c", FAILING_PAGE, "app", "--port", str(free_port()), "--no-token"],
                            capture_output=True, text=True, timeout=120, check=False,
                            env={**os.environ, "PYTHONPATH": str(REPO), "MNIST_LAB_TEST_MARK": mark})
    assert result.returncode == 2, result.stdout + result.stderr
    assert_one_japanese_line(result.stderr)
    assert "http://" not in result.stdout  # it never said it was ready
    assert wait_for(lambda: not stray_processes(f"MNIST_LAB_TEST_MARK={mark}".encode()), 30)  # no kernel left behind


def test_no_folder_to_write_in_at_all_is_one_line_before_any_server_starts(tmp_path, monkeypatch, capsys):
    def refuse(*args, **kwargs):
        raise FileNotFoundError(2, "No usable temporary directory found")

    for name in (*HOME_FOLDERS, "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", homeless_environment(tmp_path)["HOME"])
    monkeypatch.setattr(paths, "_private", [])  # no private folder made yet in this process
    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    code = main(["app", "--port", str(free_port())])
    out, err = capsys.readouterr()
    assert_one_line_error(code, err)
    assert out == ""  # nothing was started


def draw_with_mouse(page, canvas, strokes):
    box = canvas.bounding_box()
    for stroke in strokes:
        page.mouse.move(box["x"] + stroke[0][0], box["y"] + stroke[0][1])
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x, box["y"] + y)
        page.mouse.up()


def draw_with_finger(page, canvas, strokes):
    """Touch events, as a phone sends them (Chrome DevTools Protocol: touchStart, touchMove..., touchEnd)."""
    box = canvas.bounding_box()
    cdp = page.context.new_cdp_session(page)
    for stroke in strokes:
        points = [{"x": box["x"] + x, "y": box["y"] + y} for x, y in stroke]
        cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [points[0]]})
        for point in points[1:]:
            cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]})
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def expect_digit(prediction, digit):
    from playwright.sync_api import expect

    expect(prediction).to_contain_text(f"予測: {digit}", timeout=30_000)


MOUSE = [(7, "crossbar"), (1, "flag"), (0, "oval"), (4, "open")]  # continental 7 and 1 among them
FINGER = [(2, "curve"), (9, "straight")]


def test_drawing_on_the_app_with_mouse_and_finger(tmp_path, chromium):
    from playwright.sync_api import expect, sync_playwright

    shots = REPO / "resources" if os.environ.get("MNIST_LAB_UPDATE_SCREENSHOTS") == "1" else tmp_path
    with app_server() as app, sync_playwright() as p:
        url = app.url
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        base = url.split("?")[0]
        for wrong in ("", "?token=wrong", "api/kernels", "api/kernels?token=wrong"):  # only the login page
            with urllib.request.urlopen(base + wrong) as response:
                assert "/login" in response.url and "mnist" not in response.read().decode()
        page = browser.new_page(viewport={"width": 640, "height": 800})
        page.goto(url)
        prediction, canvas = page.locator(".mnist-prediction"), page.locator("canvas").last
        expect(prediction).to_contain_text("何か書いてください", timeout=60_000)
        expect(page.locator(".mnist-model-source")).to_contain_text("同梱のパッド用モデル")
        for digit, style in MOUSE:
            draw_with_mouse(page, canvas, upright(digit, style)[0])
            expect_digit(prediction, digit)
            expect(page.locator(".mnist-seen img")).to_have_count(1)
            if digit != MOUSE[-1][0]:
                page.get_by_role("button", name="消す").click()
                expect(prediction).to_contain_text("何か書いてください", timeout=30_000)
        page.screenshot(path=str(shots / "app.png"), full_page=True)
        assert dark_run(page, canvas, 140) > 0

        page.get_by_role("button", name="消す").click()
        expect(prediction).to_contain_text("何か書いてください", timeout=30_000)
        assert dark_run(page, canvas, 140) == 0
        widths = {}
        for width in (22, 6):
            readout = page.locator(".mnist-pen-width .widget-readout")
            readout.click()
            page.keyboard.press("Control+A")
            page.keyboard.type(str(width))
            page.keyboard.press("Enter")
            expect(readout).to_have_text(str(width))
            page.get_by_role("button", name="消す").click()
            expect(prediction).to_contain_text("何か書いてください", timeout=30_000)
            draw_with_mouse(page, canvas, [[(140, 60), (140, 220)]])
            expect_digit(prediction, 1)
            widths[width] = dark_run(page, canvas, 140)
        assert abs(widths[22] - 22) <= 3 and abs(widths[6] - 6) <= 3, widths

        phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                    device_scale_factor=2).new_page()
        phone.goto(url)
        prediction, canvas = phone.locator(".mnist-prediction"), phone.locator("canvas").last
        expect(prediction).to_contain_text("何か書いてください", timeout=120_000)
        canvas.scroll_into_view_if_needed()
        for digit, style in FINGER:
            draw_with_finger(phone, canvas, upright(digit, style, height=180)[0])
            expect_digit(prediction, digit)
            phone.get_by_role("button", name="消す").tap()
            expect(prediction).to_contain_text("何か書いてください", timeout=30_000)
        browser.close()


def test_the_same_page_inside_jupyterlab(tmp_path, chromium, git_checkout):
    """JupyterLab (the Docker image, the hub) serves the app as /voila/render/mnist_lab/app.ipynb, no command needed."""
    from jupyter_helpers import clean_copy, jupyter_lab
    from playwright.sync_api import expect, sync_playwright

    root = clean_copy(tmp_path / "repo")
    with jupyter_lab(root) as (url, token), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 640, "height": 800})
        page.goto(f"{url}/voila/render/mnist_lab/app.ipynb?token={token}")
        prediction = page.locator(".mnist-prediction")
        expect(prediction).to_contain_text("何か書いてください", timeout=120_000)
        draw_with_mouse(page, page.locator("canvas").last, upright(7, "plain")[0])
        expect_digit(prediction, 7)
        browser.close()


@pytest.mark.parametrize("host", ["256.1.1.1", "10.255.255.1", "[::1]", "no-such-host.invalid"])
def test_an_address_that_cannot_be_listened_on_is_one_japanese_line(host):
    with pytest.raises(UserError) as refused:
        checked_address(host, free_port(), None)
    assert "\n" not in str(refused.value)
    assert not re.search(r"[A-Za-z]{3,} [a-z]{2,} [a-z]{2,}", str(refused.value)), str(refused.value)  # no OS English


def test_the_page_says_when_its_model_was_a_dry_run_or_stopped(tmp_path):
    from mnist_lab import build_model, save_checkpoint
    from mnist_lab.app import drawing_app
    from mnist_lab.checkpoint import unfinished

    shown = {}
    for name, results in (("whole", {"test_accuracy": 0.99}), ("dry", {"test_accuracy": 0.13, "dry_run": True}),
                          ("stopped", {"test_accuracy": 0.9, "interrupted": True})):
        save_checkpoint(tmp_path / f"{name}.pt", build_model("quick", seed=0), {}, results)
        page = drawing_app(str(tmp_path / f"{name}.pt"))
        shown[name] = page.children[0].value
        page.children[1].close()
    assert unfinished({"results": {"dry_run": True}}) and unfinished({"results": {"interrupted": True}})
    assert html.escape(unfinished({"results": {"dry_run": True}})) in shown["dry"]
    assert html.escape(unfinished({"results": {"interrupted": True}})) in shown["stopped"]
    assert not any(html.escape(unfinished({"results": {k: True}})) in shown["whole"] for k in ("dry_run", "interrupted"))


def test_a_kernel_file_written_while_the_app_stops_never_fails_the_stop(tmp_path, monkeypatch):
    """A kernel the pool was starting as the app stopped writes its connection file into the folder being removed
    ("Directory not empty"): the app still stops, shuts every kernel down and leaves no folder behind."""
    from mnist_lab import app_server

    class Kernels:
        shut = started = False

        async def shutdown_all(self):
            (folder / "kernel-late.json").write_text("{}")  # written as the kernels go
            Kernels.shut = True

    real_rmdir = os.rmdir

    def rmdir_as_a_kernel_starts(path, *args, **kwargs):  # the folder emptied, then a new file appears in it once
        if Path(path) == folder and not Kernels.started:
            (folder / "kernel-starting.json").write_text("{}")
            Kernels.started = True
        return real_rmdir(path, *args, **kwargs)

    folder = tmp_path / "voila_connections"
    folder.mkdir()
    (folder / "kernel-1.json").write_text("{}")
    server = app_server.AppServer.__new__(app_server.AppServer)
    monkeypatch.setattr(app_server.AppServer, "connection_dir", str(folder), raising=False)
    monkeypatch.setattr(app_server.AppServer, "kernel_manager", Kernels(), raising=False)
    monkeypatch.setattr(os, "rmdir", rmdir_as_a_kernel_starts)
    server.stop()
    assert Kernels.shut and not folder.exists()
