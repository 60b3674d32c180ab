"""The run folder that ``train`` writes and ``evaluate``/``report`` read: ``model.pt`` + ``metrics.json``.

``metrics.json`` holds the run's figures, its config and its :class:`~mnist_lab.history.History`, as strict JSON
(a NaN is written as ``null``). A run folder appears whole or not at all: :func:`new_run` checks the place
before training, the files are written into a hidden folder beside it, and that folder is renamed into place at
the end. An existing run is replaced only when asked (``force``): the old one is renamed aside, the new one moved
in, the old one removed; a crash in between leaves the old run whole under its hidden name, and
:func:`read_run` says where.
"""

import contextlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

from .checkpoint import save_checkpoint
from .errors import UserError
from .files import atomic_file, fsync_dir, os_error
from .history import History

RUN_FILES = ("model.pt", "metrics.json")
FIGURES = ("training_curves.png", "predictions.png", "confusion_matrix.png", "misclassified.png")


def is_run(folder):
    """Whether ``folder`` holds a run (its two files, maybe with report figures) and nothing else."""
    names = {p.name for p in Path(folder).iterdir()}
    return set(RUN_FILES) <= names <= set(RUN_FILES) | set(FIGURES)


def check_out_dir(out, force=False):
    """Raise :class:`UserError` unless a run may be written at ``out`` (checked before any training)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} はファイルです。結果を書くフォルダの名前を指定してください。")
    try:
        entries = list(out.iterdir()) if out.is_dir() else []
    except OSError as e:
        raise os_error(e, out, "読めません") from e
    if entries and not is_run(out):
        raise UserError(f"{out} には学習結果ではないファイルがあるので使いません。新しいフォルダの名前を --out に指定してください。")
    if entries and not force:
        raise UserError(f"{out} には前の学習結果があります。残すなら別の --out を指定し、上書きするなら --force を付けてください。")


@contextlib.contextmanager
def new_run(out, force=False):
    """Check ``out``, then yield a hidden folder beside it to write the run into; when the block ends without an
    error, that folder becomes ``out`` (replacing an old run only with ``force``); on any error it is removed."""
    out = Path(out)
    check_out_dir(out, force)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as e:
        raise os_error(e, out, "作れません") from e
    try:
        yield staging
        _move_into_place(staging, out, force)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _move_into_place(staging, out, force):
    check_out_dir(out, force)  # again: something may have appeared there while training
    fsync_dir(staging)
    old = None
    try:
        if out.is_dir() and any(out.iterdir()):
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.replaced-", dir=out.parent))
            os.replace(out, old / out.name)
        elif out.is_dir():
            out.rmdir()
        os.replace(staging, out)
        fsync_dir(out.parent)
    except OSError as e:
        raise os_error(e, out, "書けません") from e
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def strict_json(value):
    """Return ``value`` with every NaN or infinity replaced by ``None``, so that ``json.dumps`` writes strict JSON.

    >>> strict_json({"loss": float("nan"), "records": [1.0, float("inf")]})
    {'loss': None, 'records': [1.0, None]}
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def write_run(folder, model, config, metrics, history):
    """Write ``model.pt`` and ``metrics.json`` (``metrics`` + ``config`` + ``history``) into ``folder``."""
    folder = Path(folder)
    metrics = strict_json({**metrics, "config": dict(config)})
    save_checkpoint(folder / "model.pt", model, config, metrics)
    text = json.dumps({**metrics, "history": strict_json(history.to_dict())}, indent=2, allow_nan=False,
                      ensure_ascii=False)
    with atomic_file(folder / "metrics.json", "w") as f:
        f.write(text + "\n")


def read_run(run_dir):
    """Return ``(metrics dict, History)`` of a run folder; :class:`UserError` saying what is wrong otherwise."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} というフォルダがありません{_left_aside(run_dir)}。train の --out で指定したフォルダを指定してください。")
    missing = [name for name in RUN_FILES if not (run_dir / name).is_file()]
    if missing:
        raise UserError(f"{run_dir} に {'、'.join(missing)} がありません{_left_aside(run_dir)}。"
                        "`mnist-lab train --out フォルダ` が書いたフォルダを指定してください。")
    path = run_dir / "metrics.json"
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise os_error(e, path, "読めません") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path} が壊れています（JSON として読めません）。学習をやり直してください。") from e
    if not isinstance(metrics, dict) or not isinstance(metrics.get("history"), dict):
        raise UserError(f"{path} に学習の履歴（history）がありません（古い形式か壊れています）。学習をやり直してください。")
    return metrics, History.from_dict(metrics["history"])


def _left_aside(run_dir):
    """A note naming the hidden copy that an interrupted replacement left beside ``run_dir``, if there is one."""
    copies = sorted(run_dir.parent.glob(f".{run_dir.name}.replaced-*/{run_dir.name}"))
    return f"（置き換えの途中で止まったようです。前の結果は {copies[-1]} に残っています）" if copies else ""
