import gc
import re
import weakref

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mnist_lab import History, build_model
from mnist_lab.callbacks import LiveCurves
from mnist_lab.errors import ArgumentError, UserError
from mnist_lab.metrics import confusion_matrix, one_vs_rest
from mnist_lab.widgets import DrawPad, OneVsRestExplorer


def draw_one(pad):
    pad.pen_down(140, 40)
    for y in range(40, 250, 15):
        pad.pen_move(140 + (y - 40) // 30, y)
    pad.pen_up(0, 0)


def draw_zero(pad):
    import math

    points = [(140 + 60 * math.sin(t / 20 * 2 * math.pi), 140 - 95 * math.cos(t / 20 * 2 * math.pi)) for t in range(21)]
    pad.pen_down(*points[0])
    for p in points[1:]:
        pad.pen_move(*p)
    pad.pen_up(0, 0)


def asks_for_a_drawing(pad):
    """The pad shows a sentence (whatever it says) and no digit."""
    return pad.prediction.value.strip() != "" and "class='digit'" not in pad.prediction.value


def test_empty_pad_asks_for_a_drawing():
    pad = DrawPad(build_model("quick", seed=0))
    assert pad.predict() is None and asks_for_a_drawing(pad)
    assert all(bar.value == 0 for bar in pad.bars)


def test_drawn_digits_are_read_by_a_trained_model(trained):
    model = trained[0]
    pad = DrawPad(model)
    draw_one(pad)
    probs = pad.probabilities
    assert probs is not None and abs(float(probs.sum()) - 1) < 1e-5
    shown = int(re.search(r"class='digit'>(\d)<", pad.prediction.value).group(1))
    assert shown == int(probs.argmax()) == 1
    assert [round(bar.value, 6) for bar in pad.bars] == [round(float(p), 6) for p in probs]
    assert "data:image/png;base64," in pad.seen.value
    pad.clear()
    assert asks_for_a_drawing(pad)
    draw_zero(pad)
    assert int(pad.probabilities.argmax()) == 0


def test_moving_without_pressing_draws_nothing():
    pad = DrawPad(build_model("quick", seed=0))
    pad.pen_move(10, 10)
    pad.pen_move(200, 200)
    pad.pen_up(0, 0)
    assert pad.probabilities is None and pad.image.getextrema() == (255, 255)


def test_closing_the_pad_lets_the_model_go():
    model = build_model("quick", seed=0)
    ref = weakref.ref(model)
    pad = DrawPad(model)
    draw_one(pad)
    pad.close()
    del model, pad
    gc.collect()
    assert ref() is None


def test_close_all_closes_every_open_pad_once_and_can_run_again():
    model = build_model("quick", seed=0)
    ref = weakref.ref(model)
    pads = [DrawPad(model), DrawPad(model)]
    pads[0].close()
    DrawPad.close_all()
    DrawPad.close_all()  # a section run twice
    assert all(pad.model is None for pad in pads)
    del model, pads
    gc.collect()
    assert ref() is None


def test_explorer_shows_the_library_counts():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (500,), generator=g)
    probs = torch.rand(500, 10, generator=g)
    probs[torch.arange(500), y] += 0.6  # mostly right
    X = torch.randn(500, 1, 28, 28, generator=g)
    explorer = OneVsRestExplorer(X, y, probs, digit=0)
    C = confusion_matrix(y, probs.argmax(1))
    for k in (0, 7, 3):
        explorer.digit.value = k
        c = one_vs_rest(C, k)
        for name in ("TP", "FP", "FN", "TN"):
            assert f"class='ovr-{name}'" in explorer.matrix.value
            shown = re.search(rf"class='ovr-{name}'[^>]*><b>{name}</b><br>(\d+)<", explorer.matrix.value).group(1)
            assert int(shown) == getattr(c, name)
        assert f"{c.TP} / ({c.TP} + {c.FP})" in explorer.formulas.value
        assert explorer.examples.value.count("<img") <= 3 * explorer.n_examples
        assert "TP" in explorer.examples.value  # the examples are grouped by kind


