"""Figures for the lesson and the report: samples, training curves, confusion matrix, per-class scores, mistakes.

Every function returns a :class:`Figure` (a matplotlib Figure built without pyplot), so a notebook shows it exactly
once (as the cell's result) and a script can ``fig.savefig(...)`` it with no display. Labels are in Japanese when a
Japanese font is there (the ``matplotlib-fontja`` package brings one), else in English: never empty boxes.
"""

import functools
import io
import math

import numpy as np
from matplotlib import font_manager
from matplotlib.figure import Figure as _MplFigure

from .data import denormalize
from .errors import ArgumentError, explained_arguments, short, whole_number
from .history import MAX_EPOCHS, checked_history
from .metrics import MetricInputError, checked_labels, checked_matrix

TAKES = {  # what each plot function draws from, as the lesson passes it
    "plot_samples": "画像 X（N×1×28×28 のテンソル）と同じ枚数のラベル y",
    "plot_history": "fit が返す History（と、あれば LiveCurves の points）",
    "plot_confusion_matrix": "10×10 の混同行列 C（confusion_matrix の結果）",
    "plot_per_class": "classification_table(C) の表",
    "plot_misclassified": "画像 X、ラベル y、確率 probs（predict_proba の結果）",
    "plot_comparison": "compare(...) の表",
    "plot_filters": "畳み込み層の重み（例: first_convolution(model).weight）",
    "plot_feature_maps": "画像 1 枚と activations(...) の特徴マップ",
    "plot_energies": "energies(...) の結果 2 つ（数字と、数字でない絵）",
}


def explained_inputs(plot):
    """One line saying what ``plot`` draws from when it is given something else (:func:`explained_arguments`);
    tensors that keep gradients (``F.softmax(model(X), 1)`` outside ``torch.no_grad()``) are drawn as they are."""
    checked = explained_arguments(TAKES[plot.__name__])(plot)

    @functools.wraps(plot)
    def drawn(*args, **kwargs):
        return checked(*map(_detached, args), **{name: _detached(value) for name, value in kwargs.items()})
    return drawn


def _detached(value):
    return value.detach() if getattr(value, "requires_grad", False) is True else value


def _japanese_font():
    """Whether figures can show Japanese: ``matplotlib_fontja`` (which makes its font the default) or a CJK font."""
    try:
        import matplotlib_fontja  # noqa: F401 - registers IPAexGothic and makes it matplotlib's font
        return True
    except ImportError:
        names = {f.name for f in font_manager.fontManager.ttflist}
        return any(name.startswith(("IPAex", "Noto Sans CJK", "Noto Serif CJK", "TakaoP")) for name in names)


JAPANESE = _japanese_font()


def label(ja, en):
    """``ja`` where figures can show Japanese, else ``en``."""
    return ja if JAPANESE else en

RIGHT, WRONG = "tab:green", "tab:red"
SPLITS = {"test": "テスト", "val": "検証"}


class Figure(_MplFigure):
    """A matplotlib Figure that Jupyter shows as a PNG without pyplot (and so exactly once)."""

    def _repr_png_(self):
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        return buffer.getvalue()


def _columns(function, ncols):
    """``ncols`` as an int of at least 1; else one line naming ``function``'s ``ncols`` (not its images)."""
    value = whole_number(ncols)
    if value is None or value < 1:
        raise ArgumentError(f"{function} の ncols は 1 行に並べる枚数（1 以上の整数）にしてください（今は {short(ncols)}）。"
                            "例: ncols=8")
    return value


