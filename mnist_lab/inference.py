"""Using a model without training it: :func:`evaluate`, :func:`predict_proba`, and :func:`evaluation_mode`.

Where the computing happens: on the model's device. Every function here reads the device from the model's
weights and moves the images there; nothing else chooses a device.
"""

import contextlib
import sys

import torch
import torch.nn.functional as F

from .errors import ArgumentError, explained_arguments


def device_of(model):
    """Return the device that ``model``'s weights live on (the CPU for a model without weights)."""
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def unpack_hint(value):
    """For the pair ``load_checkpoint`` returns, passed where its model is wanted: one line saying to unpack it;
    ``None`` for anything else."""
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], torch.nn.Module) and isinstance(value[1], dict):
        return ("load_checkpoint は (モデル, 情報) の組を返します。model, info = load_checkpoint(...) のように分けて、"
                "モデルの方を渡してください。")
    return None


def images_for(model, X, function, empty_ok=False):
    """Return the images ``X`` in the number type of ``model``'s weights, or raise :class:`ArgumentError` (one line
    naming ``function``) when ``model`` is no model or ``X`` no images a model can read: not an N x C x H x W tensor
    with values, empty, integers (raw 0-255 pixels must be normalised as in training, never read as they are), or
    holding NaN or infinity. An empty batch is no images only where ``empty_ok``."""
    if not isinstance(model, torch.nn.Module):
        raise ArgumentError(unpack_hint(model) or f"{function} の最初にはモデル（build_model(...) や fit で学習したもの、"
                            f"load_checkpoint で読んだもの）を渡してください（今は {type(model).__name__}）。")
    if device_of(model).type == "meta":
        raise ArgumentError(f"{function} のモデルの重みが meta デバイス（形だけで値がない）にあります。"
                            "load_checkpoint で読み込むか、.to(\"cpu\") ではなく学習したモデルを渡してください。")
    if not isinstance(X, torch.Tensor):
        raise ArgumentError(f"{function} の画像 X は PyTorch のテンソルにしてください（今は {type(X).__name__}）。"
                            "例: data.X_test[:8]。NumPy の配列なら torch.from_numpy(X) で変換できます。")
    if X.dtype == torch.uint8 or not (X.is_floating_point() or X.is_complex()):
        raise ArgumentError(f"{function} の画像 X が整数（{str(X.dtype).removeprefix('torch.')}）のテンソルです。モデルが"
                            "読むのは学習と同じく正規化した小数です: 0〜255 の画素なら学習データと同じ変換 "
                            "mnist_lab.data.normalize(X) で、描いた絵や写真なら preprocess_drawing(画像) で変換してから渡してください。")
    if X.is_complex():
        raise ArgumentError(f"{function} の画像 X が複素数のテンソルです。正規化した小数（float）の画像を渡してください。")
    if X.ndim != 4 or X.device.type == "meta":
        raise ArgumentError(f"{function} の画像 X の形 {tuple(X.shape)} は読めません。N 枚の画像を N×1×28×28 のテンソル"
                            "（値の入ったもの）で渡してください: 1 枚なら X[:1]、N×28×28 なら X.unsqueeze(1)。")
    if tuple(X.shape[1:]) != (1, 28, 28):
        raise ArgumentError(f"{function} の画像 X の形 {tuple(X.shape)} は読めません。モデルが読むのは白黒 1 チャンネル・28×28 の画像"
                            "（N×1×28×28）です: 写真や描いた絵なら preprocess_drawing(画像) で変換してください。")
    if len(X) == 0 and not empty_ok:
        raise ArgumentError(f"{function} の画像 X が空です（形 {tuple(X.shape)}）。1 枚以上の画像を渡してください（1 枚なら X[:1]）。")
    if not torch.isfinite(X).all():
        raise ArgumentError(f"{function} の画像 X に NaN か無限大の値が入っています。数だけの画像を渡してください。")
    _note_unnormalised(X, function)
    first = next(model.parameters(), None)
    return X.to(first.dtype) if first is not None and first.is_floating_point() else X


_NOTED = set()  # the functions whose images were pointed out as not normalised, once each in a process


def _note_unnormalised(X, function):
    """One note when ``X`` looks like pixels that were never normalised (no negative value: a normalised MNIST
    image's background is -0.42) or normalised twice (a background near -1.8): the answers would still come, wrong."""
    low = float(X.min()) if X.numel() else 0.0
    if function in _NOTED or -1.5 <= low < 0:
        return
    _NOTED.add(function)
    how = "もう一度正規化されています（normalize は 1 回だけ）" if low < -1.5 else "正規化されていないようです（負の値がありません）"
    print(f"お知らせ: {function} に渡した画像は{how}。学習と同じ画像（data.X_test のような正規化したもの、描いた絵なら "
          "preprocess_drawing(画像)）でないと、予測は当てになりません。", file=sys.stderr)


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
    if not isinstance(model, torch.nn.Module):
        raise ArgumentError(f"evaluation_mode にはモデルを 1 つ渡してください（今は {type(model).__name__}）。")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), mixed_precision(device_of(model)):
            yield model
    finally:
        model.train(was_training)


