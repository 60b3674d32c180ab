"""What a training run records, epoch by epoch: :class:`History`."""

import math
from dataclasses import asdict, dataclass, field, fields, replace

from .errors import UserError
from .recipes import MAX_EPOCHS, MAX_LR


@dataclass
class History:
    """Per-epoch records of a run: ``epoch, train_loss, train_accuracy, eval_loss, eval_accuracy, seconds, lr``
    (``lr``: the rate of the epoch's last step).

    ``eval_split`` says whether ``eval_*`` was measured on the validation or the test set. ``kept_epoch`` is the
    finished epoch whose weights the model ended with (0: no epoch finished, the model holds the weights of the
    moment training stopped). With a validation split ``best_epoch`` is the epoch of the lowest validation loss,
    which is the one kept. ``interrupted``: Ctrl+C stopped the run; ``stopped_early``: early stopping did.
    """

    records: list = field(default_factory=list)
    eval_split: str = "test"
    interrupted: bool = False
    best_epoch: int = 0
    stopped_early: bool = False
    kept_epoch: int = 0

    def __len__(self):
        return len(self.records)

    def column(self, key):
        """Return one quantity over the epochs, e.g. ``history.column("eval_accuracy")``."""
        names = sorted({name for r in self.records for name in r})
        if self.records and key not in names:
            raise UserError(f"学習の履歴に {key!r} はありません。あるのは {', '.join(names)} です。")
        return [r.get(key) for r in self.records]

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d, strict=False):
        """Return the History stored as ``d`` (the form of :meth:`to_dict`; missing fields take their defaults).
        With ``strict``, every record is checked first (:func:`checked_history`)."""
        if strict:
            return checked_history(d)
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


class HistoryError(UserError, ValueError):
    """A history that no training wrote (a hand-edited ``results.json``...), explained in one Japanese line."""


REQUIRED = ("epoch", "train_loss", "train_accuracy", "eval_loss", "eval_accuracy")
RANGES = {"train_loss": (0, 3.5e38), "eval_loss": (0, 3.5e38), "train_accuracy": (0, 1), "eval_accuracy": (0, 1),
          "seconds": (0, 1e9), "lr": (0, MAX_LR)}  # a loss is a float32: larger is no loss at all


def checked_history(history):
    """Return ``history`` (a :class:`History` or its dict form) with records that can be read and drawn: ``null``
    values (NaN written as JSON) become NaN; :class:`HistoryError` naming the first thing that is wrong."""
    if isinstance(history, dict) and "records" not in history:  # a run's whole results.json, or {}
        raise HistoryError("学習の履歴（records）が入っていません。results.json を読んだものなら、その中の "
                           "results[\"history\"] を渡してください")
    if isinstance(history, dict):
        history = History.from_dict(history)
    if not isinstance(history, History):
        raise HistoryError(f"History（fit が返すもの）を渡してください（今は {type(history).__name__}）")
    _check_fields(history)
    records, last = [], 0
    for i, record in enumerate(history.records):
        record = _checked_record(i, record)
        if record["epoch"] <= last:
            raise HistoryError(f"records[{i}] の epoch {record['epoch']} が前の記録より後になっていません")
        last = record["epoch"]
        records.append(record)
    return replace(history, records=records)


def _check_fields(history):
    if not isinstance(history.records, list) or len(history.records) > MAX_EPOCHS:
        raise HistoryError("records が記録の並び（リスト）ではありません")
    if not isinstance(history.eval_split, str) or not 0 < len(history.eval_split) <= 20:
        raise HistoryError(f"eval_split {history.eval_split!r} は 'val' か 'test' のはずです"[:200])
    for name in ("interrupted", "stopped_early"):
        if not isinstance(getattr(history, name), bool):
            raise HistoryError(f"{name} が true/false ではありません")
    for name in ("best_epoch", "kept_epoch"):
        value = getattr(history, name)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_EPOCHS:
            raise HistoryError(f"{name} が 0 以上の整数ではありません")


def _checked_record(i, record):
    if not isinstance(record, dict):
        raise HistoryError(f"records[{i}] が記録（キーと値の組）ではありません")
    missing = [key for key in REQUIRED if key not in record]
    if missing:
        raise HistoryError(f"records[{i}] に {missing[0]} がありません")
    epoch = record["epoch"]
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 1 <= epoch <= MAX_EPOCHS:
        raise HistoryError(f"records[{i}] の epoch が 1〜{MAX_EPOCHS} の整数ではありません")
    record = dict(record)
    for key, (low, high) in RANGES.items():
        value = record.get(key)
        if value is None or isinstance(value, float) and not math.isfinite(value):
            record[key] = float("nan")  # NaN is written as null; a missing seconds or lr is simply unknown
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise HistoryError(f"records[{i}] の {key} が {low}〜{high:g} の数ではありません"[:200])
    return record