def _grid(n, ncols, cell=1.2):
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    fig = Figure(figsize=(ncols * cell, nrows * (cell + 0.25)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    for ax in axes:
        ax.set_axis_off()
    return fig, axes


MAX_SAMPLES = 100  # images plot_samples draws at most: 1,000 take over a minute, all 60,000 over an hour


def _checked_samples(X, y, y_hat):
    """Return the labels ``y`` and ``y_hat`` (or ``None``) of the images ``X`` as int arrays, before anything is
    drawn; else one line: ``X`` no stack of at most ``MAX_SAMPLES`` images, labels not whole numbers 0-9 or
    not one per image."""
    shape = tuple(getattr(X, "shape", ()))
    if not hasattr(X, "detach") or len(shape) != 4 or shape[1:] != (1, 28, 28):
        raise ArgumentError(f"plot_samples の X は N×1×28×28 の画像のテンソルです（今は {shape or type(X).__name__}）。"
                            "1 枚だけなら X[:1], y[:1] のように渡してください。")
    if len(X) > MAX_SAMPLES:
        raise ArgumentError(f"plot_samples で描くのは {MAX_SAMPLES} 枚までです（今は {len(X)} 枚。全部だと何十分もかかります）。"
                            "plot_samples(X[:32], y[:32]) のように一部を渡してください。")
    checked = []
    for name, labels in (("y", y), ("y_hat", y_hat)):
        try:
            labels = None if labels is None and name == "y_hat" else checked_labels(labels, name)
        except MetricInputError as e:
            raise ArgumentError(f"plot_samples の {e}") from e
        if labels is not None and len(labels) != len(X):
            raise ArgumentError(f"plot_samples の画像 X は {len(X)} 枚、{name} は {len(labels)} 個です。同じ数にしてください"
                                "（例: plot_samples(X[:8], y[:8])）。")
        checked.append(labels)
    return checked


@explained_inputs
def plot_samples(X, y, y_hat=None, ncols=8):
    """Return a grid of the images ``X`` titled with their labels ``y``.

    With predictions ``y_hat`` each title reads ``pred (true)``, green when right and red when wrong.

    Introduced in the lesson: main.ipynb §3.
    """
    y, y_hat = _checked_samples(X, y, y_hat)
    ncols = _columns("plot_samples", ncols)
    images = denormalize(X.detach().cpu()).numpy()
    fig, axes = _grid(len(images), ncols)
    for i, (ax, image) in enumerate(zip(axes, images)):
        ax.imshow(image, cmap="gray", vmin=0, vmax=1)
        if y_hat is None:
            ax.set_title(str(int(y[i])))
        else:
            right = int(y_hat[i]) == int(y[i])
            ax.set_title(f"{int(y_hat[i])} ({int(y[i])})", color=RIGHT if right else WRONG)
    if y_hat is not None:
        fig.suptitle(label("予測（正解）: 緑は当たり、赤は間違い", "predicted (true): green = right, red = wrong"))
    return fig


POINT_KEYS = ("epoch", "train_loss", "train_accuracy")


def _number(value, low=-math.inf, high=math.inf):
    """Whether ``value`` is a real number (not True/False) from ``low`` to ``high`` (NaN only without bounds)."""
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
            and (low <= value <= high or (math.isnan(value) and low == -math.inf)))


def _checked_curve_arguments(points, epochs):
    """Refuse ``points`` that are not LiveCurves' training points and ``epochs`` that is no run length, in one line."""
    if not isinstance(points, (list, tuple)) or not all(
            isinstance(p, dict) and _number(p.get("epoch"), 0, MAX_EPOCHS) and all(_number(p.get(k)) for k in POINT_KEYS)
            for p in points):
        raise ArgumentError("plot_history の points は LiveCurves の points（{'epoch': 0.5, 'train_loss': 0.3, "
                            "'train_accuracy': 0.9} のような記録の並び）です。なければ省いて plot_history(history) としてください。")
    if epochs is not None and not _number(epochs, 0, MAX_EPOCHS):
        raise ArgumentError(f"plot_history の epochs は学習のエポック数（0〜{MAX_EPOCHS} の数）です（今は {short(epochs)}）。"
                            "なければ省いてください。")


@explained_inputs
def plot_history(history, points=(), epochs=None):
    """Return loss and accuracy over the epochs, training vs. evaluation, of a :class:`~mnist_lab.history.History`
    (or its dict form); a history no training could have written is a :class:`~mnist_lab.history.HistoryError`.

    ``points`` (from :class:`~mnist_lab.callbacks.LiveCurves`) are training points within epochs, ``{"epoch":
    fraction of the run, "train_loss", "train_accuracy"}``; without them the training curve has one point per epoch.
    ``epochs``: the run's length, so the axis spans the whole run while it is still going.
    """
    history = checked_history(history)
    _checked_curve_arguments(points, epochs)
    records, split = history.records, history.eval_split
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    train = points or records
    last = max([epochs or 0] + [p["epoch"] for p in train] + [r["epoch"] for r in records])
    for ax, key, title in ((ax_loss, "loss", label("損失（交差エントロピー）", "Loss (cross-entropy)")),
                           (ax_acc, "accuracy", label("正解率", "Accuracy"))):
        ax.plot([p["epoch"] for p in train], [p[f"train_{key}"] for p in train], ".-" if points else "o-",
                label=label("訓練", "train"))
        ax.plot([r["epoch"] for r in records], [r[f"eval_{key}"] for r in records], "s-",
                label=label(SPLITS.get(split, split), split))
        ax.set_xlabel(label("エポック", "epoch"))
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
        if last:
            ax.set_xlim(0 if points else 0.5, last + (0.02 * last if points else 0.5))
            ax.set_xticks(range(0 if points else 1, int(last) + 1, max(1, -(-int(last) // 12))))
        if not train and not records:
            note = (label("終わったエポックがありません\n（中断）", "no finished epoch\n(interrupted)") if history.interrupted
                    else label("学習が始まると\nここに描きます", "the curves appear\nonce training starts"))
            ax.text(0.5, 0.5, note, ha="center", va="center", transform=ax.transAxes)
    return fig


@explained_inputs
def plot_confusion_matrix(C):
    """Return the confusion matrix as a heatmap with its counts written in (rows true, columns predicted).

    Introduced in the lesson: main.ipynb §7.
    """
    C = checked_matrix(C)  # counts only: a normalised (fractional) or negative matrix is refused in one line
    k = len(C)
    fig = Figure(figsize=(6.4, 5.6), layout="constrained")
    ax = fig.subplots()
    shown = np.log1p(C)  # a log scale makes the few mistakes visible next to ~1000 correct per digit
    im = ax.imshow(shown, cmap="Blues")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(C[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if shown[i, j] > shown.max() * 0.6 else "black")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xlabel(label("予測", "predicted"))
    ax.set_ylabel(label("正解", "true"))
    ax.set_title(label(f"混同行列（{int(C.sum())} 枚中 {int(C.trace())} 枚が正解）",
                       f"Confusion matrix ({int(C.trace())} / {int(C.sum())} right)"))
    fig.colorbar(im, ax=ax, label=label("log(1 + 枚数)", "log(1 + count)"))
    return fig


@explained_inputs
def plot_per_class(table):
    """Return precision, recall and F1 of each digit as grouped bars (from ``metrics.classification_table``).

    Introduced in the lesson: main.ipynb §7.
    """
    if not hasattr(table, "columns"):  # a list or an array (the matrix C itself, C.tolist()): no table at all
        hint = "混同行列 C なら plot_per_class(classification_table(C)) です。" if _rows(table) else ""
        raise ArgumentError(f"plot_per_class には classification_table(C) の表を渡してください（今は {type(table).__name__}）。"
                            + hint)
    names = list(table.index)
    if not names or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and 0 <= d <= 9 for d in names):
        raise ArgumentError("plot_per_class には classification_table(C) の表（行が数字 0〜9）を渡してください"
                            f"（今の行: {[str(d) for d in names[:4]]}）。並べ替えた表や一部の行でもかまいません。")
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax = fig.subplots()
    digits = np.arange(len(table))
    for offset, column in zip((-0.27, 0, 0.27), ("precision", "recall", "f1")):
        ax.bar(digits + offset, table[column], width=0.27, label=column)
    low = float(table[["precision", "recall", "f1"]].to_numpy().min())
    ax.set_ylim(max(0.0, low - 0.02), 1.0)
    ax.set_xticks(digits, [str(int(d)) for d in names])  # the table's own digits: sorted or a few, each bar is named
    ax.set_xlabel(label("数字", "digit"))
    ax.set_title(label("数字ごとのスコア", "Per-digit scores"))
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the bars, never over digit 9's
    ax.grid(axis="y", alpha=0.3)
    return fig


def _rows(value):
    """Whether ``value`` is a 2-D table of numbers (an array, a tensor or a list of lists)."""
    try:
        return np.ndim(value) == 2
    except (ValueError, TypeError):  # rows of different lengths
        return False


def misclassified(y, probs):
    """Return the indices of wrong predictions, most confident mistakes first."""
    probs = np.asarray(probs)
    y_hat = probs.argmax(1)
    wrong = np.nonzero(y_hat != np.asarray(y))[0]
    return wrong[np.argsort(-probs[wrong, y_hat[wrong]], kind="stable")]


def _probabilities(probs):
    """``probs`` as an N x 10 NumPy array of probabilities (each row from 0 to 1, summing to 1); else one line
    saying what to pass: labels (``y_hat``), raw scores (``model(X)``) and log-probabilities are not."""
    array = probs.detach().float().cpu().numpy() if hasattr(probs, "detach") else np.asarray(probs, dtype=np.float64)
    if array.ndim == 1:
        raise ArgumentError("plot_misclassified の probs が 1 次元です（予測 y_hat のようなラベルの並び）。"
                            "確率の表 probs = predict_proba(model, X)（N×10）を渡してください。")
    if array.ndim != 2 or array.shape[1] != 10:
        raise ArgumentError(f"plot_misclassified の probs の形 {array.shape} は N×10 ではありません。"
                            "probs = predict_proba(model, X) を渡してください。")
    if not (np.isfinite(array).all() and (array >= 0).all() and (array <= 1).all()
            and np.allclose(array.sum(1), 1, atol=1e-2)):
        raise ArgumentError("plot_misclassified の probs が確率（0〜1 で、各行の合計が 1）ではありません。model(X) のスコアや "
                            "log_softmax なら、probs = predict_proba(model, X)（または F.softmax(model(X), 1)）を渡してください。")
    return array


@explained_inputs
def plot_misclassified(X, y, probs, n=24, ncols=8):
    """Return a gallery of up to ``n`` misclassified images: ``true -> predicted (confidence)``.

    Introduced in the lesson: main.ipynb §9.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ArgumentError(f"plot_misclassified の n は描く枚数（0 以上の整数）にしてください（今は {short(n)}）。例: n=24")
    probs, ncols = _probabilities(probs), _columns("plot_misclassified", ncols)
    if not len(X) == len(y) == len(probs):  # else each title would belong to another image than the one drawn
        raise ArgumentError(f"plot_misclassified の画像 X は {len(X)} 枚、ラベル y は {len(y)} 個、確率 probs は {len(probs)} 行"
                            "で、数がそろっていません。同じ画像のものを渡してください"
                            "（例: plot_misclassified(data.X_test, data.y_test, probs)）。")
    idx = misclassified(y, probs)[:n]
    fig, axes = _grid(max(1, len(idx)), ncols)
    if len(idx) == 0:
        axes[0].text(0.5, 0.5, label("間違いはありません", "no mistakes"), ha="center", va="center")
        return fig
    images = denormalize(X[idx].detach().cpu()).numpy()
    for ax, i, image in zip(axes, idx, images):
        pred = int(probs[i].argmax())
        ax.imshow(image, cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{int(y[i])}→{pred} ({probs[i, pred]:.0%})", color=WRONG, fontsize=9)
    fig.suptitle(label("間違えた画像: 正解 → 予測（予測の確率）", "Misclassified: true → predicted (confidence)"))
    return fig


COMPARED = ("status", "errors", "seconds")  # the columns of compare's table that plot_comparison draws


@explained_inputs
def plot_comparison(table):
    """Return test errors (out of the test set) and training time per model, from ``compare``'s table. A model with
    no finished epoch has no error count: it gets no bar, but its status ("not trained", "interrupted") instead.

    Introduced in the lesson: main.ipynb §12.
    """
    missing = [column for column in COMPARED if column not in getattr(table, "columns", ())]
    if missing or not hasattr(table, "index"):
        raise ArgumentError(f"plot_comparison には compare(...) の表（列 {'・'.join(COMPARED)} のある表）を渡してください"
                            f"（足りない列: {'・'.join(missing) or '表ではありません'}）。")
    errors = table["errors"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    ax_err, ax_time = fig.subplots(1, 2)
    at = np.arange(len(table))  # one slot per row, also for a name twice (pd.concat of two comparisons)
    ax_err.bar(at, np.nan_to_num(errors), color="tab:red")
    ax_err.set_title(label("テストで間違えた枚数（少ないほどよい）", "Test errors (lower is better)"))
    ax_time.bar(at, table["seconds"], color="tab:blue")
    ax_time.set_title(label("学習時間 [秒]", "Training time [s]"))
    for ax, values in ((ax_err, errors), (ax_time, np.asarray(table["seconds"], dtype=float))):
        ax.set_xticks(at, _bar_names(table.index))
        for i, (value, status) in enumerate(zip(values, table["status"])):
            ax.text(i, np.nan_to_num(value), _bar_label(value, status), ha="center", va="bottom")
        ax.grid(axis="y", alpha=0.3)
    if np.isnan(errors).all():
        ax_err.set_ylim(0, 1)
        ax_err.set_yticks([])
    return fig


def _bar_names(index):
    """The rows' names, a repeated one numbered (``quick``, ``quick #2``) so each bar says which row it is."""
    seen, names = {}, []
    for name in map(str, index):
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name} #{seen[name]}")
    return names


def _bar_label(value, status):
    if status == "not trained":
        return label("未学習", "not trained")
    if np.isnan(value):
        return label("中断\n（終わったエポックなし）", "interrupted\n(no finished epoch)")
    return f"{value:.0f}"


@explained_inputs
def plot_filters(conv, ncols=8):
    """Return the learned filters of a convolution on the image (a ``Conv2d`` taking one channel, or its weight
    ``out x 1 x k x k``), each with its own grey scale: white where it weighs a pixel positively, black where
    negatively. ``None`` (nothing to draw) is :class:`ArgumentError`, one line asking for a CNN's convolution.

    Introduced in the lesson: main.ipynb §6.
    """
    if conv is None:
        raise ArgumentError("plot_filters に渡したものが None で、描くフィルタがありません。"
                            "畳み込み層のあるモデル（CNN）の first_convolution(model) を渡してください。")
    if hasattr(conv, "named_modules") and not hasattr(conv, "weight"):  # the whole model, not its convolution
        raise ArgumentError(f"plot_filters に渡したのはモデル全体（{type(conv).__name__}）です。フィルタを持つ最初の畳み込み層 "
                            "first_convolution(model) を渡してください。")
    weight, ncols = getattr(conv, "weight", conv), _columns("plot_filters", ncols)
    filters = weight.detach().float().cpu()[:, 0].numpy()
    fig, axes = _grid(len(filters), ncols, cell=0.9)
    for k, (ax, w) in enumerate(zip(axes, filters)):
        bound = np.abs(w).max() or 1.0
        ax.imshow(w, cmap="gray", vmin=-bound, vmax=bound)
        ax.set_title(str(k), fontsize=8)
    height, width = filters.shape[-2:]
    fig.suptitle(label(f"学習した {len(filters)} 枚の {height}×{width} フィルタ",
                       f"The {len(filters)} learned {height}x{width} filters"))
    return fig


def _values(x):
    """Return the numbers ``x`` (a tensor anywhere, a NumPy array, a list) as a flat float NumPy array."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64).ravel()


@explained_inputs
def plot_feature_maps(image, maps, n=8):
    """Return one image and, row by row, the first ``n`` channels of each ``{title: maps (channels x H x W)}``
    (no maps: :class:`ArgumentError`, one line asking for a CNN's maps).

    Introduced in the lesson: main.ipynb §6.
    """
    if isinstance(maps, dict) and not maps:
        raise ArgumentError("plot_feature_maps に渡した特徴マップが空で、描くものがありません。"
                            "畳み込み層のあるモデル（CNN）の first_block(model) の層の activations を渡してください。")
    maps = _one_image(maps)
    fig = Figure(figsize=(1.3 * (n + 1), 1.45 * len(maps)), layout="constrained")
    axes = fig.subplots(len(maps), n + 1, squeeze=False)
    for row, (title, channels) in zip(axes, maps.items()):
        for ax in row:
            ax.set_axis_off()
        row[0].imshow(denormalize(image.cpu()).numpy().squeeze(), cmap="gray", vmin=0, vmax=1)
        row[0].set_title(title, fontsize=9)
        for ax, channel in zip(row[1:], channels[:n]):
            ax.imshow(channel.numpy(), cmap="viridis")
            ax.set_title(f"{channel.shape[0]}×{channel.shape[1]}", fontsize=7)
    return fig


def _one_image(maps):
    """``maps`` as ``{title: channels x H x W}``: the maps ``activations(model, X[:1], ...)`` returns keep their
    batch axis (1 x C x H x W), which is dropped; maps of several images are one line saying to take one."""
    shown = {}
    for title, channels in maps.items():
        if getattr(channels, "ndim", 0) == 4 and len(channels) != 1:
            raise ArgumentError(f"plot_feature_maps の {title!r} は {len(channels)} 枚分の特徴マップです（形 "
                                f"{tuple(channels.shape)}）。maps[name][0] のように 1 枚分を渡してください。")
        shown[title] = channels[0] if getattr(channels, "ndim", 0) == 4 else channels
    return shown


def _checked_energy_arguments(digits, non_digits, threshold):
    """Return ``threshold`` as a float (or ``None``); refuse, in one line, energies that are a table (such as
    probabilities, N x 10) and a threshold that is no finite number."""
    for values in (digits, non_digits):
        shape = tuple(getattr(values, "shape", None) or np.shape(values))
        if sum(n > 1 for n in shape) > 1:
            raise ArgumentError(f"plot_energies に渡したものが表（形 {shape}）です。エネルギーは画像 1 枚に 1 つの数です:"
                                " energies(model, X) の結果を渡してください（predict_proba の確率ではありません）。")
    if threshold is None:
        return None
    try:
        value = math.nan if isinstance(threshold, (str, bytes, bool, np.bool_)) else float(threshold)
    except (TypeError, ValueError, RuntimeError):  # a list, a tensor of several values...
        value = math.nan
    if not math.isfinite(value):
        raise ArgumentError(f"plot_energies の threshold は境目のエネルギー（数）です（今は {short(threshold)}）。"
                            "threshold_of(...) の結果を渡すか、省いてください。")
    return value


@explained_inputs
def plot_energies(digits, non_digits, threshold=None, title=None):
    """Histograms of the energies of digits and of non-digits (the same model), with the threshold if given.

    Introduced in the lesson: main.ipynb §10.
    """
    threshold = _checked_energy_arguments(digits, non_digits, threshold)
    digits, non_digits = _values(digits), _values(non_digits)
    if not (digits.size and non_digits.size and np.isfinite(digits).all() and np.isfinite(non_digits).all()):
        raise ArgumentError("plot_energies に渡したエネルギーが空か、NaN・無限大を含みます。energies(model, X) の結果を"
                            "数字の画像と数字でない絵について 1 つずつ渡してください。")
    fig = Figure(figsize=(7, 3))
    ax = fig.subplots()
    bins = np.linspace(float(min(digits.min(), non_digits.min())), float(max(digits.max(), non_digits.max())), 50)
    ax.hist(digits, bins=bins, density=True, alpha=0.6, color=RIGHT, label=label("数字（MNIST テスト）", "digits"))
    ax.hist(non_digits, bins=bins, density=True, alpha=0.6, color=WRONG, label=label("数字でない絵", "non-digits"))
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", label=label("境目（これより右は警告）", "threshold"))
    ax.set_xlabel(label("エネルギー（右ほど「知らない」）", "energy (higher: less familiar)"))
    ax.set_yticks([])
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig

