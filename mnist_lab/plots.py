"""Figures for the lesson and the report: samples, training curves, confusion matrix, per-class scores, mistakes.

Every function returns a :class:`Figure` (a matplotlib Figure built without pyplot), so a notebook shows it exactly
once (as the cell's result) and a script can ``fig.savefig(...)`` it with no display. Labels are in English so the
figures render on machines without Japanese fonts.
"""

import io

import numpy as np
from matplotlib.figure import Figure as _MplFigure

from .data import denormalize

RIGHT, WRONG = "tab:green", "tab:red"


class Figure(_MplFigure):
    """A matplotlib Figure that Jupyter shows as a PNG without pyplot (and so exactly once)."""

    def _repr_png_(self):
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        return buffer.getvalue()


def _grid(n, ncols, cell=1.2):
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    fig = Figure(figsize=(ncols * cell, nrows * (cell + 0.25)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    for ax in axes:
        ax.set_axis_off()
    return fig, axes


def plot_samples(X, y, y_hat=None, ncols=8):
    """Return a grid of the images ``X`` titled with their labels ``y``.

    With predictions ``y_hat`` each title reads ``pred (true)``, green when right and red when wrong.
    """
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
        fig.suptitle("predicted (true): green = right, red = wrong")
    return fig


def plot_history(history):
    """Return loss and accuracy per epoch, training vs. evaluation, of a :class:`~mnist_lab.history.History`."""
    records, split = history.records, history.eval_split
    epochs = [r["epoch"] for r in records]
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    for ax, key, title in ((ax_loss, "loss", "Loss (cross-entropy)"), (ax_acc, "accuracy", "Accuracy")):
        ax.plot(epochs, [r[f"train_{key}"] for r in records], "o-", label="train")
        ax.plot(epochs, [r[f"eval_{key}"] for r in records], "s-", label=split)
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
        if not epochs:
            ax.text(0.5, 0.5, "no finished epoch\n(interrupted)", ha="center", va="center", transform=ax.transAxes)
    if epochs:
        for ax in (ax_loss, ax_acc):
            ax.set_xticks(epochs if len(epochs) <= 12 else epochs[:: -(-len(epochs) // 12)])
    return fig


def plot_confusion_matrix(C):
    """Return the confusion matrix as a heatmap with its counts written in (rows true, columns predicted)."""
    C = np.asarray(C)
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
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"Confusion matrix ({int(C.trace())} / {int(C.sum())} right)")
    fig.colorbar(im, ax=ax, label="log(1 + count)")
    return fig


def plot_per_class(table):
    """Return precision, recall and F1 of each digit as grouped bars (from ``metrics.classification_table``)."""
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax = fig.subplots()
    digits = np.arange(len(table))
    for offset, column in zip((-0.27, 0, 0.27), ("precision", "recall", "f1")):
        ax.bar(digits + offset, table[column], width=0.27, label=column)
    low = float(table[["precision", "recall", "f1"]].to_numpy().min())
    ax.set_ylim(max(0.0, low - 0.02), 1.0)
    ax.set_xticks(digits)
    ax.set_xlabel("digit")
    ax.set_title("Per-digit scores")
    ax.legend(loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    return fig


def misclassified(y, probs):
    """Return the indices of wrong predictions, most confident mistakes first."""
    probs = np.asarray(probs)
    y_hat = probs.argmax(1)
    wrong = np.nonzero(y_hat != np.asarray(y))[0]
    return wrong[np.argsort(-probs[wrong, y_hat[wrong]], kind="stable")]


def plot_misclassified(X, y, probs, n=24, ncols=8):
    """Return a gallery of up to ``n`` misclassified images: ``true -> predicted (confidence)``."""
    idx = misclassified(y, probs)[:n]
    probs = np.asarray(probs)
    fig, axes = _grid(max(1, len(idx)), ncols)
    if len(idx) == 0:
        axes[0].text(0.5, 0.5, "no mistakes", ha="center", va="center")
        return fig
    images = denormalize(X[idx].detach().cpu()).numpy()
    for ax, i, image in zip(axes, idx, images):
        pred = int(probs[i].argmax())
        ax.imshow(image, cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{int(y[i])}→{pred} ({probs[i, pred]:.0%})", color=WRONG, fontsize=9)
    fig.suptitle("Misclassified: true → predicted (confidence)")
    return fig


def plot_comparison(table):
    """Return test errors (out of the test set) and training time per model, from ``compare``'s table; a model
    that was not trained is labelled so instead of a bar."""
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    ax_err, ax_time = fig.subplots(1, 2)
    names = list(table.index)
    errors = table["errors"].astype("Float64").fillna(0).astype(float).tolist()
    ax_err.bar(names, errors, color="tab:red")
    ax_err.set_title("Test errors (lower is better)")
    ax_time.bar(names, table["seconds"], color="tab:blue")
    ax_time.set_title("Training time [s]")
    for ax, values in ((ax_err, errors), (ax_time, list(table["seconds"]))):
        for i, (value, status) in enumerate(zip(values, table["status"])):
            ax.text(i, value, f"{value:.0f}" if status != "not trained" else "not trained", ha="center", va="bottom")
        ax.grid(axis="y", alpha=0.3)
    return fig
