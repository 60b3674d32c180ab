"""Training: presets, ``fit`` (same code on CPU and GPU), ``evaluate`` and ``predict_proba``."""

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .data import shuffled_batches
from .device import describe_device, try_gpu
from .errors import UserError
from .models import MODELS

SCHEDULES = ("constant", "onecycle")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run (saved in every checkpoint and ``metrics.json``)."""

    model: str = "quick"
    epochs: int = 1
    batch_size: int = 128
    lr: float = 0.01  # Adam's learning rate; the peak rate for the one-cycle schedule
    schedule: str = "onecycle"
    seed: int = 0
    val_size: int = 0  # training images held out for validation (0: watch the test set, choose nothing by it)


PRESETS = {
    # The seed document's recipe: Adam, lr 0.01, batch 64, 10 epochs, constant learning rate.
    "seed": TrainConfig(model="seed", epochs=10, batch_size=64, lr=0.01, schedule="constant"),
    # The fastest recipe to >= 99 % we measured on 2 CPU cores (benchmarks/speed.py): one epoch, one cycle.
    "quick": TrainConfig(model="quick", epochs=1, batch_size=128, lr=0.01, schedule="onecycle"),
}


def make_config(preset="quick", **overrides):
    """Return the preset's :class:`TrainConfig` with the overrides that are not ``None`` applied and checked.

    >>> make_config("seed", epochs=2).epochs
    2
    """
    if preset not in PRESETS:
        raise UserError(f"プリセット '{preset}' はありません。{', '.join(PRESETS)} のどれかを指定してください。")
    unknown = set(overrides) - {f.name for f in fields(TrainConfig)}
    if unknown:
        raise TypeError(f"unknown TrainConfig fields: {sorted(unknown)}")
    return checked_config(replace(PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}))


def checked_config(config):
    """Return ``config`` unchanged if every value is usable, else raise :class:`UserError` saying which is not."""
    if config.model not in MODELS:
        raise UserError(f"モデル '{config.model}' はありません。{', '.join(MODELS)} のどれかを指定してください。")
    if config.schedule not in SCHEDULES:
        raise UserError(f"学習率スケジュール '{config.schedule}' はありません。{', '.join(SCHEDULES)} のどれかです。")
    for name in ("epochs", "batch_size"):
        if getattr(config, name) < 1:
            raise UserError(f"{name} は 1 以上の整数にしてください（今は {getattr(config, name)}）。")
    if not config.lr > 0:
        raise UserError(f"学習率 lr は正の数にしてください（今は {config.lr}）。")
    if config.val_size < 0:
        raise UserError(f"val_size は 0 以上にしてください（今は {config.val_size}）。")
    return config


ENV_PREFIX = "MNIST_LAB_"


def with_env_overrides(config, environ=None):
    """Return ``config`` with the fields set as ``MNIST_LAB_<FIELD>`` in the environment (e.g. ``MNIST_LAB_EPOCHS=1``).

    This lets CI run the notebook fast without editing it. Values are checked like :func:`make_config`'s.
    """
    environ = os.environ if environ is None else environ
    changes = {}
    for f in fields(TrainConfig):
        value = environ.get(ENV_PREFIX + f.name.upper())
        if value is not None:
            kind = type(getattr(config, f.name))
            try:
                changes[f.name] = kind(value)
            except ValueError as e:
                raise UserError(f"環境変数 {ENV_PREFIX + f.name.upper()}={value!r} は {kind.__name__} になりません。") from e
    return checked_config(replace(config, **changes))


@dataclass
class History:
    """Per-epoch records of a run: ``train_loss, train_accuracy, eval_loss, eval_accuracy, seconds, lr``.

    ``eval_split`` says whether ``eval_*`` was measured on the validation or the test set; ``interrupted`` is true
    when Ctrl+C stopped the run (the epochs finished before it are kept).
    """

    records: list = field(default_factory=list)
    eval_split: str = "test"
    interrupted: bool = False

    def __len__(self):
        return len(self.records)

    def column(self, key):
        """Return one quantity over the epochs, e.g. ``history.column("eval_accuracy")``."""
        return [r[key] for r in self.records]

    def to_dict(self):
        return asdict(self)

    def save(self, path):
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def from_dict(cls, d):
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


def _autocast(device):
    """Mixed precision (bfloat16) on CUDA only; full float32 everywhere else."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _device_of(model):
    return next(model.parameters()).device


