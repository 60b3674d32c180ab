"""What a training run records, epoch by epoch: :class:`History`."""

from dataclasses import asdict, dataclass, field, fields


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
        return [r[key] for r in self.records]

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        """Return the History stored as ``d`` (the form of :meth:`to_dict`; missing fields take their defaults)."""
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})
