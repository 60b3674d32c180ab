"""Each student's kernel keeps to its share of the GPU's memory (an IPython extension the image loads in every kernel).

On a GPU that several students share (``MAX_PER_GPU`` > 1), one student's huge batch must not take the whole GPU
and make every other kernel on it fail. So every kernel caps PyTorch's memory on its GPU at
``MNIST_LAB_GPU_MEMORY_SHARE`` (a fraction of the GPU's memory, 0 < share <= 1; compose passes it from .env, the
hub from hub/.env, see :func:`.gpu_policy.memory_share`), and a student who asks for more gets one Japanese
line saying how much they may use, instead of a CUDA out-of-memory traceback; the others on that GPU are untouched.

Lazily, so that a kernel that never uses the GPU creates no CUDA context (a context alone holds GPU memory):
- nothing happens until the kernel imports torch (an import hook: a kernel without torch never loads it);
- then the cap is queued with ``torch.cuda._lazy_call``, which PyTorch runs inside its own CUDA initialisation,
  before the first tensor lands on the GPU (``torch.cuda.set_per_process_memory_fraction`` on the kernel's GPU:
  a container is given exactly one);
- and ``torch.OutOfMemoryError`` gets IPython's custom exception handler: one line, and the memory the failed cell
  held (its frames' tensors) is given back, so the student can fix the batch size and run the cell again.

Loaded by docker/ipython_kernel_config.py (in the image: /opt/venv/etc/ipython/, read by every IPython kernel), as
mnist_lab_deploy.gpu_share: the package is installed in the image (docker/install.sh).
Standard library only until torch is imported.
"""

import functools
import gc
import importlib.abc
import importlib.util
import os
import sys
import traceback

ENV = "MNIST_LAB_GPU_MEMORY_SHARE"
GB = 1e9


def share_from(environ=None):
    """The share of the GPU's memory this kernel may hold, from ``environ``: a float in (0, 1), or ``None`` when
    it is unset, empty or 1 (the whole GPU: no cap). A value that is not a number in (0, 1] is refused with one
    line on stderr (then no cap: a typo must not stop the lesson).

    >>> share_from({ENV: "0.225"}), share_from({ENV: "1"}), share_from({})
    (0.225, None, None)
    """
    text = (os.environ if environ is None else environ).get(ENV, "").strip()
    if not text:
        return None
    try:
        share = float(text)
    except ValueError:
        share = float("nan")
    if not 0 < share <= 1:
        print(f"mnist-lab: {ENV}={text!r} は 0 より大きく 1 以下の数ではないので、GPU メモリの上限は付けません。",
              file=sys.stderr)
        return None
    return None if share == 1 else share


def out_of_memory_message(share, total_bytes, held_bytes):
    """The one line a student sees instead of a CUDA out-of-memory traceback.

    ``share``: this kernel's cap (``None``: none), ``total_bytes``: the GPU's memory (``None``: unknown),
    ``held_bytes``: what this kernel's PyTorch held when it ran out.

    >>> out_of_memory_message(0.25, 80e9, 19.5e9).split("。")[0]
    'この GPU であなたが使えるのは 20.0 GB までです（いま 19.5 GB 使用中）'
    """
    advice = "バッチサイズを小さくするか、使い終わった変数を del してから、もう一度実行してください。"
    if share is not None and total_bytes:
        return (f"この GPU であなたが使えるのは {share * total_bytes / GB:.1f} GB までです"
                f"（いま {held_bytes / GB:.1f} GB 使用中）。GPU はみんなで分けて使っています。{advice}")
    if share is not None:
        return f"この GPU であなたが使えるのは GPU のメモリの {share:.0%} までです。GPU はみんなで分けて使っています。{advice}"
    return f"GPU のメモリが足りません（いま {held_bytes / GB:.1f} GB 使用中）。{advice}"


def cap_memory(torch, share):
    """Cap PyTorch's memory on the current GPU at ``share`` of it (run by PyTorch while it initialises CUDA)."""
    try:
        torch.cuda.set_per_process_memory_fraction(share)
    except Exception as e:  # noqa: BLE001 -- never break CUDA's initialisation: the lesson goes on without a cap
        print(f"mnist-lab: GPU メモリの上限を付けられませんでした（{e}）", file=sys.stderr)


def _gpu_figures(torch):
    """``(the GPU's total bytes or None, bytes this process's PyTorch holds)``, creating no CUDA context."""
    if not torch.cuda.is_initialized():
        return None, 0
    device = torch.cuda.current_device()
    return torch.cuda.get_device_properties(device).total_memory, torch.cuda.memory_reserved(device)


def make_handler(torch, share):
    """IPython's custom exception handler for ``torch.OutOfMemoryError``: one line instead of the traceback."""

    def handler(shell, etype, value, tb, tb_offset=None):
        total, held = _gpu_figures(torch)
        line = out_of_memory_message(share, total, held)
        traceback.clear_frames(tb)  # the failed cell's tensors go, so the memory goes back to the GPU
        gc.collect()
        if torch.cuda.is_initialized():
            torch.cuda.empty_cache()
        stb = [f"\x1b[0;31m{line}\x1b[0m"]
        shell._showtraceback(etype, value, stb)  # run_code shows nothing itself for a custom exception
        return stb

    return handler


def install(shell, torch, share):
    """What happens once torch is imported: the cap queued for CUDA's initialisation, the handler registered."""
    if share is not None:
        torch.cuda._lazy_call(functools.partial(cap_memory, torch, share))
    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    shell.set_custom_exc((oom,), make_handler(torch, share))
    shell.mnist_lab_gpu_share = share  # what this kernel was given (tests and benchmarks/gpu.py read it)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs ``callback(module)`` right after ``name`` is first imported (once), whoever imports it."""

    def __init__(self, name, callback):
        self.name, self.callback = name, callback

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # once; and the real finders below find the real spec
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _ThenCall(spec.loader, self.callback)
        return spec


class _ThenCall(importlib.abc.Loader):
    def __init__(self, loader, callback):
        self.loader, self.callback = loader, callback

    def __getattr__(self, name):  # everything else the real loader does (resources, get_code...)
        return getattr(self.loader, name)

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        module.__loader__ = module.__spec__.loader = self.loader
        try:
            self.callback(module)
        except Exception as e:  # noqa: BLE001 -- never break `import torch`
            print(f"mnist-lab: GPU メモリの設定に失敗しました（{e}）", file=sys.stderr)


def load_ipython_extension(shell):
    """IPython calls this when the kernel starts (``c.InteractiveShellApp.extensions``)."""
    share = share_from()
    shell.mnist_lab_gpu_share = share
    if "torch" in sys.modules:
        install(shell, sys.modules["torch"], share)
    else:
        sys.meta_path.insert(0, _AfterImport("torch", lambda torch: install(shell, torch, share)))
