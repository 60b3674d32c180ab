"""Interactive pieces for the notebook: a draw-a-digit pad and a one-vs-rest explorer.

Everything here is a thin view over :mod:`mnist_lab.preprocess`, :mod:`mnist_lab.inference` and
:mod:`mnist_lab.metrics`: the numbers a widget shows are the library's numbers. (Live training curves are a
training callback: :class:`mnist_lab.callbacks.LiveCurves`.)
"""

import base64
import contextlib
import html
import io
import math
import warnings
import weakref
from pathlib import Path
from typing import ClassVar

import anywidget
import ipywidgets as widgets
import numpy as np
import torch
import traitlets
from PIL import Image, ImageDraw

from .data import denormalize
from .errors import ArgumentError, UserError, short, whole_number
from .inference import evaluation_mode
from .metrics import UndefinedMetricWarning, confusion_matrix, f1, one_vs_rest, one_vs_rest_accuracy, precision, recall
from .ood import WARNING, probabilities_and_flag
from .preprocess import EmptyImageError, mnist_like, model_input


def png_data_url(pixels, scale=2):
    """Return a ``data:`` URL of a 2-D array in [0, 1] (white ink on black) drawn ``scale`` times larger."""
    image = Image.fromarray((np.asarray(pixels) * 255).astype(np.uint8))
    image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


class PadCanvas(anywidget.AnyWidget):
    """The pad's canvas and its "消す" button, drawn by the browser (``mnist_lab/drawpad.js``): the ink appears the
    moment the pen moves, even while the kernel is busy. The pen's path arrives here as messages of operations,
    ``{"ops": [["down", x, y, width], ["move", x, y], ["up"], ["clear"], ...]}``; the browser sends the next one
    only after the ``{"type": "read"}`` answer to the one before, at most every ``every`` seconds while the pen
    moves."""

    _esm = Path(__file__).with_name("drawpad.js").read_text(encoding="utf-8")
    size = traitlets.Int(280).tag(sync=True)
    line_width = traitlets.Int(22).tag(sync=True)
    every = traitlets.Float(0.25).tag(sync=True)
    ops = traitlets.List().tag(sync=True)  # the drawing since the last clear, for a page that shows the pad later


def checked_reader(model):
    """Return ``model`` if it reads a 1x1x28x28 picture into 10 scores; else one Japanese line saying what to pass."""
    if isinstance(model, tuple) and model and isinstance(model[0], torch.nn.Module):
        raise UserError("手書き欄に渡したのは load_checkpoint の結果（モデルと情報の組）です。"
                        "model, info = load_checkpoint(...) と分けて、DrawPad(model) のように model を渡してください。")
    first = next(model.parameters(), None) if isinstance(model, torch.nn.Module) else None
    if first is None:
        raise UserError(f"手書き欄には学習したモデルを渡してください（今は {type(model).__name__}）。例: DrawPad(model)。"
                        "ファイルなら load_checkpoint で読み込んでから渡します。")
    if any(p.device.type == "meta" for p in model.parameters()):
        raise UserError("このモデルの重みには値がありません（device=\"meta\"）。学習したモデルか load_checkpoint で"
                        "読んだモデルを、model.to(\"cpu\") のように値のあるデバイスに置いて渡してください。")
    try:
        with evaluation_mode(model), torch.no_grad():
            shape = tuple(model(torch.zeros(1, 1, 28, 28, dtype=first.dtype, device=first.device)).shape)
    except (RuntimeError, TypeError, ValueError) as e:
        shape = type(e).__name__
    if shape != (1, 10):
        raise UserError(f"このモデルは 28×28 の画像 1 枚から 10 個のスコアを出しません（{shape}）。MNIST の数字を読むモデルを渡してください。")
    return model


def checked_number(name, value, low, high):
    """``value`` as an int if it is a whole number from ``low`` to ``high``; else one Japanese line."""
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating))
            or not low <= value <= high):  # NaN fails it too
        raise UserError(f"{name} は {low} 以上 {high} 以下の数にしてください（今は {short(value)}）。")
    return int(value)


def checked_point(function, x, y):
    """``(x, y)`` as floats if both are finite numbers (pixels of the pad); else :class:`ArgumentError` (a
    ``ValueError``, so a browser's operation with such a point is ignored like any other it cannot send)."""
    for value in (x, y):
        if (isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating))
                or not math.isfinite(value)):
            raise ArgumentError(f"{function} の座標は、手書き欄のピクセルを表す数にしてください（今は {short(x, 20)}, {short(y, 20)}）。"
                                "例: pad.stroke(140, 40, 140, 240)（左上が 0, 0）")
    return float(x), float(y)


class DrawPad(widgets.HBox):
    """Draw a digit with mouse, pen or finger; the model reads it while you draw and when you lift the pen.

    Shows the predicted digit, the ten class probabilities as bars, and the 28x28 picture the model actually saw.
    The browser draws the ink (:class:`PadCanvas`); the same strokes are drawn here on a Pillow image, which is
    what is read: once per batch of strokes the browser sends, each reading preprocessing the drawing once. A
    slider sets the pen's width (for the next strokes).

    Introduced in the lesson: main.ipynb §10.
    """

    EVERY = 0.25  # seconds between readings while the pen moves
    _open: ClassVar[weakref.WeakSet] = weakref.WeakSet()  # the pads not closed yet (close_all)

    def __init__(self, model, size=280, line_width=22):
        if isinstance(size, dict):  # DrawPad(model, info) after model, info = load_checkpoint(...)
            raise UserError("DrawPad(model, size=280) の 2 つ目は手書き欄の大きさ（ピクセル）です。load_checkpoint の情報 info は"
                            "渡さず、DrawPad(model) としてください。")
        self.model, self.size = checked_reader(model), checked_number("size", size, 56, 2000)
        line_width = checked_number("line_width", line_width, 2, 40)
        DrawPad._open.add(self)
        self.canvas = PadCanvas(size=self.size, line_width=line_width, every=self.EVERY,
                                layout=widgets.Layout(width=f"{self.size + 4}px"))
        self.pen_width = widgets.IntSlider(value=line_width, min=2, max=40, description="ペンの太さ",
                                           layout=widgets.Layout(width=f"{self.size}px")).add_class("mnist-pen-width")
        widgets.jslink((self.pen_width, "value"), (self.canvas, "line_width"))  # in the browser, at once
        widgets.link((self.pen_width, "value"), (self.canvas, "line_width"))  # and here (no page needed)
        self.prediction = widgets.HTML().add_class("mnist-prediction")
        self.seen = widgets.HTML().add_class("mnist-seen")
        self.bars = [widgets.FloatProgress(min=0, max=1, description=str(k), layout=widgets.Layout(width="260px"))
                     for k in range(10)]
        self.probabilities = self.not_a_digit = None  # not_a_digit: None when the model cannot tell
        super().__init__([widgets.VBox([self.canvas, self.pen_width]),
                          widgets.VBox([self.prediction, self.seen, *self.bars],
                                       layout=widgets.Layout(margin="0 0 0 16px"))],
                         layout=widgets.Layout(flex_flow="row wrap"))  # a phone: the bars go below the canvas
        self.canvas.on_msg(self._on_message)
        self._wipe()
        self.show_reading(None, None)

    @property
    def line_width(self):
        return self.canvas.line_width

    def set_line_width(self, width):
        """Draw the next strokes ``width`` pixels wide (as the slider does)."""
        self.pen_width.value = checked_number("width", width, 2, 40)

    def close(self):
        """Close the pad and every widget in it, letting go of the model (so its GPU memory can be freed)."""
        parts = [vars(self).get(name) for name in ("canvas", "pen_width", "prediction", "seen")]  # none if refused
        for widget in (*parts, *vars(self).get("bars", ()), *self.children):
            if widget is not None:
                widget.close()
        self.model = None
        DrawPad._open.discard(self)
        super().close()

    @classmethod
    def close_all(cls):
        """Close every pad still open (Jupyter keeps each shown widget, and so its model, alive until closed)."""
        for pad in list(cls._open):
            pad.close()

    def clear(self):
        """Wipe the drawing and the prediction, here and on every page that shows the pad."""
        self._wipe()
        self.canvas.send({"type": "clear"})
        self.show_reading(None, None)

    def _wipe(self):
        self.image = Image.new("L", (self.size, self.size), 255)
        self._pen = ImageDraw.Draw(self.image)
        self._last, self._width, self._ops = None, self.line_width, []
        self.probabilities = self.not_a_digit = None
        self.canvas.ops = []

    def _on_message(self, _, content, buffers):
        """A batch of the pen's path from the browser: draw it all, read the drawing once, then say so."""
        try:
            for op in content.get("ops", []) if isinstance(content, dict) else []:
                self.apply(op)
            self.canvas.ops = list(self._ops)
            self.predict()
        finally:
            self.canvas.send({"type": "read"})  # the browser may send the next batch

    def apply(self, op):
        """Draw one operation of the browser's: ``["down", x, y, width]``, ``["move", x, y]``, ``["up"]`` or
        ``["clear"]`` (anything else is ignored: it cannot come from the pad's page)."""
        try:
            kind, *args = op
            if kind == "down":
                self._pen_down(float(args[0]), float(args[1]), int(args[2]))
            elif kind == "move":
                self._pen_move(float(args[0]), float(args[1]))
            elif kind == "up":
                self._last = None
                self._ops.append(["up"])
            elif kind == "clear":
                self._wipe()
        except (TypeError, ValueError, IndexError):
            return

    def pen_down(self, x, y):
        """Put the pen down at ``(x, y)`` (what the browser sends, for scripts and tests)."""
        self._pen_down(*checked_point("pen_down", x, y), self.line_width)

    def pen_move(self, x, y):
        self._pen_move(*checked_point("pen_move", x, y))

    def pen_up(self, x=None, y=None):
        """Lift the pen and read the drawing."""
        if self._last is not None:
            self.apply(["up"])
            self.canvas.ops = list(self._ops)
            self.predict()

    def stroke(self, x0, y0, x1, y1):
        """Draw a straight stroke from ``(x0, y0)`` to ``(x1, y1)`` as the pen would: pen down, move, pen up. It
        shows on the page like a drawn stroke, and the pad reads the drawing at once."""
        (x0, y0), (x1, y1) = checked_point("stroke", x0, y0), checked_point("stroke", x1, y1)
        self.pen_down(x0, y0)
        self.pen_move(x1, y1)
        self.pen_up()

    def _pen_down(self, x, y, width):
        x, y = checked_point("pen_down", x, y)
        self._last, self._width = (x, y), max(1, min(int(width), self.size))
        self._ops.append(["down", x, y, self._width])
        self._segment(x, y, x, y)

    def _pen_move(self, x, y):
        x, y = checked_point("pen_move", x, y)
        if self._last is not None:
            self._segment(*self._last, x, y)
            self._last = (x, y)
            self._ops.append(["move", x, y])

    def _segment(self, x0, y0, x1, y1):
        """Draw one segment of ink on the image that is read, as the browser draws it (round ends)."""
        self._pen.line([(x0, y0), (x1, y1)], fill=0, width=self._width)
        r = self._width / 2
        self._pen.ellipse([x1 - r, y1 - r, x1 + r, y1 + r], fill=0)
        self._pen.ellipse([x0 - r, y0 - r, x0 + r, y0 + r], fill=0)

    def predict(self):
        """Read the drawing: preprocess it once, let the model read it, show the reading. Return the 10
        probabilities (``None`` for an empty pad)."""
        if self.model is None:
            raise UserError("このパッドは閉じられています（close() か DrawPad.close_all() のあと）。DrawPad(model) で新しく作ってください。")
        try:
            seen = mnist_like(self.image, background=1.0)  # the pad's own white: no paper to look for
        except EmptyImageError:
            self.probabilities = self.not_a_digit = None
            self.show_reading(None, None)
            return None
        X = model_input(seen).to(next(self.model.parameters()).dtype)  # a .double() model reads doubles
        self.probabilities, self.not_a_digit = probabilities_and_flag(self.model, X)
        self.show_reading(self.probabilities, seen)
        return self.probabilities

    def show_reading(self, probs, seen):
        """Show one reading: the predicted digit and its probability, the ten probabilities as bars, and ``seen``,
        the 28x28 picture the model read. ``probs`` is ``None`` for an empty pad."""
        if probs is None:
            self.prediction.value = "<b style='font-size:1.4em'>何か書いてください</b>"
            self.seen.value = ""
            for bar in self.bars:
                bar.value = 0
            return
        digit = int(probs.argmax())
        self.prediction.value = (f"<b style='font-size:1.4em'>予測: <span class='digit'>{digit}</span></b>"
                                 f"（確率 {probs[digit]:.1%}）")
        if self.not_a_digit:  # the digit is still shown, with the warning
            self.prediction.value += f"<div class='mnist-not-digit' style='color:#b45309'>⚠ {WARNING}</div>"
        self.seen.value = (f"モデルが見た 28×28 の画像:<br><img src='{png_data_url(seen, 3)}'"
                           " width='84' height='84' style='image-rendering:pixelated'>")
        for k, bar in enumerate(self.bars):
            bar.value = float(probs[k])
            bar.bar_style = "success" if k == digit else ""


