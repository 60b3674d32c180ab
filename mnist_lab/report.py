"""``mnist-lab report RUN_DIR``: the figures of a finished ``train`` run, written as PNG files beside it."""

import tempfile
from pathlib import Path

from .checkpoint import load_checkpoint
from .data import load_mnist
from .files import atomic_file, os_error
from .inference import predict_proba
from .metrics import confusion_matrix
from .plots import plot_confusion_matrix, plot_history, plot_misclassified, plot_samples
from .runs import FIGURES, read_run

N_PREDICTIONS = 32


def write_report(run_dir, root=None, device="cpu"):
    """Write training_curves, predictions, confusion_matrix and misclassified PNGs into ``run_dir``; return paths
    and a list of notes about the run (e.g. that no epoch finished)."""
    run_dir = Path(run_dir)
    results, history = read_run(run_dir)  # everything about the folder is checked before MNIST is loaded
    model, _ = load_checkpoint(run_dir / "model.pt", device=device)
    check_writable(run_dir)
    data = load_mnist(root)
    probs = predict_proba(model, data.X_test)
    y_hat = probs.argmax(1)
    figures = {
        "training_curves.png": plot_history(history),
        "predictions.png": plot_samples(data.X_test[:N_PREDICTIONS], data.y_test[:N_PREDICTIONS], y_hat[:N_PREDICTIONS]),
        "confusion_matrix.png": plot_confusion_matrix(confusion_matrix(data.y_test, y_hat)),
        "misclassified.png": plot_misclassified(data.X_test, data.y_test, probs),
    }
    paths = []
    for name in FIGURES:  # the names a run folder may hold (runs.is_run): a figure not listed there fails here
        with atomic_file(run_dir / name) as f:
            figures[name].savefig(f, format="png", dpi=100)
        paths.append(run_dir / name)
    return paths, run_notes(results, history)


def check_writable(folder):
    """Raise :class:`~mnist_lab.errors.UserError` unless a file can be made in ``folder``."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise os_error(e, folder, "書けません") from e


def run_notes(results, history):
    """Return one Japanese line for each thing a reader of the run's figures must know."""
    notes = []
    if not len(history):
        notes.append("この学習は 1 エポックも終わる前に中断されました。学習曲線は空で、モデルはエポック途中の重みです。")
    elif history.interrupted:
        notes.append(f"この学習は中断されました。モデルは {history.kept_epoch} エポック目の重みです。")
    if results.get("dry_run"):
        notes.append("これは --dry-run（1 バッチだけ）の結果です。正解率に意味はありません。")
    return notes