def test_live_curves_print_a_line_outside_jupyter(capsys):
    history = History(records=[{"epoch": 1, "train_loss": 0.5, "eval_accuracy": 0.9, "train_accuracy": 0.8,
                                "eval_loss": 0.4}])
    assert LiveCurves().on_epoch_end(None, history) is False
    assert capsys.readouterr().out.strip() == "epoch 1: train loss 0.5000, test accuracy 0.9000"


def ink_columns(pad, row=140):
    return int((np.asarray(pad.image)[row] < 128).sum())


def test_the_pen_width_slider_sets_the_width_of_the_next_strokes():
    pad = DrawPad(build_model("quick", seed=0).eval())
    for width in (6, 30):
        pad.clear()
        pad.pen_width.value = width
        pad.pen_down(140, 60)
        pad.pen_move(140, 220)
        pad.pen_up(0, 0)
        assert pad.line_width == width and abs(ink_columns(pad) - width) <= 2


def send(pad, *ops):
    """What the pad's page sends: one batch of the pen's path."""
    pad._on_message(pad.canvas, {"ops": [list(op) for op in ops]}, [])


def test_each_batch_from_the_page_is_read_once_even_with_the_pen_still_down(monkeypatch):
    from mnist_lab import widgets as W

    pad = DrawPad(build_model("quick", seed=0).eval())
    preprocessed, answers = [], []
    real = W.mnist_like
    monkeypatch.setattr(W, "mnist_like", lambda image, **kw: preprocessed.append(1) or real(image, **kw))
    pad.canvas.send = lambda content, buffers=None: answers.append(content)
    send(pad, ("down", 140, 40, 22), ("move", 140, 120), ("move", 140, 200))  # the pen is still down
    assert pad.probabilities is not None and "class='digit'" in pad.prediction.value
    assert len(preprocessed) == 1 and answers == [{"type": "read"}]  # one reading, then the page may send more
    send(pad, ("move", 141, 230), ("up",))
    assert len(preprocessed) == 2 and answers[-1] == {"type": "read"}
    assert ink_columns(pad, 230) > 10
    send(pad, ("clear",))
    assert pad.probabilities is None and asks_for_a_drawing(pad)
    assert pad.image.getextrema() == (255, 255) and pad.canvas.ops == []


def test_a_new_page_gets_the_drawing_so_far():
    """Voilà runs the notebook before the page opens, and JupyterLab draws a pad again when a notebook is
    reopened: the page draws from ``canvas.ops``, which must hold the strokes since the last clear."""
    pad = DrawPad(build_model("quick", seed=0).eval())
    send(pad, ("down", 10, 10, 8), ("move", 50, 50), ("up",), ("clear",), ("down", 140, 40, 22),
         ("move", 140, 200), ("up",))
    assert pad.canvas.ops == [["down", 140.0, 40.0, 22], ["move", 140.0, 200.0], ["up"]]
    pad.clear()
    assert pad.canvas.ops == [] and pad.probabilities is None


def test_a_malformed_message_draws_nothing_and_still_answers():
    pad = DrawPad(build_model("quick", seed=0).eval())
    answers = []
    pad.canvas.send = lambda content, buffers=None: answers.append(content)
    pad._on_message(pad.canvas, {"ops": [["down"], ["move", "x", 3], ["paint", 1, 2], 7, None]}, [])
    pad._on_message(pad.canvas, ["not", "a", "dict"], [])
    assert pad.image.getextrema() == (255, 255) and answers == [{"type": "read"}] * 2