EXPLORER_TAKES = ("渡すのは 画像 X（N×1×28×28 のテンソル）、同じ枚数のラベル y（0〜9）、predict_proba(model, X) の確率"
                  "（N×10）か予測 y_hat（N 個）です。例: OneVsRestExplorer(data.X_test, data.y_test, probs)")


def _refused(what):
    return ArgumentError(f"OneVsRestExplorer: {what}。{EXPLORER_TAKES}")


def _labels(values, name):
    """``values`` as a 1-D CPU tensor of labels 0-9, or :class:`ArgumentError`."""
    try:
        t = torch.as_tensor(values.detach() if isinstance(values, torch.Tensor) else np.asarray(values)).cpu()
    except Exception as e:  # ragged lists, objects, a tensor without data
        raise _refused(f"{name} を数の並びとして読めません（{type(values).__name__}）") from e
    if t.ndim != 1 or t.dtype == torch.bool or t.is_complex() or (t.is_floating_point() and not (t == t.round()).all()):
        raise _refused(f"{name} は整数が 1 枚に 1 つ並んだ 1 次元のものにしてください（今は形 {tuple(t.shape)}、{t.dtype}）")
    if len(t) and not (0 <= t.min() and t.max() <= 9):
        raise _refused(f"{name} に 0〜9 以外の値があります")
    return t.long()


