"""A student's session in a real browser: JupyterLab + Chromium, cells run with Shift+Enter / Ctrl+Enter,
digits drawn with the mouse on the draw pad (also while the kernel is busy with another cell: the ink shows at
once, the reading comes when the kernel is free), the one-vs-rest explorer changed, the kernel shut down, and what
Shift+Enter does after that.

Screenshots go to a temporary folder; with MNIST_LAB_UPDATE_SCREENSHOTS=1 they replace resources/drawpad.png,
resources/explorer.png and resources/release_memory.png, which the README and the notebook show.
"""

import json
import math
import os
import re

import pytest
from jupyter_helpers import CHROMIUM_ARGS, REPO, clean_copy, dark_run, jupyter_lab

from mnist_lab import build_model, fit, make_config, predict_proba
from mnist_lab.metrics import confusion_matrix, one_vs_rest

CELL_TIMEOUT_MS = 300_000


def notebook_cells():
    return json.loads((REPO / "main.ipynb").read_text())["cells"]


def index_of(cells, text):
    return next(i for i, c in enumerate(cells) if c["cell_type"] == "code" and text in "".join(c["source"]))


def prompt(page, i):
    return page.locator(".jp-Notebook .jp-Cell").nth(i).locator(".jp-InputPrompt").first


def run_cells(page, cells, start, stop, last_key="Shift+Enter"):
    """From cell ``start`` to ``stop``, press Shift+Enter (``last_key`` on the last) as a student does, waiting
    for each code cell to finish."""
    from playwright.sync_api import expect

    dom = page.locator(".jp-Notebook .jp-Cell")
    for i in range(start, stop + 1):
        expect(dom.nth(i)).to_have_class(re.compile(r"\bjp-mod-active\b"), timeout=30_000)
        page.keyboard.press(last_key if i == stop else "Shift+Enter")
        if cells[i]["cell_type"] == "code":
            prompt = dom.nth(i).locator(".jp-InputPrompt").first
            expect(prompt).to_have_text(re.compile(r"^\[\d+\]:?$"), timeout=CELL_TIMEOUT_MS)


def select_cell(page, i):
    """Click cell ``i``'s prompt area (selects it without editing) and leave edit mode."""
    page.locator(".jp-Notebook .jp-Cell").nth(i).locator(".jp-InputPrompt").first.click()
    page.keyboard.press("Escape")


def draw(page, canvas, points):
    box = canvas.bounding_box()
    scale = box["width"] / 280
    x0, y0 = points[0]
    page.mouse.move(box["x"] + x0 * scale, box["y"] + y0 * scale)
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x * scale, box["y"] + y * scale, steps=3)
    page.mouse.up()


ONE = [(150, 40), (146, 90), (142, 140), (138, 190), (136, 240)]
ZERO = [(140 + 60 * math.sin(t / 24 * 2 * math.pi), 140 - 95 * math.cos(t / 24 * 2 * math.pi)) for t in range(25)]


@pytest.fixture(scope="module")
def notebook_model_counts(mnist):
    """The one-vs-rest counts of the model the notebook trains with MNIST_LAB_EPOCHS=1 (training is deterministic)."""
    config = make_config("original", epochs=1, batch_size=64, lr=0.01, seed=0)
    model = build_model(config.model, seed=config.seed)
    fit(model, mnist, config, device="cpu", progress=False)
    return confusion_matrix(mnist.y_test, predict_proba(model, mnist.X_test).argmax(1))