def batch_size_for(device, batch_size=None, function="evaluate"):
    """Images per forward pass when only reading: ``batch_size`` if given (a positive int, else
    :class:`ArgumentError`: a device passed where the batch size goes, as ``fit``'s fourth argument is); by default
    small on a CPU, whose caches hold a batch of 128 MNIST images' activations but not of 256 (3x faster for the
    original CNN), large on a GPU, which wants work in bulk."""
    if batch_size is None:
        return 128 if torch.device(device).type == "cpu" else 1024
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ArgumentError(f"{function} の batch_size は 1 以上の整数です（今は {type(batch_size).__name__}）。デバイスは渡しません: "
                            "モデルのあるデバイスで計算します（model.to(device) で移せます）。")
    return batch_size


def labels_for(X, y):
    """Return the labels ``y`` of the images ``X`` for :func:`evaluate`, or raise :class:`ArgumentError` when they are
    not one integer label per image (a shorter ``y`` would silently leave images out of the score)."""
    if not isinstance(y, torch.Tensor) or y.ndim != 1 or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        what = f"{str(y.dtype).removeprefix('torch.')} の形 {tuple(y.shape)} のテンソル" if isinstance(y, torch.Tensor) else type(y).__name__
        raise ArgumentError(f"evaluate のラベル y は、0〜9 の整数が画像 1 枚に 1 つ並んだ 1 次元のテンソルにしてください（今は {what}）。"
                            "例: evaluate(model, data.X_test, data.y_test)")
    if len(y) != len(X):
        raise ArgumentError(f"evaluate の画像 X は {len(X)} 枚、ラベル y は {len(y)} 個です。同じ数にしてください"
                            "（例: evaluate(model, X[:100], y[:100])）。")
    if len(y) and not (0 <= int(y.min()) and int(y.max()) <= 9):
        raise ArgumentError(f"evaluate のラベル y に 0〜9 以外の値（{int(y.min())}〜{int(y.max())}）があります。数字 0〜9 のラベルを渡してください。")
    return y.long()


@explained_arguments("モデル、画像 X（N×1×28×28 のテンソル）、同じ枚数のラベル y（0〜9 の整数のテンソル）")
def evaluate(model, X, y=None, batch_size=None):
    """Return ``(mean cross-entropy loss, accuracy)`` of ``model`` on ``X, y``: sums counted, divided once.

    Introduced in the lesson: main.ipynb §6.
    """
    if y is None:  # evaluate(model, data): the data, not its images and labels
        raise ArgumentError("evaluate にはモデル・画像・ラベルの 3 つを渡してください（例: evaluate(model, data.X_test, "
                            f"data.y_test)。今は 2 つ目が {type(X).__name__} で、ラベルがありません）。")
    X, y = images_for(model, X, "evaluate"), labels_for(X, y)
    device = device_of(model)
    batch_size = batch_size_for(device, batch_size, "evaluate")
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
    X = images_for(model, X, "predict_proba", empty_ok=True)
    device = device_of(model)
    batch_size = batch_size_for(device, batch_size, "predict_proba")
    with evaluation_mode(model):
        out = [F.softmax(model(X_b.to(device)).float(), dim=1).cpu() for X_b in X.split(batch_size)]
    return torch.cat(out) if out else torch.empty(0, 10)


@explained_arguments("モデル、画像 X（N×1×28×28 のテンソル）、そのモデルの層の名前のリスト（model.named_modules() で見られます）")
def activations(model, X, layers):
    """Return ``{layer name: output}`` of the named layers of ``model`` (e.g. ``"conv.0"``) for images ``X``.

    Introduced in the lesson: main.ipynb §6.
    """
    X = images_for(model, X, "activations")
    layers = [layers] if isinstance(layers, str) else layers  # one layer's name alone
    modules, found = dict(model.named_modules()), {}
    unknown = [name for name in layers if not isinstance(name, str) or name not in modules]
    if unknown:
        raise ArgumentError(f"activations: {unknown[0]!r} という層は {type(model).__name__} にありません。層の名前は "
                            f"{', '.join(list(modules)[1:6])} ... です（model.named_modules() で全部見られます）。")
    hooks = [modules[name].register_forward_hook(lambda m, i, out, name=name: found.__setitem__(name, out.float().cpu()))
             for name in layers]
    try:
        with evaluation_mode(model):
            model(X.to(device_of(model)))
    finally:
        for hook in hooks:
            hook.remove()
    return found