def explorer_inputs(X, y, probs):
    """Return ``(X, y, y_hat)`` for :class:`OneVsRestExplorer`, or :class:`ArgumentError` (one line): images
    ``N x 1 x 28 x 28``, ``N`` labels 0-9, and ``N x 10`` probabilities (or ``N`` predicted labels)."""
    if not isinstance(X, torch.Tensor) or X.ndim != 4 or tuple(X.shape[1:]) != (1, 28, 28) or len(X) == 0 \
            or X.device.type == "meta" or not X.is_floating_point():
        shape = tuple(X.shape) if isinstance(X, torch.Tensor) else type(X).__name__
        raise _refused(f"画像 X が N×1×28×28 の小数のテンソルではありません（今は {shape}）")
    X = X.detach()  # images straight from a computation that keeps gradients are shown as they are
    y = _labels(y, "ラベル y")
    if isinstance(probs, (list, tuple)) and probs and all(isinstance(row, (list, tuple)) for row in probs):
        with contextlib.suppress(ValueError, TypeError):  # N x 10 probabilities as lists (probs.tolist())
            probs = np.asarray(probs, dtype=float)
    if isinstance(probs, np.ndarray) and probs.ndim == 2 and probs.dtype.kind in "biuf":
        probs = torch.from_numpy(probs)
    if isinstance(probs, torch.Tensor) and probs.ndim == 2:
        if (probs.shape[1] != 10 or probs.device.type == "meta" or not probs.is_floating_point()
                or not torch.isfinite(probs).all()):
            raise _refused(f"確率 probs（形 {tuple(probs.shape)}）が N×10 の数だけの小数ではありません")
        y_hat = probs.detach().float().cpu().argmax(1)
    else:
        y_hat = _labels(probs, "確率 probs（か予測 y_hat）")
    if not len(X) == len(y) == len(y_hat):
        raise _refused(f"画像 {len(X)} 枚、ラベル {len(y)} 個、予測 {len(y_hat)} 個と数がそろっていません")
    return X, y, y_hat


def checked_whole(name, value, low, high):
    """``value`` as an int if it is a whole number (not a bool) from ``low`` to ``high``; else one line."""
    number = whole_number(value)  # an int, a NumPy integer, or one of y_hat's elements (a 0-d tensor)
    if number is None or not low <= number <= high:
        raise ArgumentError(f"OneVsRestExplorer の {name} は {low} 以上 {high} 以下の整数にしてください（今は {short(value, 20)}）。"
                            "例: OneVsRestExplorer(data.X_test, data.y_test, probs, digit=3)")
    return number