def test_the_pen_width_is_the_one_the_stroke_began_with():
    pad = DrawPad(build_model("quick", seed=0).eval())
    send(pad, ("down", 140, 60, 6), ("move", 140, 220), ("up",))
    assert abs(ink_columns(pad) - 6) <= 2
    send(pad, ("clear",), ("down", 140, 60, 400), ("move", 140, 220), ("up",))  # wider than the pad: the pad
    assert ink_columns(pad) >= 270


def test_the_browser_module_draws_what_the_kernel_draws():
    """drawpad.js paints the same operations as apply(): one list of names, round ends, clear to white."""
    from mnist_lab.widgets import PadCanvas

    js = PadCanvas._esm
    for name in ("down", "move", "up", "clear", "read"):
        assert f'"{name}"' in js
    assert 'lineCap = "round"' in js and "msg:custom" in js and "model.send" in js


@pytest.mark.parametrize("bad", ["runs/quick/model.pt", None, "state_dict", "linear"])
def test_the_pad_refuses_what_is_not_a_digit_model_in_one_line(bad):
    from mnist_lab.errors import UserError

    model = build_model("quick", seed=0)
    bad = {"state_dict": model.state_dict(), "linear": torch.nn.Linear(784, 10)}.get(bad, bad)
    with pytest.raises(UserError) as refused:
        DrawPad(bad)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("settings", [{"size": -280}, {"size": 0}, {"line_width": float("nan")}, {"line_width": "big"}])
def test_the_pad_refuses_impossible_sizes_in_one_line(settings):
    from mnist_lab.errors import UserError

    with pytest.raises(UserError):
        DrawPad(build_model("quick", seed=0), **settings)


def test_the_pad_reads_with_a_model_of_another_precision():
    pad = DrawPad(build_model("quick", seed=0).double())
    for op in (["down", 100, 50, 22], ["move", 150, 200], ["up"]):
        pad.apply(op)
    probs = pad.predict()
    assert probs is not None and abs(float(probs.sum()) - 1) < 1e-6


def draw_closed(pad, points, width):
    pad.set_line_width(width)
    pad.pen_down(*points[0])
    for p in points[1:]:
        pad.pen_move(*p)
    pad.pen_up()


def ellipse(rx, ry, n=48):
    import math

    return [(140 + rx * math.cos(2 * math.pi * i / n), 140 + ry * math.sin(2 * math.pi * i / n)) for i in range(n + 1)]


def square(margin):
    a, b = margin, 280 - margin
    return [(a, a), (b, a), (b, b), (a, b), (a, a)]


@pytest.fixture(scope="module")
def pad_model():
    from mnist_lab import load_checkpoint
    from mnist_lab.app import PAD_MODEL

    return load_checkpoint(PAD_MODEL)[0]


@pytest.mark.parametrize("points, width", [(ellipse(125, 125), 30), (ellipse(130, 135), 40), (square(15), 30)])
def test_a_big_zero_to_the_pads_edge_is_read_as_zero(pad_model, points, width):
    """Read as 0; a square (an outlined square is one of the shapes the pad model is taught as not a digit) may
    instead get the warning."""
    pad = DrawPad(pad_model)
    draw_closed(pad, points, width)
    assert pad.probabilities is not None, pad.prediction.value
    warned = "mnist-not-digit" in pad.prediction.value
    read_as_zero = int(pad.probabilities.argmax()) == 0
    assert read_as_zero or (points == square(15) and warned), pad.prediction.value


@settings(max_examples=12, deadline=None)
@given(shape=st.sampled_from(["ellipse", "square"]), rx=st.integers(90, 140), ry=st.integers(90, 140),
       margin=st.integers(0, 40), width=st.integers(20, 40))
def test_a_closed_stroke_anywhere_up_to_the_edge_is_never_an_empty_pad(shape, rx, ry, margin, width):
    pad = DrawPad(build_model("quick", seed=0))
    draw_closed(pad, ellipse(rx, ry) if shape == "ellipse" else square(margin), width)
    assert pad.probabilities is not None and not asks_for_a_drawing(pad), pad.prediction.value