def evaluate(model, X, y, batch_size=1000):
    """Return ``(mean cross-entropy loss, accuracy)`` of ``model`` on ``X, y`` (sums counted, divided once)."""
    device = _device_of(model)
    was_training = model.training
    model.eval()
    loss_sum = correct = 0.0
    with torch.no_grad(), _autocast(device):
        for X_b, y_b in zip(X.to(device).split(batch_size), y.to(device).split(batch_size)):
            y_hat = model(X_b)
            loss_sum += F.cross_entropy(y_hat.float(), y_b, reduction="sum").item()
            correct += (y_hat.argmax(1) == y_b).sum().item()
    model.train(was_training)
    return loss_sum / len(y), correct / len(y)


def predict_proba(model, X, batch_size=1000):
    """Return the class probabilities ``(N, 10)`` of ``model`` for images ``X``, as a CPU float tensor."""
    device = _device_of(model)
    was_training = model.training
    model.eval()
    with torch.no_grad(), _autocast(device):
        out = [F.softmax(model(X_b.to(device)).float(), dim=1).cpu() for X_b in X.split(batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, 10)


def _scheduler(optimizer, config, steps_per_epoch):
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr,
                                                   total_steps=config.epochs * steps_per_epoch)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def _train_epoch(model, data, config, optimizer, scheduler, generator, bar):
    """Run one epoch of updates; return ``(mean training loss, training accuracy)`` over the epoch."""
    model.train()
    device = _device_of(model)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    for step, (X, y) in enumerate(shuffled_batches(data.X_train, data.y_train, config.batch_size, generator)):
        with _autocast(device):
            y_hat = model(X)
            loss = F.cross_entropy(y_hat.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        loss_sum += loss.detach() * len(y)  # kept on the device: no CPU-GPU sync per step
        correct += (y_hat.argmax(1) == y).sum()
        bar.update(1)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    n = len(data.y_train)
    return loss_sum.item() / n, correct.item() / n


def fit(model, data, config, device=None, progress=True, on_epoch_end=None):
    """Train ``model`` on ``data`` (:class:`~mnist_lab.data.MNISTData`) as ``config`` says; return its History.

    The device is CUDA, then MPS, then CPU unless given, and is printed once. After every epoch the model is
    evaluated on the validation split (or the test split when there is none) and ``on_epoch_end(history)`` is
    called, e.g. to redraw a plot. Ctrl+C stops training cleanly: the finished epochs are kept and returned.
    """
    device = torch.device(device) if device is not None else try_gpu()
    print(f"学習デバイス: {describe_device(device)}")
    torch.manual_seed(config.seed)
    model.to(device, memory_format=torch.channels_last)  # NHWC is the faster layout for CPU (oneDNN) and GPU convs
    data = data.to(device)
    eval_split, X_eval, y_eval = data.eval_split()
    history = History(eval_split=eval_split)
    steps = -(-len(data.y_train) // config.batch_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = _scheduler(optimizer, config, steps)
    generator = torch.Generator().manual_seed(config.seed)
    bar = tqdm(total=config.epochs * steps, desc="学習", unit="batch", disable=not progress)
    try:
        for epoch in range(1, config.epochs + 1):
            start = time.perf_counter()
            train_loss, train_acc = _train_epoch(model, data, config, optimizer, scheduler, generator, bar)
            eval_loss, eval_acc = evaluate(model, X_eval, y_eval)
            history.records.append({
                "epoch": epoch, "train_loss": train_loss, "train_accuracy": train_acc,
                "eval_loss": eval_loss, "eval_accuracy": eval_acc,
                "seconds": time.perf_counter() - start, "lr": optimizer.param_groups[0]["lr"],
            })
            bar.set_postfix(epoch=epoch, **{f"{eval_split}_acc": f"{eval_acc:.4f}"})
            if on_epoch_end is not None:
                on_epoch_end(history)
    except KeyboardInterrupt:
        history.interrupted = True
        print(f"\n中断しました。終わった {len(history)} エポック分の履歴とモデルはそのまま使えます。")
    finally:
        bar.close()
        model.eval()
    return history