def test_student_session(tmp_path, mnist_root, notebook_model_counts, chromium, git_checkout):
    from playwright.sync_api import expect, sync_playwright

    shots = REPO / "resources" if os.environ.get("MNIST_LAB_UPDATE_SCREENSHOTS") == "1" else tmp_path
    cells = notebook_cells()
    pad_cell, explorer_cell = index_of(cells, "DrawPad(model)"), index_of(cells, "OneVsRestExplorer(")
    comparison_cell = index_of(cells, "compare(data, configs")
    root = clean_copy(tmp_path / "repo")
    env = {"MNIST_LAB_DATA": str(mnist_root), "MNIST_LAB_EPOCHS": "1"}
    with jupyter_lab(root, env) as (url, token), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 860})
        page.goto(f"{url}/lab/tree/main.ipynb?token={token}")
        expect(page.locator(".jp-StatusBar-Widget", has_text="Idle").first).to_be_visible(timeout=120_000)
        select_cell(page, 0)

        run_cells(page, cells, 0, pad_cell, last_key="Control+Enter")  # Ctrl+Enter stays on the draw pad cell
        pad = page.locator(".jp-Notebook .jp-Cell").nth(pad_cell)
        prediction = pad.locator(".mnist-prediction")
        expect(prediction).to_contain_text("何か書いてください", timeout=30_000)
        canvas = pad.locator("canvas").last
        canvas.scroll_into_view_if_needed()

        draw(page, canvas, ONE)
        expect(prediction).to_contain_text("予測: 1", timeout=30_000)
        pad.get_by_role("button", name="消す").click()
        expect(prediction).to_contain_text("何か書いてください", timeout=30_000)
        draw(page, canvas, ZERO)
        expect(prediction).to_contain_text("予測: 0", timeout=30_000)
        expect(pad.locator(".mnist-seen img")).to_have_count(1)
        pad.screenshot(path=str(shots / "drawpad.png"))

        explorer = page.locator(".jp-Notebook .jp-Cell").nth(explorer_cell)
        explorer.scroll_into_view_if_needed()
        for digit in (7, 5):
            explorer.locator("select").select_option(str(digit))
            expected = one_vs_rest(notebook_model_counts, digit)
            for name in ("TP", "FP", "FN", "TN"):
                cell = explorer.locator(f".ovr-{name}")
                expect(cell).to_have_text(re.compile(rf"^{name}\s*{getattr(expected, name)}$"), timeout=30_000)
            expect(explorer.locator(".ovr-formulas")).to_contain_text(f"{expected.TP} / ({expected.TP} + {expected.FP})")
        explorer.screenshot(path=str(shots / "explorer.png"))

        select_cell(page, pad_cell + 1)  # carry on, as a student would, up to section 12's comparison
        run_cells(page, cells, pad_cell + 1, comparison_cell - 1)
        page.keyboard.press("Control+Enter")  # the comparison trains two models: the kernel is busy for a while
        expect(prompt(page, comparison_cell)).to_have_text(re.compile(r"\*"), timeout=30_000)
        canvas.scroll_into_view_if_needed()
        pad.get_by_role("button", name="消す").click()
        assert dark_run(page, canvas, 140) == 0  # wiped by the page itself
        draw(page, canvas, ONE)
        assert dark_run(page, canvas, 140) > 0  # the ink is there at once ...
        expect(prompt(page, comparison_cell)).to_have_text(re.compile(r"\*"))  # ... while the kernel is still busy
        # the reading comes while the kernel trains (ipykernel 7 hands widget messages to another thread) or once
        # it is free (older kernels): either way it comes, and the training goes on undisturbed
        expect(prediction).to_contain_text("予測: 1", timeout=CELL_TIMEOUT_MS)
        expect(prompt(page, comparison_cell)).to_have_text(re.compile(r"^\[\d+\]:?$"), timeout=CELL_TIMEOUT_MS)

        select_cell(page, comparison_cell + 1)  # to the end
        run_cells(page, cells, comparison_cell + 1, len(cells) - 1, last_key="Control+Enter")
        expect(page.locator(".jp-OutputArea-output", has_text="Traceback")).to_have_count(0)
        expect(page.locator(".jp-Notebook")).to_contain_text("予測が全部同じ: True")

        page.locator(".jp-Notebook .jp-Cell").first.scroll_into_view_if_needed()
        page.get_by_role("menuitem", name="Kernel", exact=True).click()
        page.get_by_role("menuitem", name="Shut Down Kernel").hover()
        page.screenshot(path=str(shots / "release_memory.png"))
        page.get_by_role("menuitem", name="Shut Down Kernel").click()
        expect(page.locator(".jp-Notebook-ExecutionIndicator")).to_have_attribute("data-status", "unknown",
                                                                               timeout=30_000)  # no kernel now
        # What section 13 says: a cell run after the shutdown starts a new kernel without asking, with no variables.
        data_cell = index_of(cells, "data = load_mnist()")
        select_cell(page, data_cell + 2)  # the cell after it uses `data`
        page.keyboard.press("Control+Enter")
        expect(prompt(page, data_cell + 2)).to_have_text(re.compile(r"^\[1\]:?$"), timeout=120_000)
        expect(page.locator(".jp-Notebook .jp-Cell").nth(data_cell + 2)).to_contain_text("NameError")
        browser.close()