def test_a_closed_pad_says_so_in_one_japanese_line():
    from invariants import assert_japanese_message

    from mnist_lab import UserError
    from mnist_lab.widgets import DrawPad

    pad = DrawPad(build_model("quick", seed=0))
    DrawPad.close_all()
    for use in (pad.predict, lambda: (pad.pen_down(140, 40), pad.pen_move(140, 240), pad.pen_up(140, 240))):
        with pytest.raises(UserError) as refused:
            use()
        assert_japanese_message(refused.value)


def test_the_pad_takes_numpy_and_fractional_sizes_as_numbers():
    model = build_model("quick_cnn", seed=0)
    pad = DrawPad(model, size=280.7, line_width=np.int64(12))
    assert pad.size == 280 and pad.canvas.size == 280 and pad.line_width == 12
    pad.set_line_width(np.int64(10))
    assert pad.line_width == 10
    assert DrawPad(model, size=np.int64(200)).canvas.size == 200


def test_a_stroke_from_python_is_drawn_shown_and_read_like_a_drawn_one():
    model = build_model("quick", seed=0)
    typed, drawn = DrawPad(model), DrawPad(model)
    typed.stroke(140, 40, 140, 240)
    drawn._on_message(None, {"ops": [["down", 140, 40, drawn.line_width], ["move", 140, 240], ["up"]]}, [])
    assert typed.canvas.ops == drawn.canvas.ops and [op[0] for op in typed.canvas.ops] == ["down", "move", "up"]
    assert typed.image.tobytes() == drawn.image.tobytes()
    assert typed.probabilities is not None and torch.equal(typed.probabilities, drawn.probabilities)
    typed._on_message(None, {"ops": [["down", 60, 140, 22], ["move", 220, 140], ["up"]]}, [])  # then the browser
    drawn._on_message(None, {"ops": [["down", 60, 140, 22], ["move", 220, 140], ["up"]]}, [])
    assert typed.canvas.ops == drawn.canvas.ops and torch.equal(typed.probabilities, drawn.probabilities)


def test_a_stroke_with_a_bad_point_draws_nothing():
    pad = DrawPad(build_model("quick", seed=0))
    with pytest.raises(ArgumentError):
        pad.stroke(140, 40, 140, float("nan"))
    assert pad.canvas.ops == [] and pad.image.getextrema() == (255, 255)


PAGE = """<canvas></canvas><script type="module">
const ops = [];
const handlers = {};
const model = {get: (name) => ({size: 280, line_width: 22, every: 0.25, ops})[name],
               on: (name, f) => { handlers[name] = f; }, off: () => {}, send: () => {}};
const module = await import("data:text/javascript;base64," + JS);
module.default.render({model, el: document.body});
window.ink = () => { const c = document.querySelector("canvas.mnist-pad-canvas");
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] < 128) n++; return n; };
window.kernelDraws = (drawn) => { ops.splice(0, ops.length, ...drawn); handlers["change:ops"](); };
window.ready = true;
</script>"""


def test_the_page_shows_strokes_the_kernel_drew(chromium):
    """The canvas in the browser redraws when the kernel's drawing changes (pad.stroke from Python)."""
    import base64
    import json
    from pathlib import Path

    from playwright.sync_api import sync_playwright

    import mnist_lab

    js = base64.b64encode((Path(mnist_lab.__file__).with_name("drawpad.js")).read_bytes()).decode()
    pad = DrawPad(build_model("quick", seed=0))
    pad.stroke(140, 40, 140, 240)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        page.set_content(PAGE.replace("+ JS", f"+ {json.dumps(js)}"))
        page.wait_for_function("window.ready === true")
        assert page.evaluate("ink()") == 0
        page.evaluate(f"kernelDraws({json.dumps(pad.canvas.ops)})")
        assert page.evaluate("ink()") > 22 * 200 * 0.8  # a 22-pixel-wide line 200 pixels long
        page.evaluate("kernelDraws([])")  # pad.clear() or a wipe
        assert page.evaluate("ink()") == 0
        browser.close()


