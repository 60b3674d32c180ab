"""The extras of a training run, as callbacks that :func:`mnist_lab.train.fit` calls at fixed points.

The loop itself only trains and evaluates; everything else a run may do lives here: the progress bar, stopping on
a NaN loss, averaging the weights (EMA), keeping the best epoch's weights and early stopping, TensorBoard logs and
live training curves. Each hook receives the model; hooks a callback does not need are inherited no-ops.
"""

import math
import numbers
import os
import time

import torch
from tqdm.auto import tqdm

from .errors import TrainingDiverged, UserError, short


class Callback:
    """The hooks :func:`~mnist_lab.train.fit` calls; override the ones you need."""

    def on_train_begin(self, model, history, epochs, steps_per_epoch):
        """Once, before the first batch: the run will make ``epochs`` x ``steps_per_epoch`` steps and record them in
        ``history`` (still empty)."""

    def on_step(self, model, loss, correct, size):
        """After every optimizer step: the batch's loss (a tensor), how many of its ``size`` digits the model got
        right (both tensors: reading them waits for the device; generated non-digits are not counted)."""

    def on_epoch_begin(self, model):
        """Before the first batch of each epoch."""

    def before_evaluation(self, model):
        """After an epoch's last step, before the model is evaluated."""

    def on_epoch_end(self, model, history):
        """After the epoch's record is appended to ``history``; return ``True`` to stop training."""
        return False

    def on_train_end(self, model, history):
        """Once at the end, also after Ctrl+C or an error."""


def standard_callbacks(model, config, eval_split, steps_per_epoch, progress=True):
    """Return the callbacks every run gets, in the order they must run, as ``config`` asks for them."""
    callbacks = [ProgressBar(config.epochs * steps_per_epoch, eval_split, disable=not progress),
                 StopOnNonFiniteLoss(config.lr)]
    if config.ema:
        callbacks.append(AverageWeights(model, config.ema))
    callbacks.append(KeepWeights(by_validation=eval_split == "val", patience=config.patience))
    return callbacks


class ProgressBar(Callback):
    """A tqdm bar over all the steps of the run, labelled with the epoch, showing the loss and the last epoch's
    accuracy."""

    def __init__(self, total, eval_split, disable=False):
        self.bar = tqdm(total=total, desc="学習", unit="batch", disable=disable, dynamic_ncols=True)
        self.eval_split, self.epoch, self.epochs = eval_split, 0, 0
        parts = getattr(getattr(self.bar, "container", None), "children", ())
        if len(parts) == 3:  # Jupyter's bar: label on one line (it was squeezed to a character a line), bar visible
            label, bar, _ = parts
            label.layout.flex, label.layout.min_width = "0 0 auto", "max-content"
            bar.layout.min_width = "35%"

    def on_train_begin(self, model, history, epochs, steps_per_epoch):
        self.epochs = epochs

    def on_epoch_begin(self, model):
        self.epoch += 1
        self.bar.set_description(f"エポック {self.epoch}/{self.epochs}", refresh=False)

    def on_step(self, model, loss, correct, size):
        self.bar.update(1)
        if self.bar.n % 50 == 1:
            self.bar.set_postfix(loss=f"{loss.item():.3f}")

    def on_epoch_end(self, model, history):
        record = history.records[-1]
        self.bar.set_postfix(epoch=record["epoch"], **{f"{self.eval_split}_acc": f"{record['eval_accuracy']:.4f}"})

    def on_train_end(self, model, history):
        self.bar.close()


class StopOnNonFiniteLoss(Callback):
    """Stops the run at the first step whose loss is NaN or infinite (:class:`TrainingDiverged` names the step)."""

    def __init__(self, lr):
        self.lr, self.step = lr, 0

    def on_step(self, model, loss, correct, size):
        self.step += 1
        loss = loss.detach()
        if not torch.isfinite(loss).item():
            raise TrainingDiverged(self.step, loss.item(), self.lr)

    def on_epoch_end(self, model, history):
        loss = history.records[-1]["eval_loss"]
        if not math.isfinite(loss):  # the epoch's last update itself broke the weights: no next loss to see it
            raise TrainingDiverged(self.step, loss, self.lr)


