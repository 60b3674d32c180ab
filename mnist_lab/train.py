"""The training loop: :func:`fit` runs :func:`train_epoch` once per epoch and evaluates the model after each.

The heart of it is the step the lesson writes by hand (section 5), line for line::

    optimizer.zero_grad()                 # forget the previous batch's gradients
    scores = model(X)                     # class scores (N, 10)
    loss = F.cross_entropy(scores, y)     # how wrong they are
    loss.backward()                       # gradients of the loss for every weight
    optimizer.step()                      # move every weight a little against its gradient

Everything else a run can do (progress bar, stop on NaN, EMA, best epoch and early stopping, TensorBoard, live
curves) is a callback from :mod:`mnist_lab.callbacks`; recipes come from :mod:`mnist_lab.recipes`.

Where the computing happens: ``fit`` moves the model to ``device`` (default :func:`~mnist_lab.device.best_device`:
CUDA, then MPS, then CPU) and the data to the model's device; from then on everything runs where the model's
weights are, as everywhere in :mod:`mnist_lab`.
"""

import time

import torch
import torch.nn.functional as F

from .augment import like_drawings, random_affine, with_crossbars, with_flags
from .callbacks import Callback, standard_callbacks
from .data import shuffled_batches
from .device import describe_device, usable_device
from .errors import UserError, explained_arguments
from .history import History
from .inference import evaluate, mixed_precision
from .interrupts import before_start, uninterrupted
from .models import Ensemble, combine_scores
from .ood import calibrate, uniform_loss
from .recipes import checked_config

PEN_DRAWN = 1.0  # pen-drawn training digits made per generated non-digit (see extra_pictures)
PEN_STYLES = True  # their ones and sevens given flags, bases and crossbars (see pen_drawn_digits)
# weight of the non-digits' loss (outlier exposure) next to the digits' cross-entropy: at 0.5 the model kept its
# digits' energy low only for MNIST's own and flagged 12 % of digits drawn on the pad; 0.1 still flags 94 % of the
# non-digits (chosen on the select parts of benchmarks/other_styles.py)
NOT_DIGIT_WEIGHT = 0.1


def checked_arguments(model, data, config, device, callbacks):
    """``fit``'s recipe, device and callbacks as it uses them; :class:`UserError` (one line) for what it cannot use,
    before any training (a mismatch found after it would lose the training)."""
    config = checked_config(config)  # as make_config checks it: a recipe changed by hand is checked here
    if config.not_digits and not getattr(model, "keeps_threshold", False):
        raise UserError(f"このレシピは数字でない画像も教えます（not_digits）が、{type(model).__name__} には「数字ではない」の境目を"
                        f"しまう場所がありません。build_model(\"{config.model}\") のモデルを渡すか、not_digits を 0 にしてください。")
    weights = list(model.parameters()) if isinstance(model, torch.nn.Module) else []
    if weights and any(w.dtype != torch.float32 for w in weights):
        kind = next(w.dtype for w in weights if w.dtype != torch.float32)
        raise UserError(f"fit が学習するのは float32 の重みのモデルです（今は {str(kind).removeprefix('torch.')}）。"
                        "model.float() にしてから渡してください（GPU では学習中だけ自動で bfloat16 を使います）。")
    if weights and not any(w.requires_grad for w in weights):
        raise UserError("このモデルには学習する重みがありません（どれも requires_grad=False）。model.requires_grad_(True) に"
                        "するか、build_model(...) で作り直してください。")
    device = usable_device(device)
    callbacks = checked_callbacks(callbacks)
    if not all(hasattr(data, name) for name in ("X_train", "y_train", "with_validation", "eval_split")):
        raise UserError(f"fit には load_mnist() のデータを渡してください（今は {type(data).__name__}）。DataLoader や (X, y) ではなく、"
                        "data = load_mnist() の data です（少しだけなら data.head(1000, 200)）。")
    if len(data.y_train) == 0:
        raise UserError("学習データがありません（0 枚）。load_mnist() のデータか、1 枚以上ある data.head(n) を渡してください。")
    if config.val_size and not len(data.y_val) and not config.val_size < len(data.y_train):
        raise UserError(f"レシピの検証データ {config.val_size} 枚を、学習データ {len(data.y_train)} 枚から取れません。"
                        f"val_size を小さくするか（例: make_config(..., val_size={len(data.y_train) // 10})）、データを増やしてください。")
    if not (config.val_size or len(data.y_val) or len(data.y_test)):
        raise UserError("学習の途中で正解率を測る画像がありません（検証データもテストデータも 0 枚）。data.head(1000, 200) のように"
                        "テストの画像も残すか、val_size を 1 以上にしてください。")
    return config, device, callbacks


