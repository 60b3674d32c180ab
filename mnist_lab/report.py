"""``mnist-lab report RUN_DIR``: the figures of a finished ``train`` run, written as PNG files beside it."""

import os
import tempfile
from pathlib import Path

from .checkpoint import load_checkpoint
from .data import load_mnist
from .errors import UserError
from .files import atomic_file, os_error
from .inference import predict_proba
from .metrics import confusion_matrix
from .plots import plot_confusion_matrix, plot_history, plot_misclassified, plot_samples
from .runs import FIGURES, clean_stale_files, read_run, record_path, run_lock

N_PREDICTIONS = 32


def write_report(run_dir, root=None, device="cpu"):
    """Write training_curves, predictions, confusion_matrix and misclassified PNGs into ``run_dir``; return paths
    and a list of notes about the run (e.g. that no epoch finished).

    The figures always come from the folder's own model: the folder is held open (so a rename cannot send them
    elsewhere), and they are written under the run's lock (:func:`~mnist_lab.runs.run_lock`, which ``train
    --force`` takes to replace a run) only while the folder and its files are still those that were read; otherwise
    :class:`UserError`. Temporary files that a killed report left are removed first."""
    run_dir = Path(run_dir)
    read_run(run_dir)  # everything about the folder is checked before MNIST is loaded
    folder = open_folder(run_dir)
    try:
        clean_stale_files(run_dir)
        seen = identity(run_dir, folder)
        results, history = read_run(run_dir)
        model, ckpt = load_checkpoint(run_dir / "model.pt", device=device)
        check_same_run(run_dir, results, ckpt)
        check_unchanged(run_dir, folder, seen)
        check_writable(run_dir)
        figures = draw(model, history, load_mnist(root))
        paths = []
        with run_lock(folder):
            for name in FIGURES:  # the names a run folder may hold (runs.is_run): a figure not listed there fails here
                check_unchanged(run_dir, folder, seen)
                with atomic_file(run_dir / name, folder_fd=folder) as f:
                    figures[name].savefig(f, format="png", dpi=100)
                paths.append(run_dir / name)
            check_unchanged(run_dir, folder, seen)  # the paths to print are still where the figures are
    finally:
        os.close(folder)
    return paths, run_notes(results, history)


def check_same_run(run_dir, results, ckpt):
    """:class:`UserError` when the folder's ``model.pt`` was not written with its record (a model copied in from
    another run): the figures would mix two runs. Both files keep the model's name and the training's time."""
    kept = ckpt.get("results") if isinstance(ckpt.get("results"), dict) else {}
    for key, what in (("model", "モデル"), ("train_seconds", "学習時間（秒）")):
        if key in kept and key in results and kept[key] != results[key]:
            raise UserError(f"{run_dir} の model.pt と {record_path(run_dir).name} は別々の学習のものです（{what}が "
                            f"{kept[key]} と {results[key]}）。図が 2 つの学習から混ざるので書きません。train が"
                            "書いたままのフォルダを指定するか、学習をやり直してください。")


def draw(model, history, data):
    """Return the report's figures by file name: the model's predictions on the test set of ``data``."""
    probs = predict_proba(model, data.X_test)
    y_hat = probs.argmax(1)
    return {
        "training_curves.png": plot_history(history),
        "predictions.png": plot_samples(data.X_test[:N_PREDICTIONS], data.y_test[:N_PREDICTIONS], y_hat[:N_PREDICTIONS]),
        "confusion_matrix.png": plot_confusion_matrix(confusion_matrix(data.y_test, y_hat)),
        "misclassified.png": plot_misclassified(data.X_test, data.y_test, probs),
    }


def open_folder(run_dir):
    """Return a descriptor of the folder ``run_dir``: it follows the folder through a rename."""
    try:
        return os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        raise os_error(e, run_dir, "読めません") from e


def identity(run_dir, folder):
    """What tells this run from another: the folder the name leads to, and its model's and record's files."""
    def key(st):
        return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns

    try:
        files = tuple(key(os.stat(name, dir_fd=folder)) for name in ("model.pt", record_path(run_dir).name))
        return key(os.stat(run_dir))[:2], key(os.fstat(folder))[:2], files  # a folder's own time changes as it is written
    except OSError:
        return None


def check_unchanged(run_dir, folder, seen):
    """Raise :class:`UserError` unless ``run_dir`` is still the folder open as ``folder``, with the files ``seen``."""
    now = identity(run_dir, folder)
    if now is None or now != seen or now[0] != now[1]:
        raise UserError(f"report の途中で {run_dir} の学習結果が置き換えられたか、フォルダが動かされたので止めました"
                        "（書きかけのファイルは残していません）。学習や移動が終わってから、もう一度 report を実行してください。")


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
