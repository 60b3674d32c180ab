"""``python -m mnist_lab report RUN_DIR``: the figures of a finished ``train`` run, written as PNG files."""

import json
from pathlib import Path

from .checkpoint import load_checkpoint
from .data import load_mnist
from .errors import UserError
from .metrics import confusion_matrix
from .plots import plot_confusion_matrix, plot_history, plot_misclassified, plot_samples
from .train import predict_proba

N_PREDICTIONS = 32


def read_run(run_dir):
    """Return ``metrics.json`` of a ``train`` run as a dict; :class:`UserError` when it is not such a folder."""
    run_dir = Path(run_dir)
    path = run_dir / "metrics.json"
    if not (path.is_file() and (run_dir / "model.pt").is_file()):
        raise UserError(f"{run_dir} に metrics.json と model.pt がありません。"
                        "`python -m mnist_lab train --out フォルダ` が書いたフォルダを指定してください。")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path} が壊れています（JSON として読めません）。学習をやり直してください。") from e


def write_report(run_dir, root=None, device="cpu"):
    """Write training_curves, predictions, confusion_matrix and misclassified PNGs into ``run_dir``; return paths."""
    run_dir = Path(run_dir)
    metrics = read_run(run_dir)
    model, _ = load_checkpoint(run_dir / "model.pt", device=device)
    data = load_mnist(root)
    probs = predict_proba(model, data.X_test)
    y_hat = probs.argmax(1)
    figures = {
        "training_curves.png": plot_history(metrics["history"]),
        "predictions.png": plot_samples(data.X_test[:N_PREDICTIONS], data.y_test, y_hat),
        "confusion_matrix.png": plot_confusion_matrix(confusion_matrix(data.y_test, y_hat)),
        "misclassified.png": plot_misclassified(data.X_test, data.y_test, probs),
    }
    paths = []
    for name, fig in figures.items():
        fig.savefig(run_dir / name, dpi=100)
        paths.append(run_dir / name)
    return paths
