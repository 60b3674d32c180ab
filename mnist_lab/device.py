"""Choosing the compute device (:func:`best_device`: CUDA, then Apple MPS, then CPU) and looking at GPU memory."""

import gc

import torch

from .errors import UserError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def _mps_available():
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def best_device(name="auto"):
    """Return the device to compute on: CUDA, then Apple MPS, then CPU for ``"auto"``, else the one named.

    >>> best_device("cpu")
    device(type='cpu')

    Introduced in the lesson: main.ipynb §1.
    """
    if isinstance(name, torch.device) or (isinstance(name, str) and name.startswith("cuda:")):  # one device named
        return usable_device(name)  # (the second GPU of a lab server is "cuda:1"): this machine must have it
    if name not in DEVICE_CHOICES:
        raise UserError(f"デバイス '{name}' は使えません。{', '.join(DEVICE_CHOICES)} のどれかを指定してください。")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("CUDA の GPU が見つかりません。\"cpu\" か \"auto\"（コマンドでは --device cpu）にするか、GPU サーバーで"
                        "実行してください。")
    if name == "mps" and not _mps_available():
        raise UserError("Apple の MPS が使えません。\"cpu\" か \"auto\"（コマンドでは --device cpu）にしてください。")
    return torch.device(name)


def usable_device(device=None):
    """Return ``device`` (a name such as ``"cuda"`` or ``"cuda:0"``, a ``torch.device``, or ``None`` for
    :func:`best_device`) if this machine has it; else :class:`UserError`, one line saying what to pass."""
    if device is None or (isinstance(device, str) and device == "auto"):
        return best_device()
    try:
        device = torch.device(device) if isinstance(device, (str, torch.device)) else None
    except (RuntimeError, TypeError, ValueError):
        device = None
    if device is None or device.type not in DEVICE_CHOICES:
        raise UserError("デバイスは \"cpu\"、\"cuda\"、\"mps\" か best_device() の結果にしてください"
                        "（GPU があればそれを選ぶのは best_device() です）。")
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise UserError(f"このマシンには {device} の GPU がありません。best_device()（あるものを選びます）か \"cpu\" を使ってください。")
    if device.type == "mps" and not _mps_available():
        raise UserError("このマシンでは Apple の MPS が使えません。best_device() か \"cpu\" を使ってください。")
    return device


def try_gpu(name="auto"):
    """The older name of :func:`best_device`, kept so that a lesson saved before the rename still runs."""
    return best_device(name)


def describe_device(device):
    """Return a one-line human description of ``device``, e.g. ``'cuda (NVIDIA H100, 79.2 GiB)'``; one this machine
    does not have is :func:`usable_device`'s one line."""
    device = usable_device(device)
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"cuda ({props.name}, {props.total_memory / 2**30:.1f} GiB)"
    if device.type == "mps":
        return "mps (Apple GPU)"
    return f"cpu ({torch.get_num_threads()} threads)"


def gpu_memory_mib(device=None):
    """Return ``{"allocated": MiB, "reserved": MiB}`` held by this process on a CUDA device (zeros without one).

    Introduced in the lesson: main.ipynb §13.
    """
    if not torch.cuda.is_available():
        return {"allocated": 0.0, "reserved": 0.0}
    return {
        "allocated": torch.cuda.memory_allocated(device) / 2**20,
        "reserved": torch.cuda.memory_reserved(device) / 2**20,
    }


def free_gpu_memory(*given):
    """Collect garbage and give PyTorch's cached CUDA memory back; returns :func:`gpu_memory_mib` afterwards.

    Only tensors nobody references any more are freed: delete your variables first (``del model``). Anything
    passed (``free_gpu_memory(model)``: the variable still holds it) is :class:`UserError`, one line saying so.

    Introduced in the lesson: main.ipynb §13.
    """
    if given:
        raise UserError("free_gpu_memory() には何も渡しません。モデルなどのメモリを返すなら、先に del model のように変数を消してから "
                        "free_gpu_memory() を実行してください。")
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return gpu_memory_mib()


def environment_report(device=None):
    """Return a few lines on Python, PyTorch, CUDA and the device in use, in Japanese, for the lesson's first cell.

    Introduced in the lesson: main.ipynb §1.
    """
    import platform

    import torchvision

    device = usable_device(device)
    lines = [f"Python {platform.python_version()} / PyTorch {torch.__version__} / torchvision {torchvision.__version__}",
             f"使うデバイス: {describe_device(device)}"]
    if device.type == "cuda":
        lines.insert(1, f"CUDA（PyTorch に組み込み）: {torch.version.cuda}")
        free, total = torch.cuda.mem_get_info(device)
        lines.append(f"GPU メモリ: 空き {free / 2**30:.1f} GiB / 全体 {total / 2**30:.1f} GiB（他の人の分も含む）")
    elif device.type == "cpu":
        lines.append("GPU は見つかりませんでした。CPU でもすべてのセルが動きます（学習に少し時間がかかるだけです）。")
    return "\n".join(lines)