def test_a_digit_never_predicted_shows_zero_without_an_english_warning():
    import warnings

    y = torch.arange(50) % 10
    y_hat = torch.where(y == 3, 5, y)  # 3 is never predicted: its precision is 0 / 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        explorer = OneVsRestExplorer(torch.zeros(50, 1, 28, 28), y, y_hat, digit=3)
        assert "TP / (TP + FP) = 0 / (0 + 0) = 0.0000" in explorer.formulas.value
        explorer.digit.value = 4
        explorer.digit.value = 3
    assert not caught, [str(w.message) for w in caught]


def test_the_explorer_takes_a_digit_from_a_tensor():
    y = torch.arange(50) % 10
    explorer = OneVsRestExplorer(torch.zeros(50, 1, 28, 28), y, y, digit=y[3])  # a 0-d tensor, as y_hat[0] is
    assert explorer.digit.value == 3


def test_a_wrong_value_in_a_message_is_cut_short_to_one_line():
    from mnist_lab import plots

    model = build_model("quick", seed=0)
    X = torch.zeros(50, 1, 28, 28)
    for call in (lambda: DrawPad(model, model.state_dict()), lambda: DrawPad(model, line_width=model.state_dict()),
                 lambda: DrawPad(model, size=X), lambda: LiveCurves(X),
                 lambda: plots.plot_misclassified(X, torch.zeros(50).long(), torch.eye(10)[torch.zeros(50).long()], n=X),
                 lambda: OneVsRestExplorer(X, torch.zeros(50).long(), torch.zeros(50).long(), digit=X)):
        with pytest.raises(UserError) as refused:
            call()
        text = str(refused.value)
        assert "\n" not in text and len(text) < 300, (len(text), text[:200])


def test_the_pair_load_checkpoint_returns_is_told_to_be_unpacked(tmp_path):
    from mnist_lab.checkpoint import load_checkpoint, save_checkpoint

    model = build_model("quick", seed=0)
    save_checkpoint(tmp_path / "m.pt", model, {"model": "quick_cnn"})
    with pytest.raises(UserError) as plain:
        DrawPad("model.pt")
    with pytest.raises(UserError) as pair:
        DrawPad(load_checkpoint(tmp_path / "m.pt"))
    assert "\n" not in str(pair.value) and str(pair.value) != str(plain.value)
    assert "load_checkpoint(" in str(pair.value)  # shows the call that unpacks it


def test_the_info_of_a_checkpoint_given_as_the_size_is_named(tmp_path):
    from mnist_lab.checkpoint import load_checkpoint, save_checkpoint

    save_checkpoint(tmp_path / "m.pt", build_model("quick", seed=0), {"model": "quick_cnn"})
    model, info = load_checkpoint(tmp_path / "m.pt")
    with pytest.raises(UserError) as small:
        DrawPad(model, 10)
    with pytest.raises(UserError) as given_info:
        DrawPad(model, info)  # the pair unpacked, then both passed on
    assert "\n" not in str(given_info.value) and str(given_info.value) != str(small.value)
    assert "DrawPad(model)" in str(given_info.value)  # shows the call to make


def test_the_explorer_points_out_labels_that_are_the_predictions(capsys):
    X, y = torch.zeros(200, 1, 28, 28), torch.arange(200) % 10
    probs = torch.softmax(torch.randn(200, 10, generator=torch.Generator().manual_seed(0)), 1)
    OneVsRestExplorer(X, y, probs)
    assert not capsys.readouterr().out.strip()
    OneVsRestExplorer(X, probs.argmax(1), probs)  # the predictions given as the labels
    assert [line for line in capsys.readouterr().out.splitlines() if line.startswith("お知らせ: ")]
