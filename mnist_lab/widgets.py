"""Interactive pieces for the notebook: a draw-a-digit pad and a one-vs-rest explorer.

Everything here is a thin view over :mod:`mnist_lab.preprocess`, :mod:`mnist_lab.inference` and
:mod:`mnist_lab.metrics`: the numbers a widget shows are the library's numbers. (Live training curves are a
training callback: :class:`mnist_lab.callbacks.LiveCurves`.)
"""

import base64
import html
import io
import time

import ipywidgets as widgets
import numpy as np
import torch
from PIL import Image, ImageDraw

from .data import denormalize
from .metrics import accuracy, confusion_matrix, f1, one_vs_rest, precision, recall
from .ood import WARNING, probabilities_and_flag
from .preprocess import EmptyImageError, mnist_like, preprocess_drawing


def png_data_url(pixels, scale=2):
    """Return a ``data:`` URL of a 2-D array in [0, 1] (white ink on black) drawn ``scale`` times larger."""
    image = Image.fromarray((np.asarray(pixels) * 255).astype(np.uint8))
    image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


class DrawPad(widgets.HBox):
    """Draw a digit with mouse, pen or finger; the model reads it while you draw and when you lift the pen.

    Shows the predicted digit, the ten class probabilities as bars, and the 28x28 picture the model actually saw.
    Strokes are drawn on the browser canvas and, identically, on a Pillow image kept here, which is what is read.
    A slider sets the pen's width (for the next strokes).
    """

    EVERY = 0.25  # seconds between readings while the pen moves

    def __init__(self, model, size=280, line_width=22):
        from ipycanvas import Canvas

        self.model, self.size, self.line_width = model, size, line_width
        self.canvas = Canvas(width=size, height=size, layout=widgets.Layout(border="2px solid #888", width=f"{size}px",
                                                                          height=f"{size}px"))
        self.clear_button = widgets.Button(description="消す", icon="eraser")
        self.pen_width = widgets.IntSlider(value=line_width, min=2, max=40, description="ペンの太さ",
                                           layout=widgets.Layout(width=f"{size}px")).add_class("mnist-pen-width")
        self.pen_width.observe(lambda change: self.set_line_width(change["new"]), names="value")
        self.prediction = widgets.HTML().add_class("mnist-prediction")
        self.seen = widgets.HTML().add_class("mnist-seen")
        self.bars = [widgets.FloatProgress(min=0, max=1, description=str(k), layout=widgets.Layout(width="260px"))
                     for k in range(10)]
        self.probabilities = self.not_a_digit = None  # not_a_digit: None when the model cannot tell
        super().__init__([widgets.VBox([self.canvas, self.clear_button, self.pen_width]),
                          widgets.VBox([self.prediction, self.seen, *self.bars],
                                       layout=widgets.Layout(margin="0 0 0 16px"))],
                         layout=widgets.Layout(flex_flow="row wrap"))  # a phone: the bars go below the canvas
        self._last, self._read_at = None, 0.0
        self.canvas.on_mouse_down(self.pen_down)
        self.canvas.on_mouse_move(self.pen_move)
        self.canvas.on_mouse_up(self.pen_up)
        self.canvas.on_mouse_out(self.pen_up)
        self.canvas.on_touch_start(lambda touches: touches and self.pen_down(*touches[0]))  # first finger only
        self.canvas.on_touch_move(lambda touches: touches and self.pen_move(*touches[0]))
        self.canvas.on_touch_end(lambda touches: self.pen_up(0, 0))
        self.canvas.on_touch_cancel(lambda touches: self.pen_up(0, 0))  # the system took the touch over
        self.clear_button.on_click(lambda _: self.clear())
        self.canvas.on_client_ready(self._new_view)
        self.clear()

    def close(self):
        """Close the pad and every widget in it, letting go of the model (so its GPU memory can be freed)."""
        for widget in (self.canvas, self.clear_button, self.pen_width, self.prediction, self.seen, *self.bars,
                       *self.children):
            widget.close()
        self.model = None
        super().close()

    def clear(self):
        """Wipe the canvas and the prediction."""
        self.image = Image.new("L", (self.size, self.size), 255)
        self._pen = ImageDraw.Draw(self.image)
        self.canvas.clear()
        self.canvas.fill_style = "white"
        self.canvas.fill_rect(0, 0, self.size, self.size)
        self._pick_up_pen()
        self._show(None)

    def _pick_up_pen(self):
        self.canvas.stroke_style = self.canvas.fill_style = "black"
        self.canvas.line_width, self.canvas.line_cap, self.canvas.line_join = self.line_width, "round", "round"

    def _new_view(self):
        """A page has just shown the pad (Voilà runs the notebook before any page opens; JupyterLab draws an output
        again when a notebook is reopened): send it the drawing so far and the pen."""
        self.canvas._canvas_manager._current_canvas = None  # else ipycanvas never tells the page which canvas
        self.canvas.put_image_data(np.asarray(self.image.convert("RGB")), 0, 0)
        self._pick_up_pen()

    def set_line_width(self, width):
        """Draw the next strokes ``width`` pixels wide."""
        self.line_width = self.canvas.line_width = width

    def pen_down(self, x, y):
        self._last = (x, y)
        self.stroke(x, y, x, y)

    def pen_move(self, x, y):
        if self._last is not None:
            self.stroke(*self._last, x, y)
            self._last = (x, y)
            if time.monotonic() - self._read_at >= self.EVERY:
                self.predict()

    def pen_up(self, x, y):
        if self._last is not None:
            self._last = None
            self.predict()

    def stroke(self, x0, y0, x1, y1):
        """Draw one segment of ink on the canvas and on the image that will be read."""
        self.canvas.stroke_line(x0, y0, x1, y1)
        self.canvas.fill_circle(x1, y1, self.line_width / 2)
        self._pen.line([(x0, y0), (x1, y1)], fill=0, width=self.line_width)
        r = self.line_width / 2
        self._pen.ellipse([x1 - r, y1 - r, x1 + r, y1 + r], fill=0)

    def predict(self):
        """Read the drawing; return the 10 probabilities (or ``None`` for an empty canvas) and show them."""
        self._read_at = time.monotonic()
        try:
            X = preprocess_drawing(self.image)
        except EmptyImageError:
            self._show(None)
            return None
        self.probabilities, self.not_a_digit = probabilities_and_flag(self.model, X)
        self._show(self.probabilities)
        return self.probabilities

    def _show(self, probs):
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
        self.seen.value = (f"モデルが見た 28×28 の画像:<br><img src='{png_data_url(mnist_like(self.image), 3)}'"
                           " width='84' height='84' style='image-rendering:pixelated'>")
        for k, bar in enumerate(self.bars):
            bar.value = float(probs[k])
            bar.bar_style = "success" if k == digit else ""


