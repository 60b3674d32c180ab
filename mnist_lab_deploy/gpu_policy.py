"""Which GPU a student gets on a shared server: spread the students, never crowd one GPU, keep a student's GPU.

The rule, in order:
1. a student keeps the GPU they had (their kernel's files and habits stay put), unless it is gone or full;
2. otherwise the GPU with the fewest students; among those, the one with the most free memory; then the lowest
   index (so an idle 4-GPU server gives its first four students four different GPUs);
3. no GPU takes more than ``max_per_gpu`` students; when every GPU is full there is no GPU to give (``None``).

And each student's share of their GPU's memory (:func:`memory_share`), which every kernel keeps to
(:mod:`.gpu_share`). Also how a server's GPUs and a container's GPUs are read (nvidia-smi, Docker's device requests),
shared by :mod:`.make_env` and the hub (hub/jupyterhub_config.py). Standard library only: make_env runs it with the
server's own python3.
"""

import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass

SHARE_MARGIN = 0.1  # of a GPU's memory, left for the kernels' CUDA contexts (outside PyTorch's cap)
MAX_STUDENTS = 900  # per GPU: with more, each one's share of (1 - SHARE_MARGIN) rounds down to 0 (no cap at all)
NVIDIA_SMI = ["nvidia-smi", "--query-gpu=index,memory.free", "--format=csv,noheader,nounits"]


@dataclass(frozen=True)
class GPU:
    index: int
    free_mib: int = 0


def choose_gpu(gpus, students, max_per_gpu=None, previous=None):
    """Return the index of the GPU to give, or ``None`` when every GPU already has ``max_per_gpu`` students.

    ``gpus``: the server's :class:`GPU` s. ``students``: the GPU index of every *other* student holding one
    (a list with repeats, or a Counter). ``previous``: this student's GPU last time, if any.

    >>> idle = [GPU(0), GPU(1), GPU(2), GPU(3)]
    >>> [choose_gpu(idle, taken) for taken in ([], [0], [0, 1], [0, 1, 2])]
    [0, 1, 2, 3]
    >>> choose_gpu(idle, [0, 1, 2, 3], max_per_gpu=1) is None
    True
    >>> choose_gpu(idle, [0, 1, 2], previous=0)  # keeps GPU 0 though 3 is free
    0
    """
    count = Counter(students)
    open_gpus = [g for g in gpus if max_per_gpu is None or count[g.index] < max_per_gpu]
    if previous is not None and any(g.index == previous for g in open_gpus):
        return previous
    if not open_gpus:
        return None
    return min(open_gpus, key=lambda g: (count[g.index], -g.free_mib, g.index)).index


def parse_nvidia_smi(text):
    """Return the :class:`GPU` s in ``nvidia-smi --query-gpu=index,memory.free --format=csv,noheader,nounits``
    output. A line that is no GPU's row (a warning before the list) is passed over; ``ValueError`` (with
    nvidia-smi's own first line) when no line is, e.g. a driver error. A free memory it cannot read
    (``[N/A]``) counts as 0.

    >>> parse_nvidia_smi("0, 81000\\n1, 20000\\n")
    [GPU(index=0, free_mib=81000), GPU(index=1, free_mib=20000)]
    >>> parse_nvidia_smi("WARNING: infoROM is corrupted at gpu 0000:41:00.0\\n0, [N/A]\\n")
    [GPU(index=0, free_mib=0)]
    """
    lines = text.strip().splitlines()
    rows = [[f.strip() for f in line.split(",")] for line in lines]
    gpus = [GPU(int(index), int(free) if free.isdigit() else 0) for index, free in
            (row for row in rows if len(row) == 2) if index.isdigit()]
    if lines and not gpus:
        raise ValueError(lines[0].strip())
    return gpus


class NvidiaSmiError(ValueError):
    """nvidia-smi is there but cannot read the GPUs (a driver error); ``str()`` is its first line."""


def server_gpus():
    """The server's GPUs as nvidia-smi lists them; ``[]`` without nvidia-smi (a server without NVIDIA GPUs, or a
    container given none). :class:`NvidiaSmiError` with nvidia-smi's first line when it cannot read them: each
    caller says so in its own way (make_env: one line and exit; the hub: one line on the student's page)."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        result = subprocess.run(NVIDIA_SMI, capture_output=True, text=True, errors="backslashreplace", timeout=30,
                                check=False)
    except subprocess.TimeoutExpired:
        raise NvidiaSmiError("30 秒待っても答えません。ドライバーが止まっているかもしれません") from None
    except OSError as e:
        raise NvidiaSmiError(f"起動できません: {e.strerror or e}") from None
    said = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        raise NvidiaSmiError(said.splitlines()[0] if said else f"終了コード {result.returncode}")
    try:
        return parse_nvidia_smi(result.stdout)
    except ValueError as e:
        raise NvidiaSmiError(str(e)) from e


def requested_gpus(host_config):
    """The GPU indices a container asked for, from its ``HostConfig`` (``docker inspect``, the Docker API).

    >>> requested_gpus({"DeviceRequests": [{"Driver": "nvidia", "DeviceIDs": ["1", "GPU-uuid"]}]})
    [1]
    >>> requested_gpus({"DeviceRequests": None})
    []
    """
    return [int(i) for request in host_config.get("DeviceRequests") or ()
            for i in request.get("DeviceIDs") or () if str(i).isdigit()]


def memory_share(setting="", max_per_gpu=None):
    """The fraction of its GPU's memory each student's kernel may hold (PyTorch's memory; ``MNIST_LAB_GPU_MEMORY_SHARE``
    in the container): ``setting`` when given (``GPU_MEMORY_SHARE`` of hub/.env, or make_env's --gpu-share), else the GPU divided among
    ``max_per_gpu`` students with ``SHARE_MARGIN`` of it left for their CUDA contexts (1: the whole GPU, no cap).
    ``ValueError`` with a Japanese line when ``setting`` is not a number in (0, 1].

    >>> memory_share("", 4), memory_share("", None), memory_share("0.3", 4)
    (0.225, 1.0, 0.3)
    """
    if str(setting).strip():
        try:
            share = float(setting)
        except ValueError:
            share = float("nan")
        if not 0 < share <= 1:
            raise ValueError(f"GPU_MEMORY_SHARE={setting} は 0 より大きく 1 以下の数にしてください（例: 0.225。空なら "
                             "(1 - 0.1) / MAX_PER_GPU）。")
        return share
    if max_per_gpu is not None and not 1 <= max_per_gpu <= MAX_STUDENTS:
        raise ValueError(f"MAX_PER_GPU（--max-per-gpu）={max_per_gpu} は 1〜{MAX_STUDENTS} の人数にしてください（今のままでは"
                         "メモリの割合が 0 以下になり、上限がなくなります）。")
    if not max_per_gpu or max_per_gpu <= 1:
        return 1.0
    return round((1 - SHARE_MARGIN) * 1000) // max_per_gpu / 1000  # rounded down: never over the margin