@explained_arguments("モデル、load_mnist() のデータ、make_config(...) のレシピ（この順）")
def fit(model, data, config, device=None, callbacks=(), progress=True):
    """Train ``model`` on ``data`` (:class:`~mnist_lab.data.MNISTData`) as ``config`` says; return its History.

    After each epoch the model is evaluated on the validation split (the test split when there is none: the test
    set never chooses anything); Ctrl+C stops cleanly, keeping the last finished (or best) epoch's weights.
    Introduced in the lesson: main.ipynb §5."""
    with before_start("学習を始める前に止めました。モデルは学習前のままです（もう一度実行すると最初から学習します）。"):
        config, device, callbacks = checked_arguments(model, data, config, device, callbacks)
        print(f"学習デバイス: {describe_device(device)}")
        torch.manual_seed(config.seed)  # dropout
        model.to(device, memory_format=torch.channels_last)  # NHWC is the faster layout for CPU (oneDNN) and GPU
        data = data.with_validation(config.val_size, config.seed).to(device)
        eval_split, X_eval, y_eval = data.eval_split()
        steps = -(-len(data.y_train) // config.batch_size)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        scheduler = make_scheduler(optimizer, config, steps)
        callbacks = standard_callbacks(model, config, eval_split, steps, progress) + list(callbacks)
        generator = torch.Generator().manual_seed(config.seed)  # batch order and augmentation, the same everywhere
        extra, history = extra_pictures(config, data, device), History(eval_split=eval_split)
    try:
        _call(callbacks, "on_train_begin", model, history, config.epochs, steps)
        for epoch in range(1, config.epochs + 1):
            start = time.perf_counter()
            batches = training_batches(data.X_train, data.y_train, config, generator, extra)
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
        wrap_up(model, callbacks, history)
    settle_and_calibrate(model, data, config, generator, extra, history)
    if history.interrupted:
        print("\n" + interruption_note(history))
    return history


HOOKS = [name for name in vars(Callback) if not name.startswith("_")]  # the hooks fit calls, in their order


def checked_callbacks(callbacks):
    """``callbacks`` as a list of callback objects; else :class:`UserError` (a class instead of an object, one
    callback not in a list)."""
    callbacks = () if callbacks is None else callbacks  # None: no callbacks, as Python says it
    if not isinstance(callbacks, (list, tuple)) or any(isinstance(c, type) for c in callbacks):
        given = type(callbacks).__name__ if not isinstance(callbacks, (list, tuple)) else "クラスのまま"
        raise UserError(f"fit の callbacks には、作ったコールバックをリストにして渡してください（今は {given}）。"
                        "例: callbacks=[LiveCurves()]（() を付けて作り、[ ] で囲みます）")
    odd = [c for c in callbacks if not isinstance(c, Callback)]
    if odd:
        odd = odd[0]
        raise UserError(f"fit の callbacks に、コールバックでないもの（{type(odd).__name__}: {repr(odd)[:30]}）が入っています。"
                        "mnist_lab.callbacks のコールバックを () を付けて作って並べてください。例: callbacks=[LiveCurves()]")
    for callback in callbacks:  # a hook fit never calls (Keras' on_batch_end) would silently do nothing
        unknown = sorted(name for name in dir(type(callback)) if name.startswith(("on_", "before_", "after_"))
                         and name not in HOOKS)
        if unknown:
            instead = "（1 バッチごとなら on_step です）" if "batch" in unknown[0] else ""
            raise UserError(f"コールバック {type(callback).__name__} の {unknown[0]} は fit が呼ばないフックです{instead}。"
                            f"fit が呼ぶのは {', '.join(HOOKS)} です。名前を直してください。")
    return list(callbacks)


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
        right, counted = (scores.argmax(1) == y).sum(), (y >= 0).sum()
        _call(callbacks, "on_step", model, loss, right, counted)
        loss_sum += loss.detach() * len(y)  # kept on the device: no CPU-GPU sync per step
        correct += right  # generated non-digits (label -1) are never "correct"...
        n += counted  # ... nor counted
    return float(loss_sum) / int(n), int(correct) / int(n), lr


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
    digits = y >= 0
    if digits.all():
        return F.cross_entropy(scores, y), scores
    # generated non-digits (label -1): every digit should get the same score (outlier exposure, mnist_lab.ood)
    loss = F.cross_entropy(scores[digits], y[digits]) + NOT_DIGIT_WEIGHT * uniform_loss(scores[~digits])
    return loss, scores


def wrap_up(model, callbacks, history):
    """After the last epoch, ■ or an error: the callbacks' ``on_train_end`` (the kept weights put back), then eval
    mode. A signal waits until that is done; one that came meanwhile marks the history interrupted (the training
    itself had ended, so nothing of it is lost)."""
    try:
        with uninterrupted():
            _call(callbacks, "on_train_end", model, history)
            model.eval()
    except KeyboardInterrupt:
        history.interrupted = True


def settle_and_calibrate(model, data, config, generator, extra, history):
    """After a finished training with non-digits: BatchNorm settled on digits (:func:`settle_batchnorm`), then the
    "not a digit" threshold set on the validation digits (never on the test set: without them, none is set).
    ■ meanwhile puts the weights back as the last epoch left them, with no threshold."""
    if not (config.not_digits and len(history) and not history.interrupted):
        return
    before = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        settle_batchnorm(model, data, config, generator, extra)
        if len(data.y_val):
            calibrate(model, data.X_val)
    except KeyboardInterrupt:
        model.load_state_dict(before)
        model.eval()
        history.interrupted = True


def settle_batchnorm(model, data, config, generator, extra, batches=60):
    """After training with non-digits: BatchNorm's statistics measured again on digits alone, then one more epoch
    at a tenth of the rate with them frozen. (Mixed into the batches, noise and gradients skew the running
    statistics far from a digit's: eval mode read MNIST at 70 % where train mode read it at 97 %.)"""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a plain average over the batches
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(data.X_train[torch.randint(len(data.y_train), (256,), generator=generator).to(data.y_train.device)])
    for norm in norms:
        norm.momentum = 0.1
        norm.eval()  # frozen from here on
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr / 10)
    steps = -(-len(data.y_train) // config.batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    for X, y in training_batches(data.X_train, data.y_train, config, generator, extra):
        optimizer.zero_grad()
        training_loss(model, X, y)[0].backward()
        optimizer.step()
        scheduler.step()
    model.eval()


def extra_pictures(config, data, device):
    """Return ``(X, y)`` of the generated pictures ``config.not_digits`` asks to add to the batches, or ``None``:
    non-digits (label -1), typeset digits and training digits drawn again with a pen
    (:func:`mnist_lab.synthetic.training_pictures`). One non-digit for every 12 training images (at most 3,000),
    a third as many typeset digits, and ``PEN_DRAWN`` times as many pen-drawn digits (taken from the training
    images only, never the validation ones); about a minute to make on 2 CPU cores."""
    if not config.not_digits:
        return None
    from .synthetic import training_pictures

    n = min(3000, max(8, len(data.y_train) // 12))
    X, y = training_pictures(n, max(2, n // 3), seed=config.seed, digits=pen_drawn_digits(data, config, n))
    return X.to(device), y.to(device)


def pen_drawn_digits(data, config, n_non_digits):
    """Return ``(X, y)`` on the CPU: ``PEN_DRAWN`` times ``n_non_digits`` training images (never validation ones)
    for :func:`mnist_lab.synthetic.training_pictures` to draw again with a pen; their ones and sevens given a flag,
    a base or a crossbar as :func:`mnist_lab.augment.like_drawings` gives MNIST's (a pen-drawn continental 1 is a
    digit too)."""
    generator = torch.Generator().manual_seed(config.seed)
    chosen = torch.randperm(len(data.y_train), generator=generator)[:round(PEN_DRAWN * n_non_digits)]
    X, y = data.X_train.cpu()[chosen], data.y_train.cpu()[chosen]
    if PEN_STYLES:
        X = with_crossbars(with_flags(X, y, generator), y, generator)
    return X, y


def training_batches(X, y, config, generator, extra=None):
    """Yield the epoch's ``(X, y)`` batches: shuffled by ``generator``, randomly warped when ``config.augment``
    or ``config.drawings`` asks for it, with ``config.not_digits`` times as many of the ``extra`` pictures
    (slightly turned, shifted and scaled) added to each."""
    for X_b, y_b in shuffled_batches(X, y, config.batch_size, generator):
        if config.drawings:
            X_b = like_drawings(X_b, y_b, generator)
        elif config.augment:
            X_b = random_affine(X_b, generator)
        if extra is not None:
            idx = torch.randint(len(extra[1]), (round(config.not_digits * len(y_b)),), generator=generator)
            X_b = torch.cat([X_b, random_affine(extra[0][idx.to(extra[1].device)], generator)])
            y_b = torch.cat([y_b, extra[1][idx.to(extra[1].device)]])
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
    """Call ``hook`` of every callback; a student's own callback that fails is named in one line (its error is no
    mistake in fit's arguments), and the model keeps the weights it has learnt so far."""
    for callback in callbacks:
        try:
            getattr(callback, hook)(*args)
        except (UserError, KeyboardInterrupt, MemoryError):
            raise
        except Exception as e:
            if type(callback).__module__.startswith("mnist_lab."):
                raise
            text = str(e).splitlines()[0][:120] if str(e) else ""
            raise UserError(f"コールバック {type(callback).__name__} の {hook} でエラーになりました（{type(e).__name__}: "
                            f"{text}）。コールバックを直してください（モデルはそこまで学習した重みのままです）。") from e