def _count_cell(name, value):
    return f"<td class='ovr-{name}' style='padding:6px 14px;text-align:center'><b>{name}</b><br>{value}</td>"


class OneVsRestExplorer(widgets.VBox):
    """Pick a digit: see its 2x2 confusion matrix, TP/FP/FN/TN, the metrics' formulas with the numbers filled in,
    and a few example images for TP, FP and FN."""

    def __init__(self, X, y, probs, digit=3, n_examples=8):
        self.X, self.y = X, torch.as_tensor(y).cpu()
        self.y_hat = torch.as_tensor(probs).argmax(1).cpu()
        self.C = confusion_matrix(self.y, self.y_hat)
        self.n_examples = n_examples
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
        lines = [f"Accuracy（正解率、{k} か {k} 以外か） = (TP + TN) / 全部 = ({c.TP} + {c.TN}) / {total} = {accuracy(c):.4f}",
                 f"Precision（適合率） = TP / (TP + FP) = {c.TP} / ({c.TP} + {c.FP}) = {precision(c):.4f}",
                 f"Recall（再現率） = TP / (TP + FN) = {c.TP} / ({c.TP} + {c.FN}) = {recall(c):.4f}",
                 f"F1 = 2TP / (2TP + FP + FN) = {2 * c.TP} / ({2 * c.TP} + {c.FP} + {c.FN}) = {f1(c):.4f}"]
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
