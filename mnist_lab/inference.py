"""Using a model without training it: :func:`evaluate`, :func:`predict_proba`, and :func:`evaluation_mode`.

Where the computing happens: on the model's device. Every function here reads the device from the model's
weights and moves the images there; nothing else chooses a device.
"""

import contextlib

import torch
import torch.nn.functional as F

from .errors import explained_arguments


def device_of(model):
    """Return the device that ``model``'s weights live on."""
    return next(model.parameters()).device


def mixed_precision(device):
    """bfloat16 autocast on CUDA (faster, same accuracy here); full float32 everywhere else."""
    if torch.device(device).type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def evaluation_mode(model):
    """Put ``model`` in eval mode with gradients off for the ``with`` block; restore its mode afterwards, always.

    Eval mode makes BatchNorm use its running statistics and turns dropout off, so one image's answer does not
    depend on the rest of the batch.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), mixed_precision(device_of(model)):
            yield model
    finally:
        model.train(was_training)


def batch_size_for(device):
    """Images per forward pass when only reading: small on a CPU, whose caches hold a batch of 128 MNIST images'
    activations but not of 256 (3x faster for the original CNN), large on a GPU, which wants work in bulk."""
    return 128 if torch.device(device).type == "cpu" else 1024


@explained_arguments("モデル、画像 X（N×1×28×28 のテンソル）、同じ枚数のラベル y（0〜9 の整数のテンソル）")
def evaluate(model, X, y, batch_size=None):
    """Return ``(mean cross-entropy loss, accuracy)`` of ``model`` on ``X, y``: sums counted, divided once.

    Introduced in the lesson: main.ipynb §6.
    """
    device = device_of(model)
    batch_size = batch_size or batch_size_for(device)
    loss_sum = correct = 0.0
    with evaluation_mode(model):
        for X_b, y_b in zip(X.split(batch_size), y.split(batch_size)):
            X_b, y_b = X_b.to(device), y_b.to(device)
            scores = model(X_b).float()
            loss_sum += F.cross_entropy(scores, y_b, reduction="sum").item()
            correct += (scores.argmax(1) == y_b).sum().item()
    return loss_sum / len(y), correct / len(y)


@explained_arguments("モデルと画像 X（N×1×28×28 のテンソル。1 枚なら X[:1] のように）")
def predict_proba(model, X, batch_size=None):
    """Return the class probabilities ``(N, 10)`` of ``model`` for images ``X``, as a CPU float tensor.

    Introduced in the lesson: main.ipynb §6.
    """
    device = device_of(model)
    batch_size = batch_size or batch_size_for(device)
    with evaluation_mode(model):
        out = [F.softmax(model(X_b.to(device)).float(), dim=1).cpu() for X_b in X.split(batch_size)]
    return torch.cat(out) if out else torch.empty(0, 10)


@explained_arguments("モデル、画像 X（N×1×28×28 のテンソル）、そのモデルの層の名前のリスト（model.named_modules() で見られます）")
def activations(model, X, layers):
    """Return ``{layer name: output}`` of the named layers of ``model`` (e.g. ``"conv.0"``) for images ``X``.

    Introduced in the lesson: main.ipynb §6.
    """
    modules, found = dict(model.named_modules()), {}
    hooks = [modules[name].register_forward_hook(lambda m, i, out, name=name: found.__setitem__(name, out.float().cpu()))
             for name in layers]
    try:
        with evaluation_mode(model):
            model(X.to(device_of(model)))
    finally:
        for hook in hooks:
            hook.remove()
    return found
