"""The training loop: :func:`fit` runs :func:`train_epoch` once per epoch and evaluates the model after each.

The heart of it is the step the lesson writes by hand (section 5), line for line::

    optimizer.zero_grad()                 # forget the previous batch's gradients
    scores = model(X)                     # class scores (N, 10)
    loss = F.cross_entropy(scores, y)     # how wrong they are
    loss.backward()                       # gradients of the loss for every weight
    optimizer.step()                      # move every weight a little against its gradient

Everything else a run can do (progress bar, stop on NaN, EMA, best epoch and early stopping, TensorBoard, live
curves) is a callback from :mod:`mnist_lab.callbacks`; recipes come from :mod:`mnist_lab.recipes`.

Where the computing happens: ``fit`` moves the model to ``device`` (default :func:`~mnist_lab.device.try_gpu`:
CUDA, then MPS, then CPU) and the data to the model's device; from then on everything runs where the model's
weights are, as everywhere in :mod:`mnist_lab`.
"""

import time

import torch
import torch.nn.functional as F

from .augment import like_drawings, random_affine
from .callbacks import standard_callbacks
from .data import shuffled_batches
from .device import describe_device, try_gpu
from .history import History
from .inference import evaluate, mixed_precision
from .models import Ensemble, combine_scores


def fit(model, data, config, device=None, callbacks=(), progress=True):
    """Train ``model`` on ``data`` (:class:`~mnist_lab.data.MNISTData`) as ``config`` says; return its History.

    After every epoch the model is evaluated on the validation split (or the test split when there is none; the
    test set never chooses anything) and every callback's ``on_epoch_end`` runs. Ctrl+C stops training cleanly:
    the model is put back to the last finished epoch's weights (or the best one on validation).
    """
    device = torch.device(device) if device is not None else try_gpu()
    print(f"学習デバイス: {describe_device(device)}")
    torch.manual_seed(config.seed)  # dropout
    model.to(device, memory_format=torch.channels_last)  # NHWC is the faster layout for CPU (oneDNN) and GPU convs
    data = data.with_validation(config.val_size, config.seed).to(device)
    eval_split, X_eval, y_eval = data.eval_split()
    steps = -(-len(data.y_train) // config.batch_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = make_scheduler(optimizer, config, steps)
    callbacks = standard_callbacks(model, config, eval_split, steps, progress) + list(callbacks)
    generator = torch.Generator().manual_seed(config.seed)  # batch order and augmentation, the same on every device
    history = History(eval_split=eval_split)
    try:
        _call(callbacks, "on_train_begin", model, history, config.epochs, steps)
        for epoch in range(1, config.epochs + 1):
            start = time.perf_counter()
            batches = training_batches(data.X_train, data.y_train, config, generator)
            train_loss, train_accuracy, lr = train_epoch(model, batches, optimizer, scheduler, callbacks)
            _call(callbacks, "before_evaluation", model)
            eval_loss, eval_accuracy = evaluate(model, X_eval, y_eval)
            history.records.append({"epoch": epoch, "train_loss": train_loss, "train_accuracy": train_accuracy,
                                    "eval_loss": eval_loss, "eval_accuracy": eval_accuracy,
                                    "seconds": time.perf_counter() - start, "lr": lr})
            if any([c.on_epoch_end(model, history) for c in callbacks]):  # noqa: C419 - a list: every callback runs
                break
    except KeyboardInterrupt:
        history.interrupted = True
    finally:
        _call(callbacks, "on_train_end", model, history)
        model.eval()
    if history.interrupted:
        print("\n" + interruption_note(history))
    return history


def train_epoch(model, batches, optimizer, scheduler=None, callbacks=()):
    """Make one optimizer step per batch; return ``(mean training loss, training accuracy, last step's rate)``."""
    _call(callbacks, "on_epoch_begin", model)
    model.train()
    loss_sum = correct = n = 0
    for X, y in batches:
        optimizer.zero_grad()
        with mixed_precision(X.device):  # bfloat16 on CUDA, nothing on a CPU
            loss, scores = training_loss(model, X, y)
        loss.backward()
        optimizer.step()
        lr = optimizer.param_groups[0]["lr"]
        if scheduler is not None:
            scheduler.step()
        right = (scores.argmax(1) == y).sum()
        _call(callbacks, "on_step", model, loss, right, len(y))
        loss_sum += loss.detach() * len(y)  # kept on the device: no CPU-GPU sync per step
        correct += right
        n += len(y)
    return float(loss_sum) / n, int(correct) / n, lr


def training_loss(model, X, y):
    """Return ``(loss, scores)`` for one batch: ``scores = model(X)``, ``loss = F.cross_entropy(scores, y)``.

    An :class:`~mnist_lab.models.Ensemble` is the one exception: its loss is the mean of its members' own
    cross-entropies, so each member learns as if it were alone (not from the vote); its ``scores`` are the vote.
    """
    if isinstance(model, Ensemble):
        member_scores = model.member_scores(X)  # (members, N, 10)
        loss = F.cross_entropy(member_scores.flatten(0, 1), y.repeat(len(member_scores)))
        return loss, combine_scores(member_scores)
    scores = model(X)
    loss = F.cross_entropy(scores, y)
    return loss, scores


def training_batches(X, y, config, generator):
    """Yield the epoch's ``(X, y)`` batches: shuffled by ``generator``, randomly warped when ``config.augment``
    or ``config.drawings`` asks for it."""
    for X_b, y_b in shuffled_batches(X, y, config.batch_size, generator):
        if config.drawings:
            X_b = like_drawings(X_b, y_b, generator)
        elif config.augment:
            X_b = random_affine(X_b, generator)
        yield X_b, y_b


def make_scheduler(optimizer, config, steps_per_epoch):
    """Return the learning-rate schedule of ``config``, stepped once per batch."""
    total = config.epochs * steps_per_epoch
    schedules = torch.optim.lr_scheduler
    if config.schedule == "onecycle":
        return schedules.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total)
    if config.schedule == "cosine":
        return schedules.CosineAnnealingLR(optimizer, T_max=total)
    if config.schedule == "step":
        return schedules.StepLR(optimizer, step_size=max(1, total // 3), gamma=0.1)
    return schedules.LambdaLR(optimizer, lambda step: 1.0)


def interruption_note(history):
    """Return the one line that says what Ctrl+C left: which epoch's weights the model now holds."""
    if history.kept_epoch:
        return (f"中断しました。終わった {len(history)} エポックのうち {history.kept_epoch} エポック目の重みに戻しました"
                "（履歴もそこまで使えます）。")
    return "中断しました。1 エポックも終わっていないので、モデルは中断した時点（エポックの途中）の重みです。"


def _call(callbacks, hook, *args):
    for callback in callbacks:
        getattr(callback, hook)(*args)