def _ema_warming_up(decay):
    """The EMA update with a warm-up: after ``n`` updates the decay is ``min(decay, (1 + n) / (10 + n))``, so the
    average soon forgets the untrained starting weights (a fixed 0.999 would still hold 63 % of them after one
    epoch of 469 steps: quick with --ema 0.999 fell from 99 % to 92 %)."""
    @torch.no_grad()
    def update(averaged, current, n_averaged):
        n = int(n_averaged)
        weight = 1 - min(decay, (1 + n) / (10 + n))
        if torch.is_floating_point(averaged[0]) or torch.is_complex(averaged[0]):
            torch._foreach_lerp_(averaged, current, weight)
        else:  # BatchNorm's count of batches (integers): as PyTorch's own EMA does
            for a, c in zip(averaged, current, strict=True):
                a.copy_(a * (1 - weight) + c * weight)
    return update


class AverageWeights(Callback):
    """EMA: keeps an exponential moving average of the weights (and BatchNorm statistics); the model is evaluated,
    kept and returned with the averaged weights, and trains on with its own between evaluations."""

    def __init__(self, model, decay):
        from torch.optim.swa_utils import AveragedModel

        if isinstance(decay, bool) or not isinstance(decay, numbers.Real) or not 0 <= decay < 1:
            raise UserError(f"AverageWeights の decay は 0 以上 1 未満の数にしてください（例: 0.999。今は {short(decay)}）。")
        if not isinstance(model, torch.nn.Module):
            raise UserError(f"AverageWeights の最初には学習するモデルを渡してください（今は {type(model).__name__}）。")

        self.average = AveragedModel(model, multi_avg_fn=_ema_warming_up(decay), use_buffers=True)
        self.own = None

    def on_step(self, model, loss, correct, size):
        self.average.update_parameters(model)

    def before_evaluation(self, model):
        self.own = _copy_of_weights(model)
        model.load_state_dict(self.average.module.state_dict())

    def on_epoch_begin(self, model):
        if self.own is not None:
            model.load_state_dict(self.own)


class KeepWeights(Callback):
    """Keeps a CPU copy of the weights to end with and puts them back when training ends, however it ends.

    Without a validation split that is the last finished epoch's weights, so Ctrl+C in the middle of an epoch
    leaves the model as it was at the end of the epoch before. With one (``by_validation``) it is the epoch with the
    lowest validation loss: not the accuracy, which on 5,000 images moves in steps of one image and ties; and
    ``patience`` > 0 stops the run after that many epochs without a lower loss.
    """

    def __init__(self, by_validation=False, patience=0):
        self.by_validation, self.patience = by_validation, patience
        self.epoch, self.loss, self.weights = 0, float("inf"), None

    def on_epoch_end(self, model, history):
        record = history.records[-1]
        if not self.by_validation or record["eval_loss"] < self.loss:
            self.epoch, self.loss, self.weights = record["epoch"], record["eval_loss"], _copy_of_weights(model)
        history.kept_epoch = self.epoch
        if self.by_validation:
            history.best_epoch = self.epoch
        if self.patience and record["epoch"] - self.epoch >= self.patience:
            history.stopped_early = True
            print(f"\n検証の損失が {self.patience} エポック下がらなかったので、{record['epoch']} エポックで止めました。")
            return True
        return False

    def on_train_end(self, model, history):
        if self.weights is not None:
            model.load_state_dict(self.weights)


def _copy_of_weights(model):
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


class TensorBoardLogger(Callback):
    """Writes each epoch's losses, accuracies and learning rate for TensorBoard (``tensorboard --logdir DIR``).

    Needs the ``tensorboard`` package; without it, or when ``log_dir`` cannot be a folder, creating the logger raises
    a :class:`UserError` saying what to do.
    """

    def __init__(self, log_dir):
        if not isinstance(log_dir, (str, os.PathLike)) or not str(log_dir).strip():
            raise UserError(f"TensorBoardLogger にはログを書くフォルダの名前を渡してください（例: \"runs/tb\"。今は {short(log_dir)}）。")
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise UserError("TensorBoard が入っていません。`pip install tensorboard` してから --tensorboard を使うか、"
                            "--tensorboard を外してください。") from e
        try:
            self.writer = SummaryWriter(log_dir=str(log_dir))
        except OSError as e:
            raise UserError(f"TensorBoard のログを {log_dir} に書けません（{type(e).__name__}）。"
                            "書き込めるフォルダの名前を --tensorboard に指定してください。") from e

    def on_epoch_end(self, model, history):
        record = history.records[-1]
        for key in ("loss", "accuracy"):
            self.writer.add_scalars(key, {"train": record[f"train_{key}"], history.eval_split: record[f"eval_{key}"]},
                                    record["epoch"])
        self.writer.add_scalar("lr", record["lr"], record["epoch"])
        self.writer.flush()

    def on_train_end(self, model, history):
        self.writer.close()


