"""Training: presets, ``fit`` (same code on CPU and GPU), ``evaluate``, ``predict_proba``, ``compare`` and the
``on_epoch_end`` callbacks' TensorBoard logger."""

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .augment import random_affine
from .data import shuffled_batches
from .device import describe_device, try_gpu
from .errors import UserError
from .models import Ensemble, build_model, checked_model_name, combine_scores, count_parameters

SCHEDULES = ("constant", "onecycle", "cosine", "step")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run (saved in every checkpoint and ``metrics.json``)."""

    model: str = "quick"
    epochs: int = 1
    batch_size: int = 128
    lr: float = 0.01  # Adam's learning rate; the peak rate for the one-cycle schedule
    schedule: str = "onecycle"  # constant | onecycle | cosine (to 0 over the run) | step (x0.1 at 1/3 and 2/3)
    seed: int = 0
    val_size: int = 0  # training images held out for validation (0: watch the test set, choose nothing by it)
    augment: bool = False  # random rotations, shifts and scalings of every batch (mnist_lab.augment)
    patience: int = 0  # early stopping: stop after this many epochs without a lower validation loss (0: off)
    ema: float = 0.0  # decay of an exponential moving average of the weights, e.g. 0.999 (0: off)


PRESETS = {
    # The seed document's recipe: Adam, lr 0.01, batch 64, 10 epochs, constant learning rate.
    "seed": TrainConfig(model="seed", epochs=10, batch_size=64, lr=0.01, schedule="constant"),
    # The fastest recipe to >= 99 % we measured on 2 CPU cores (benchmarks/speed.py): one epoch, one cycle.
    "quick": TrainConfig(model="quick", epochs=1, batch_size=128, lr=0.01, schedule="onecycle"),
    # The most accurate (benchmarks/best.py): two deeper CNNs voting, augmentation, one cycle; the epoch kept is
    # chosen on 5,000 held-out training images, never on the test set.
    "best": TrainConfig(model="ensemble", epochs=15, batch_size=128, lr=0.005, schedule="onecycle",
                        val_size=5000, augment=True, patience=0),
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
    checked_model_name(config.model)
    if config.schedule not in SCHEDULES:
        raise UserError(f"学習率スケジュール '{config.schedule}' はありません。{', '.join(SCHEDULES)} のどれかです。")
    for name in ("epochs", "batch_size"):
        if getattr(config, name) < 1:
            raise UserError(f"{name} は 1 以上の整数にしてください（今は {getattr(config, name)}）。")
    if not config.lr > 0:
        raise UserError(f"学習率 lr は正の数にしてください（今は {config.lr}）。")
    if config.val_size < 0:
        raise UserError(f"val_size は 0 以上にしてください（今は {config.val_size}）。")
    if not 0 <= config.ema < 1:
        raise UserError(f"ema は 0 以上 1 未満にしてください（例: 0.999。今は {config.ema}）。")
    if config.patience < 0:
        raise UserError(f"patience は 0 以上にしてください（今は {config.patience}）。")
    if config.patience and not config.val_size:
        raise UserError("早期終了（patience）には検証データが要ります。val_size（--val-size）を 1 以上にしてください"
                        "（テストデータで止めどころを選ぶのは反則です）。")
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
                changes[f.name] = _parse_bool(value) if kind is bool else kind(value)
            except ValueError as e:
                raise UserError(f"環境変数 {ENV_PREFIX + f.name.upper()}={value!r} は {kind.__name__} になりません。") from e
    return checked_config(replace(config, **changes))


def _parse_bool(text):
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


@dataclass
class History:
    """Per-epoch records of a run: ``train_loss, train_accuracy, eval_loss, eval_accuracy, seconds, lr`` (the rate
    of the epoch's last step).

    ``eval_split`` says whether ``eval_*`` was measured on the validation or the test set; ``interrupted`` is true
    when Ctrl+C stopped the run (the epochs finished before it are kept). With a validation split, ``best_epoch`` is
    the epoch of the lowest validation loss, whose weights the model keeps, and ``stopped_early`` says whether
    early stopping ended the run.
    """

    records: list = field(default_factory=list)
    eval_split: str = "test"
    interrupted: bool = False
    best_epoch: int = 0  # with a validation split: the epoch whose weights the model ends with
    stopped_early: bool = False

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
    """The learning-rate schedule, stepped once per batch."""
    total = config.epochs * steps_per_epoch
    lr = torch.optim.lr_scheduler
    if config.schedule == "onecycle":
        return lr.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total)
    if config.schedule == "cosine":
        return lr.CosineAnnealingLR(optimizer, T_max=total)
    if config.schedule == "step":
        return lr.StepLR(optimizer, step_size=max(1, total // 3), gamma=0.1)
    return lr.LambdaLR(optimizer, lambda step: 1.0)


def _train_epoch(model, data, config, optimizer, scheduler, generator, bar, ema=None):
    """Run one epoch of updates; return ``(mean training loss, training accuracy, learning rate of the last step)``."""
    model.train()
    device = _device_of(model)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    for step, (X, y) in enumerate(shuffled_batches(data.X_train, data.y_train, config.batch_size, generator)):
        if config.augment:
            X = random_affine(X, generator)
        with _autocast(device):
            loss, y_hat = training_loss(model, X, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if ema is not None:
            ema.update_parameters(model)
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        loss_sum += loss.detach() * len(y)  # kept on the device: no CPU-GPU sync per step
        correct += (y_hat.argmax(1) == y).sum()
        bar.update(1)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    n = len(data.y_train)
    return loss_sum.item() / n, correct.item() / n, lr


def training_loss(model, X, y):
    """Return ``(loss, y_hat)``: the cross-entropy that training minimises, and the model's class scores.

    A single model's loss is its cross-entropy. An :class:`~mnist_lab.models.Ensemble`'s is the mean of its
    members' own cross-entropies, so each member learns as if it were alone (not from the vote); ``y_hat`` is the
    vote.
    """
    scores = model.member_scores(X) if isinstance(model, Ensemble) else model(X)[None]  # (members, N, 10)
    loss = F.cross_entropy(scores.flatten(0, 1).float(), y.repeat(len(scores)))
    return loss, combine_scores(scores)


def fit(model, data, config, device=None, progress=True, on_epoch_end=None):
    """Train ``model`` on ``data`` (:class:`~mnist_lab.data.MNISTData`) as ``config`` says; return its History.

    The device is CUDA, then MPS, then CPU unless given, and is printed once. After every epoch the model is
    evaluated on the validation split (or the test split when there is none) and ``on_epoch_end(history)`` is
    called, e.g. to redraw a plot. ``config.val_size`` training images are held out for validation unless ``data``
    already has a validation split; with one, the model ends with the weights of its lowest validation loss, and
    ``config.patience`` stops the run early. The test set is never used to choose anything.
    Ctrl+C stops training cleanly: the finished epochs are kept and returned.
    """
    device = torch.device(device) if device is not None else try_gpu()
    print(f"学習デバイス: {describe_device(device)}")
    torch.manual_seed(config.seed)
    model.to(device, memory_format=torch.channels_last)  # NHWC is the faster layout for CPU (oneDNN) and GPU convs
    data = data.with_validation(config.val_size, config.seed).to(device)
    eval_split, X_eval, y_eval = data.eval_split()
    history = History(eval_split=eval_split)
    steps = -(-len(data.y_train) // config.batch_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = _scheduler(optimizer, config, steps)
    generator = torch.Generator().manual_seed(config.seed)
    bar = tqdm(total=config.epochs * steps, desc="学習", unit="batch", disable=not progress)
    best = _BestOnValidation(model) if eval_split == "val" else None
    ema = _ema(model, config.ema)
    watched = ema.module if ema is not None else model  # the weights that are evaluated and kept
    try:
        for epoch in range(1, config.epochs + 1):
            start = time.perf_counter()
            train_loss, train_acc, lr = _train_epoch(model, data, config, optimizer, scheduler, generator, bar, ema)
            eval_loss, eval_acc = evaluate(watched, X_eval, y_eval)
            history.records.append({
                "epoch": epoch, "train_loss": train_loss, "train_accuracy": train_acc,
                "eval_loss": eval_loss, "eval_accuracy": eval_acc,
                "seconds": time.perf_counter() - start, "lr": lr,
            })
            bar.set_postfix(epoch=epoch, **{f"{eval_split}_acc": f"{eval_acc:.4f}"})
            if on_epoch_end is not None:
                on_epoch_end(history)
            if best is not None and best.update(epoch, eval_loss, watched) >= config.patience > 0:
                history.stopped_early = True
                print(f"\n検証の損失が {config.patience} エポック下がらなかったので、{epoch} エポックで止めました。")
                break
    except KeyboardInterrupt:
        history.interrupted = True
        print(f"\n中断しました。終わった {len(history)} エポック分の履歴とモデルはそのまま使えます。")
    finally:
        bar.close()
        if ema is not None:
            model.load_state_dict(ema.module.state_dict())
        if best is not None and best.epoch:
            history.best_epoch = best.restore()
        model.eval()
    return history


def _ema(model, decay):
    """An exponential moving average of ``model``'s weights and BatchNorm statistics, or ``None`` when off."""
    if not decay:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def compare(data, configs, device=None, progress=False):
    """Train one model per ``{name: TrainConfig}`` and return a table: test accuracy, mistakes out of the test set,
    parameters, epochs run and training seconds. Each model's epoch is chosen on validation when it has one; the
    test set is only measured, once, at the end."""
    import pandas as pd

    rows = {}
    for name, config in configs.items():
        model = build_model(config.model, seed=config.seed)
        start = time.perf_counter()
        history = fit(model, data, config, device, progress=progress)
        seconds = time.perf_counter() - start
        _, accuracy = evaluate(model, data.X_test, data.y_test)
        rows[name] = {"model": config.model, "test_accuracy": accuracy,
                      "errors": round((1 - accuracy) * len(data.y_test)), "parameters": count_parameters(model),
                      "epochs": len(history), "seconds": seconds}
    return pd.DataFrame(rows).T.astype({"test_accuracy": float, "errors": int, "parameters": int, "epochs": int,
                                        "seconds": float})


class TensorBoardLogger:
    """An ``on_epoch_end`` callback writing each epoch's losses, accuracies and learning rate for TensorBoard.

    Needs the ``tensorboard`` package; without it, creating the logger raises a :class:`UserError` saying how to
    install it. View with ``tensorboard --logdir DIR``.
    """

    def __init__(self, log_dir):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise UserError("TensorBoard が入っていません。`pip install tensorboard` してから --tensorboard を使うか、"
                            "--tensorboard を外してください。") from e
        self.writer = SummaryWriter(log_dir=str(log_dir))

    def __call__(self, history):
        record = history.records[-1]
        for key in ("loss", "accuracy"):
            self.writer.add_scalars(key, {"train": record[f"train_{key}"], history.eval_split: record[f"eval_{key}"]},
                                    record["epoch"])
        self.writer.add_scalar("lr", record["lr"], record["epoch"])
        self.writer.flush()

    def close(self):
        self.writer.close()


class _BestOnValidation:
    """Remembers the weights of the epoch with the lowest validation loss (a CPU copy) and restores them.

    The loss, not the accuracy: on 5,000 images the accuracy moves in steps of one image (0.02 %), so late epochs
    tie or differ by chance and the first of them would be kept; the mean loss weighs how sure every answer is.
    """

    def __init__(self, model):
        self.model, self.epoch, self.loss, self.state = model, 0, float("inf"), None

    def update(self, epoch, loss, watched):
        """Record this epoch (``watched``: the weights evaluated); return the epochs passed since the best one."""
        if loss < self.loss:
            self.epoch, self.loss = epoch, loss
            self.state = {k: v.detach().to("cpu", copy=True) for k, v in watched.state_dict().items()}
        return epoch - self.epoch

    def restore(self):
        self.model.load_state_dict(self.state)
        return self.epoch
