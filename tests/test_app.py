"""The draw pad as a web app (``mnist-lab app``): its checks before serving, its model, and a real Chromium drawing
on it with the mouse and, as on a phone, with touch events.

With MNIST_LAB_UPDATE_SCREENSHOTS=1 the browser test replaces resources/app.png, which the README shows.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager

import pytest
from jupyter_helpers import CHROMIUM_ARGS, REPO, dark_run, free_port
from test_cli import assert_one_line_error

from mnist_lab import UserError
from mnist_lab.app import CHECKPOINT_ENV, PAD_MODEL, checked_address, drawing_app, model_source
from mnist_lab.checkpoint import read_checkpoint
from mnist_lab.cli import main
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


def test_a_checkpoint_gone_after_the_start_is_one_line_on_the_page(tmp_path, monkeypatch):
    import ipywidgets as widgets

    (tmp_path / "notes.txt").write_text("not a model")
    for unreadable in (tmp_path / "appck" / "model.pt", tmp_path / "notes.txt"):  # removed, or replaced by another file
        monkeypatch.setenv(CHECKPOINT_ENV, str(unreadable))  # as `mnist-lab app CHECKPOINT` tells the page's kernel
        page = drawing_app()
        assert isinstance(page, widgets.HTML) and str(unreadable) in page.value  # no pad, the file named


def test_the_title_shows_the_checkpoint_path_as_text(tmp_path):
    import html
    import shutil

    odd = tmp_path / "odd" / "<i>x" / "model.pt"
    odd.parent.mkdir(parents=True)
    shutil.copy(PAD_MODEL, odd)
    source, _ = drawing_app(str(odd)).children
    assert "<i>" not in source.value and str(odd) in html.unescape(source.value)


# --- in a real browser ---------------------------------------------------------------------------------------------

@contextmanager
def app_server(*args):
    """Run ``mnist-lab app`` on a free port; yield ``(url with token, seconds it took to say it is ready)``."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "mnist_lab", "app", "--port", str(port), *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        start, url = time.monotonic(), None
        for line in process.stdout:
            found = re.search(r"(http://127\.0\.0\.1:\d+/\S*)", line)
            if found:
                url = found.group(1)
                break
        assert url, f"the app never said it was ready: {process.stderr.read()[-2000:]}"
        yield url, time.monotonic() - start
    finally:
        process.send_signal(signal.SIGINT)  # as Ctrl+C
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        rest = process.stdout.read()
        assert "アプリを止めました" in rest and process.returncode == 0, process.stderr.read()[-2000:]


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
    with app_server() as (url, _), sync_playwright() as p:
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