def _count_cell(name, value):
    return f"<td class='ovr-{name}' style='padding:6px 14px;text-align:center'><b>{name}</b><br>{value}</td>"


class OneVsRestExplorer(widgets.VBox):
    """Pick a digit: see its 2x2 confusion matrix, TP/FP/FN/TN, the metrics' formulas with the numbers filled in,
    and a few example images for TP, FP and FN.

    Introduced in the lesson: main.ipynb §7.
    """

    def __init__(self, X, y, probs, digit=3, n_examples=8):
        self.X, self.y, self.y_hat = explorer_inputs(X, y, probs)
        if len(self.y) >= 100 and bool((self.y == self.y_hat).all()):  # no model is right on 100 images and more
            print("お知らせ: 正解 y と予測がすべて同じです。2 つ目には正解（data.y_test）、3 つ目には予測の確率（probs）を"
                  "渡しているか確かめてください。")
        digit = checked_whole("digit", digit, 0, 9)
        self.C = confusion_matrix(self.y, self.y_hat, num_classes=10)
        self.n_examples = checked_whole("n_examples", n_examples, 0, 100)
        self.digit = widgets.Dropdown(options=list(range(10)), value=digit, description="数字:")
        self.matrix = widgets.HTML().add_class("ovr-matrix")
        self.formulas = widgets.HTML().add_class("ovr-formulas")
        self.examples = widgets.HTML().add_class("ovr-examples")
        self.formulas.layout.margin = "0 0 0 24px"
        super().__init__([self.digit, widgets.HBox([self.matrix, self.formulas]), self.examples])
        self.digit.observe(lambda change: self.update(), names="value")
        self.update()

    def update(self):
        k = self.digit.value
        c = one_vs_rest(self.C, k)
        self.matrix.value = (
            "<table style='border-collapse:collapse' border='1'>"
            f"<tr><th></th><th>予測 {k}</th><th>予測 {k} 以外</th></tr>"
            f"<tr><th>本当は {k}</th>{_count_cell('TP', c.TP)}{_count_cell('FN', c.FN)}</tr>"
            f"<tr><th>本当は {k} 以外</th>{_count_cell('FP', c.FP)}{_count_cell('TN', c.TN)}</tr></table>")
        total = c.TP + c.FP + c.FN + c.TN
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)  # 0/0 is 0, as in the table; said once below
            accuracy, scores = one_vs_rest_accuracy(c), (precision(c), recall(c), f1(c))
        lines = [f"Accuracy（正解率、{k} か {k} 以外か） = (TP + TN) / 全部 = ({c.TP} + {c.TN}) / {total} = {accuracy:.4f}",
                 f"Precision（適合率） = TP / (TP + FP) = {c.TP} / ({c.TP} + {c.FP}) = {scores[0]:.4f}",
                 f"Recall（再現率） = TP / (TP + FN) = {c.TP} / ({c.TP} + {c.FN}) = {scores[1]:.4f}",
                 f"F1 = 2TP / (2TP + FP + FN) = {2 * c.TP} / ({2 * c.TP} + {c.FP} + {c.FN}) = {scores[2]:.4f}"]
        if 0 in (c.TP + c.FP, c.TP + c.FN):
            lines.append("※ 分母が 0 の式（0 / 0）は、classification_table と同じく 0 としています。")
        self.formulas.value = "<br>".join(html.escape(line) for line in lines)
        self.examples.value = "".join(self._strip(name, mask) for name, mask in (
            ("TP（当たり）", (self.y == k) & (self.y_hat == k)),
            ("FP（誤検出: 本当は別の数字）", (self.y != k) & (self.y_hat == k)),
            ("FN（見逃し: 別の数字と予測）", (self.y == k) & (self.y_hat != k))))

    def _strip(self, title, mask):
        idx = torch.nonzero(mask).flatten()[: self.n_examples]
        if len(idx) == 0:
            return f"<div><b>{html.escape(title)}</b>: なし</div>"
        images = denormalize(self.X[idx].cpu())
        cells = "".join(f"<figure style='margin:2px;text-align:center'><img src='{png_data_url(img)}'>"
                        f"<figcaption>{int(self.y[i])}→{int(self.y_hat[i])}</figcaption></figure>"
                        for i, img in zip(idx.tolist(), images))
        return f"<div><b>{html.escape(title)}</b><div style='display:flex'>{cells}</div></div>"