class LiveCurves(Callback):
    """Draws the training curves while the model trains, in place in Jupyter: a point of training loss and accuracy
    every ``1 / points_per_epoch`` of an epoch (the mean over the batches since the point before), and the
    evaluation after every epoch. The figure is redrawn at every epoch's end and in between at most every
    ``seconds``, or every four drawing times on a slow machine: drawing never takes more than a fifth of the run.
    Outside Jupyter it prints one line per epoch instead.

    ``points``: the training points so far, ``{"epoch": fraction of the run in epochs, "train_loss": ...,
    "train_accuracy": ...}``.

    Introduced in the lesson: main.ipynb §5.
    """

    def __init__(self, points_per_epoch=20, seconds=2.0):
        for name, value, low in (("points_per_epoch", points_per_epoch, 1), ("seconds", seconds, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value < float("inf"):
                raise UserError(f"LiveCurves の {name} は {low} 以上の数にしてください（今は {short(value)}）。例: LiveCurves()")
        self.points_per_epoch, self.seconds = int(points_per_epoch), seconds
        self.handle, self.history, self.points, self.epochs, self.steps_per_epoch = None, None, [], 0, 1
        self.every, self.step, self.next_draw, self._sums = 1, 0, 0.0, [0.0, 0, 0]

    def on_train_begin(self, model, history, epochs, steps_per_epoch):
        self.history, self.epochs, self.steps_per_epoch = history, epochs, steps_per_epoch
        self.every = max(1, steps_per_epoch // self.points_per_epoch)
        self.handle, self.points, self.step, self._sums = None, [], 0, [0.0, 0, 0]
        if _in_jupyter():
            self._draw()  # the empty axes at once: the student sees where the curves will go

    def on_epoch_begin(self, model):
        self._sums = [0.0, 0, 0]  # a point never mixes two epochs

    def on_step(self, model, loss, correct, size):
        self.step += 1
        sums = self._sums
        sums[0] = sums[0] + loss.detach().float() * size  # summed on the device: read once per point
        sums[1] = sums[1] + correct
        sums[2] += size
        at_epoch_end = self.step % self.steps_per_epoch == 0
        if self.step % self.every == 0 or at_epoch_end:
            n = int(sums[2])
            self.points.append({"epoch": self.step / self.steps_per_epoch, "train_loss": float(sums[0]) / n,
                                "train_accuracy": int(sums[1]) / n})
            self._sums = [0.0, 0, 0]
            if not at_epoch_end and time.monotonic() >= self.next_draw and _in_jupyter():
                self._draw()

    def on_epoch_end(self, model, history):
        if not _in_jupyter():
            r = history.records[-1]
            print(f"epoch {r['epoch']}: train loss {r['train_loss']:.4f}, {history.eval_split} accuracy "
                  f"{r['eval_accuracy']:.4f}")
            return False
        self._draw()
        return False

    def on_train_end(self, model, history):
        if _in_jupyter() and self.handle is not None:
            self._draw()  # the points since the last drawing (after ■ too)

    def _draw(self):
        from IPython.display import display

        from .plots import plot_history

        start = time.monotonic()
        figure = plot_history(self.history, points=self.points, epochs=self.epochs)
        if self.handle is None:
            self.handle = display(figure, display_id=True)
        else:
            self.handle.update(figure)
        now = time.monotonic()
        self.next_draw = now + max(self.seconds, 4 * (now - start))


def _in_jupyter():
    """Whether the code runs in a Jupyter kernel (which can show figures and update them in place)."""
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")
