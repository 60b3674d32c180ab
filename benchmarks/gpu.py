"""The GPU path, proven in one run: prints one table and writes it as JSON.

    python benchmarks/gpu.py [--json gpu.json] [--budget 480]

On a CUDA machine (well under 10 minutes), every kernel started as the image starts one (docker/ipython_kernel_config.py,
so each keeps to its share of the GPU's memory, MNIST_LAB_GPU_MEMORY_SHARE):
- notebook: main.ipynb top to bottom with its default settings: seconds per section and in total (goal: <= 30 s on
  one data-center GPU); section 13's promise: PyTorch's allocated memory after the release cell is back to what it
  was before section 5 (and what still holds a model if not), and after the kernel shut down its GPU memory is gone
  (read from the driver, NVML);
- recipes: quick (3 seeds, AMP on and off), original and best (mnist_lab.recipes as they are): training time and
  test accuracy; quick's time to 99 % (goal: <= 1 s of training); AMP on and off within the seeds' spread; the GPU
  never slower per epoch than the CPU for the same recipe;
- sharing: N = 1, 2, 4, 8 lesson kernels (the lesson's settings cell, then ``fit``) training at once on one GPU,
  each with the share MAX_PER_GPU=N gives it: memory per student (PyTorch's peak; the driver's, per process and
  for the whole GPU) and slowdown per student against N = 1 -- the basis for MAX_PER_GPU and the README's table;
  on the same kernels: the lone one, before it touches the GPU, runs the package on the CPU and must hold none of
  the GPU; then of the two, while one trains the lesson, the other asks for more than its share: it gets one line
  (no traceback) and can go on, and the first finishes untouched.
Without CUDA (or with --dry) the same code runs a dry mode on the CPU: tiny data, N = 1, 2, a simulated
out-of-memory error. CI runs it (tests/test_gpu_benchmark.py).

The GPU machine has PyTorch but neither Jupyter's kernel packages nor MNIST, and no network. Here, once:

    python benchmarks/gpu.py --prepare .gpu-carry     # wheels for CPython 3.12 (manylinux) + MNIST gzipped, ~33 MB

then carry .gpu-carry to the GPU machine and run, from the repository's root, this one line:

    PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install -q --no-index --find-links .gpu-carry/wheels -r .gpu-carry/requirements.txt; python3 benchmarks/gpu.py --data .gpu-carry/mnist --json "$OUT/gpu.json"

(pip installs only what that Python lacks, from the carried wheels; the benchmark runs what it can even if that
failed, e.g. the recipes need no Jupyter.) Each part's figures are written to the JSON as soon as they exist, so a
run cut short still returns them; the table also goes beside the JSON (gpu.txt). Goals are printed with each figure; a goal not met is a finding, not a crash.
"""

import argparse
import contextlib
import gzip
import json
import os
import queue
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import unicodedata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from mnist_lab_deploy.gpu_policy import memory_share  # standard library only

KERNEL_CONFIG = REPO / "docker" / "ipython_kernel_config.py"
NOTEBOOK = REPO / "main.ipynb"
SHARE_ENV = "MNIST_LAB_GPU_MEMORY_SHARE"
MARK = "GPUJSON "  # a kernel's or the worker's figures: one JSON per line after this mark
DRY_SIZES = (1024, 256)  # training and test images in the dry mode
GOALS = {"notebook_s": 30.0, "quick_s": 1.0, "quick_accuracy": 0.99}
# What the GPU machine lacks to run kernels and the notebook (its Python has PyTorch, numpy, pandas, matplotlib...):
JUPYTER = ("ipykernel", "jupyter_client", "nbclient", "nbformat", "ipywidgets", "ipycanvas", "matplotlib-fontja")
# ...and what it has, so not carried even where those need it (big wheels; pip finds them installed there).
ON_THE_GPU_MACHINE = {"numpy", "pillow", "matplotlib", "contourpy", "kiwisolver", "fonttools", "cycler", "pyparsing",
                      "psutil", "pandas", "torch", "torchvision"}


# ---------------------------------------------------------------- the GPU as its driver sees it

class Driver:
    """Memory on the GPU as the driver reports it (NVML through nvidia-ml-py): for the whole device and per process.
    Every reading is ``None`` without NVML (the dry mode); per-process readings are empty where the driver does not
    show this machine's process ids (inside some containers)."""

    def __init__(self, enabled=True):
        self.nvml = self.handle = None
        if not enabled:
            return
        try:
            import pynvml

            pynvml.nvmlInit()
            self.nvml, self.handle = pynvml, self._device(pynvml)
        except Exception:  # noqa: BLE001 - no NVML, no driver: figures from the driver are simply absent
            self.nvml = None

    @staticmethod
    def _device(pynvml):
        """The device CUDA numbers 0 here (CUDA_VISIBLE_DEVICES may name another, by index or UUID)."""
        first = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0].strip() or "0"
        if first.isdigit():
            return pynvml.nvmlDeviceGetHandleByIndex(int(first))
        return pynvml.nvmlDeviceGetHandleByUUID(first.encode())

    def name(self):
        if not self.nvml:
            return None
        name = self.nvml.nvmlDeviceGetName(self.handle)
        return name.decode() if isinstance(name, bytes) else name

    def used_mib(self):
        return self.nvml.nvmlDeviceGetMemoryInfo(self.handle).used / 2**20 if self.nvml else None

    def total_mib(self):
        return self.nvml.nvmlDeviceGetMemoryInfo(self.handle).total / 2**20 if self.nvml else None

    def processes_mib(self):
        """``{pid: MiB}`` of the processes holding memory on the device (``{}`` without NVML)."""
        if not self.nvml:
            return {}
        return {p.pid: (p.usedGpuMemory or 0) / 2**20 for p in self.nvml.nvmlDeviceGetComputeRunningProcesses(self.handle)}

    def released(self, pid, baseline_mib, seconds=15):
        """Wait until ``pid`` holds nothing on the device; return ``(pid still listed, device used - baseline)``."""
        deadline = time.monotonic() + seconds
        while self.nvml and pid in self.processes_mib() and time.monotonic() < deadline:
            time.sleep(0.25)
        used = self.used_mib()
        return (pid in self.processes_mib()), (None if used is None else used - baseline_mib)


class Sampler(threading.Thread):
    """Polls the driver while a part runs: the peak of the device's used memory and of each process's."""

    def __init__(self, driver, every=0.2):
        super().__init__(daemon=True)
        self.driver, self.every, self.stop = driver, every, threading.Event()
        self.peak_used, self.peak_per_pid = None, {}

    def run(self):
        while not self.stop.is_set() and self.driver.nvml:
            used = self.driver.used_mib()
            self.peak_used = used if self.peak_used is None else max(self.peak_used, used)
            for pid, mib in self.driver.processes_mib().items():
                self.peak_per_pid[pid] = max(self.peak_per_pid.get(pid, 0.0), mib)
            self.stop.wait(self.every)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.join()


# ---------------------------------------------------------------- kernels as the image starts them

class Kernel:
    """A real IPython kernel started as the image starts one: docker/ipython_kernel_config.py and the student's
    share of the GPU's memory in its environment."""

    def __init__(self, env, cwd):
        from jupyter_client import KernelManager

        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(extra_arguments=[f"--config={KERNEL_CONFIG}"], env=env, cwd=str(cwd))
        self.kc = self.km.client()
        self.kc.start_channels()

    def ready(self, timeout=120):
        self.kc.wait_for_ready(timeout=timeout)
        return self

    def send(self, code):
        return self.kc.execute(code)

    def collect(self, msg_id, timeout):
        """``(status, figures, stdout, errors)`` of the execution ``msg_id``: figures are the kernel's MARK lines."""
        out, errors, deadline = [], [], time.monotonic() + timeout
        while True:
            try:
                msg = self.kc.get_iopub_msg(timeout=1)
            except queue.Empty:
                if not self.km.is_alive():
                    raise RuntimeError(f"a kernel died: {''.join(out)[-500:]}") from None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"a kernel did not finish within {timeout:.0f} s") from None
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out.append(content["text"])
            elif kind == "error":
                errors.append(content)
            elif kind == "status" and content["execution_state"] == "idle":
                break
        status = "error" if errors else "ok"
        text = "".join(out)
        return status, figures_in(text), text, errors

    def run(self, code, timeout):
        return self.collect(self.send(code), timeout)

    def close(self):
        self.kc.stop_channels()
        self.km.shutdown_kernel()


def figures_in(text):
    """The JSON objects printed after MARK, merged into one dict."""
    found = {}
    for line in text.splitlines():
        if line.startswith(MARK):
            found.update(json.loads(line[len(MARK):]))
    return found


def checked(result, what):
    """The figures of a kernel's execution that had to succeed; ``RuntimeError`` with the kernel's error if not."""
    status, found, text, errors = result
    if status != "ok":
        error = errors[0] if errors else {}
        raise RuntimeError(f"{what}: {error.get('ename')}: {error.get('evalue')} {text[-500:]}")
    return found


def lesson_settings_cell():
    """The lesson's own settings cell (PRESET, config) from main.ipynb: the kernels train what the lesson trains."""
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    return next("".join(c["source"]) for c in cells if c["cell_type"] == "code" and "PRESET = " in "".join(c["source"]))


def lesson_setup(dry):
    head = f".head(*{DRY_SIZES})" if dry else ""
    return f"""
import json, os, time, torch
from mnist_lab.data import load_mnist
from mnist_lab.device import best_device
from mnist_lab.inference import evaluate
from mnist_lab.models import build_model
from mnist_lab.train import fit
device = best_device()
data = load_mnist(download=False){head}
if device.type == "cuda":
    torch.ones(1, device=device)  # CUDA initialised, as by the lesson's first cell
print({MARK!r} + json.dumps({{"pid": os.getpid(), "device": str(device), "share": get_ipython().mnist_lab_gpu_share}}))
"""


LESSON_TRAINING = f"""
model = build_model(config.model, seed=config.seed)
start = time.perf_counter()
history = fit(model, data, config, device, progress=False)
seconds = time.perf_counter() - start
cuda = device.type == "cuda"
print({MARK!r} + json.dumps({{"seconds": seconds, "accuracy": evaluate(model, data.X_test, data.y_test)[1],
      "epochs": len(history), "peak_reserved_mib": torch.cuda.max_memory_reserved() / 2**20 if cuda else 0.0,
      "peak_allocated_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else 0.0}}))
"""


class Bench:
    """What every part shares: the mode, the clock, the driver, the data, the kernels' environment, the results."""

    def __init__(self, args, data_root, workdir):
        import torch

        self.dry = args.dry or not torch.cuda.is_available()
        self.deadline = time.monotonic() + args.budget
        self.driver = Driver(enabled=not self.dry)
        self.data_root, self.workdir, self.json_path = data_root, workdir, Path(args.json)
        self.results = {"dry": self.dry, "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
                        "torch": torch.__version__, "cuda": torch.version.cuda, "python": sys.version.split()[0],
                        "gpu": self.driver.name(), "gpu_total_mib": self.driver.total_mib(),
                        "cpu_cores": usable_cores()}
        self.class_share = class_share()

    def left(self):
        return self.deadline - time.monotonic()

    def kernel_env(self, share, threads=None):
        """The environment of a lesson kernel: the repository's mnist_lab, MNIST, a share; default settings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MNIST_LAB_")}  # the lesson's defaults
        env.update({"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
                    "MNIST_LAB_DATA": str(self.data_root), SHARE_ENV: f"{share:g}"})
        if self.dry:  # one epoch on one thread: a small machine (CI) runs the dry mode alongside other work
            env.update(MNIST_LAB_EPOCHS="1", OMP_NUM_THREADS="1")
        elif threads:
            env["OMP_NUM_THREADS"] = str(threads)
        return env

    def kernels(self, shares, threads=None):
        """Start one kernel per share, all at once; return them when every one is ready."""
        started = [Kernel(self.kernel_env(share, threads), self.workdir) for share in shares]
        return [k.ready() for k in started]

    def record(self, part, value):
        self.results[part] = value
        self.json_path.parent.mkdir(parents=True, exist_ok=True)
        self.json_path.write_text(json.dumps(self.results, indent=1, ensure_ascii=False))


def usable_cores():
    """The CPU cores this process may use: its affinity, capped by a cgroup (v2) CPU quota (a container's --cpus)."""
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores


def class_share():
    """The share hub/.env gives each student by default (MAX_PER_GPU students per GPU)."""
    env = dict(line.split("=", 1) for line in (REPO / "hub" / ".env").read_text().splitlines()
               if line.strip() and not line.startswith("#"))
    return memory_share(env.get("GPU_MEMORY_SHARE", ""), int(env.get("MAX_PER_GPU", "1")))


# ---------------------------------------------------------------- part: the whole notebook and section 13

PROBE = """
import gc as _gc, json as _json, os as _os, torch as _torch
def _holders(ns):
    def holds(v, depth=0):
        if isinstance(v, (_torch.nn.Module, _torch.optim.Optimizer)) or (isinstance(v, _torch.Tensor) and v.is_cuda):
            return True
        items = v.values() if isinstance(v, dict) else v if isinstance(v, (list, tuple)) else ()
        return depth < 1 and any(holds(x, depth + 1) for x in items)
    return sorted(k for k, v in ns.items() if not k.startswith("_") and holds(v))
_gc.collect()
_cuda = _torch.cuda.is_initialized()
if _cuda and hasattr(_torch._C, "_cuda_clearCublasWorkspaces"):
    _torch._C._cuda_clearCublasWorkspaces()  # PyTorch's own, kept per stream: count only what the lesson holds
print(%r + _json.dumps({"%s": {"pid": _os.getpid(), "cuda": _cuda, "share": get_ipython().mnist_lab_gpu_share,
    "allocated_mib": _torch.cuda.memory_allocated() / 2**20 if _cuda else 0.0,
    "reserved_mib": _torch.cuda.memory_reserved() / 2**20 if _cuda else 0.0, "holding": _holders(globals())}}))
"""
DRY_DATA = f"""
import mnist_lab.data as _data
_load = _data.load_mnist
_data.load_mnist = lambda *args, **kwargs: _load(*args, **kwargs).head(*{DRY_SIZES})  # the dry mode's tiny data
"""


def probed_notebook(dry):
    """main.ipynb with probes (tagged, never timed): before section 5's first cell and after section 13's last."""
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    section, firsts, lasts = None, {}, {}
    for index, cell in enumerate(nb.cells):
        heading = re.search(r"^## (\d+)\.", cell.source, re.MULTILINE) if cell.cell_type == "markdown" else None
        if heading:
            section = int(heading.group(1))
        elif cell.cell_type == "code":
            firsts.setdefault(section, index)
            lasts[section] = index

    def probe(code):
        return nbformat.v4.new_code_cell(code, metadata={"tags": ["gpu-benchmark"]})

    cells = list(nb.cells)
    cells.insert(lasts[13] + 1, probe(PROBE % (MARK, "after_release")))
    cells.insert(firsts[5], probe(PROBE % (MARK, "before_training")))
    if dry:
        cells.insert(0, probe(DRY_DATA))
    nb.cells = cells
    return nb


def run_notebook(bench):
    """Execute the probed notebook; ``(seconds per section, total, probes, errors)``."""
    from nbclient import NotebookClient

    nb = probed_notebook(bench.dry)
    env = bench.kernel_env(bench.class_share)
    client = NotebookClient(nb, timeout=max(60, int(bench.left())), kernel_name="python3", allow_errors=True,
                            extra_arguments=[f"--config={KERNEL_CONFIG}"],
                            resources={"metadata": {"path": str(bench.workdir)}})
    times, probes, errors, section = {}, {}, [], "(before section 0)"
    start = time.perf_counter()
    with client.setup_kernel(env=env):
        for index, cell in enumerate(nb.cells):
            heading = re.search(r"^## (.+)$", cell.source, re.MULTILINE) if cell.cell_type == "markdown" else None
            section = heading.group(1) if heading else section
            if cell.cell_type != "code":
                continue
            t = time.perf_counter()
            client.execute_cell(cell, index, store_history=True)
            if "gpu-benchmark" in cell.metadata.get("tags", []):
                probes.update(figures_in("".join(o.get("text", "") for o in cell.outputs)))
                continue
            times[section] = times.get(section, 0.0) + time.perf_counter() - t
            errors += [f"{section}: {cell.source.splitlines()[0]}: {o.ename}: {o.evalue}"
                       for o in cell.outputs if o.output_type == "error"]
    return times, time.perf_counter() - start, probes, errors


def part_notebook(bench):
    baseline = bench.driver.used_mib()
    times, total, probes, errors = run_notebook(bench)  # the kernel is shut down on leaving
    before, after = probes.get("before_training", {}), probes.get("after_release", {})
    still_listed, left = bench.driver.released(after.get("pid"), baseline or 0.0) if bench.driver.nvml else (None, None)
    return {"sections_s": times, "total_s": total, "errors": errors, "share": bench.class_share,
            "section13": {"allocated_before_training_mib": before.get("allocated_mib"),
                          "allocated_after_release_mib": after.get("allocated_mib"),
                          "reserved_after_release_mib": after.get("reserved_mib"),
                          "back_to_before": back_to_before(before, after),
                          "still_holding_a_model": after.get("holding"),
                          "pid_listed_by_driver_after_shutdown": still_listed,
                          "device_used_after_shutdown_minus_before_mib": left}}


def back_to_before(before, after):
    """Section 13's promise: after the release cell, PyTorch holds what it held before training, and no variable
    still holds a model, an optimizer or a tensor on the GPU. ``None`` if a probe is missing."""
    if "allocated_mib" not in before or "allocated_mib" not in after:
        return None
    return after["allocated_mib"] == before["allocated_mib"] and not after["holding"]


# ---------------------------------------------------------------- part: the recipes (a worker process)

def recipe_runs(dry, device):
    """What the recipes part trains, in order: on the GPU quick x3 seeds with AMP on and off, original, best; then
    one epoch of each on the CPU for the per-epoch comparison."""
    gpu = [{"role": "gpu", "recipe": "quick", "seed": s, "device": device, "amp": amp}
           for amp in (True, False) for s in (0, 1, 2)]
    gpu += [{"role": "gpu", "recipe": r, "seed": 0, "device": device, "amp": True} for r in ("original", "best")]
    cpu = [{"role": "cpu", "recipe": r, "seed": 0, "device": "cpu", "amp": False, "epochs": 1}
           for r in ("quick", "original", "best")]
    if dry:  # enough to prove the path: one seed, one recipe on the CPU
        gpu, cpu = [run for run in gpu if run["seed"] == 0], cpu[:1]
    return gpu + cpu


def recipes_worker(spec):
    """Train every run of ``spec`` in this process; print each one's figures as soon as it is done."""
    from dataclasses import replace

    from mnist_lab.data import load_mnist
    from mnist_lab.recipes import make_config

    data = load_mnist(spec["root"], download=False)
    if spec["dry"]:
        data = data.head(*DRY_SIZES)
    for run in spec["runs"]:
        config = make_config(run["recipe"], seed=run["seed"], epochs=run.get("epochs"))
        if spec["dry"]:
            config = replace(config, epochs=1, val_size=min(config.val_size, DRY_SIZES[1]))
        with contextlib.nullcontext() if run["amp"] else float32_training():
            figures = train_once(data, config, run["device"])
        print(MARK + json.dumps({**run, **figures}), flush=True)


@contextlib.contextmanager
def float32_training():
    """AMP off: the package's ``mixed_precision`` answers "no autocast" on every device for the ``with`` block.
    ``RuntimeError`` if training never asked it (the switch would then prove nothing)."""
    import mnist_lab.inference
    import mnist_lab.train

    original, asked = mnist_lab.inference.mixed_precision, []

    def float32(device):
        asked.append(device)
        return original("cpu")

    mnist_lab.train.mixed_precision = mnist_lab.inference.mixed_precision = float32
    try:
        yield
    finally:
        mnist_lab.train.mixed_precision = mnist_lab.inference.mixed_precision = original
    if not asked:
        raise RuntimeError("AMP could not be switched off: mnist_lab.train no longer calls mixed_precision")


def train_once(data, config, device):
    """Train one model as ``mnist-lab train`` does; its training seconds, per-epoch seconds and test accuracy."""
    import torch

    from mnist_lab.inference import evaluate
    from mnist_lab.models import build_model
    from mnist_lab.train import fit

    model = build_model(config.model, seed=config.seed)
    start = time.perf_counter()
    history = fit(model, data, config, device, progress=False)
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "epoch_s": [r["seconds"] for r in history.records], "epochs": len(history),
            "accuracy": evaluate(model, data.X_test, data.y_test)[1]}


def part_recipes(bench):
    device = "cpu" if bench.dry else "cuda"
    spec = {"root": str(bench.data_root), "dry": bench.dry, "runs": recipe_runs(bench.dry, device)}
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    runs = []
    with tempfile.TemporaryFile("w+") as stderr:
        env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1" if bench.dry else str(usable_cores())}
        worker = subprocess.Popen([sys.executable, __file__, "--recipes-worker", json.dumps(spec)], text=True,
                                  stdout=subprocess.PIPE, stderr=stderr, env=env)
        timer = threading.Timer(max(10, bench.left()), worker.kill)  # what finished by then is kept
        timer.start()
        for line in worker.stdout:
            if line.startswith(MARK):
                runs.append(json.loads(line[len(MARK):]))
                bench.record("recipes", summarize_recipes(runs))
        timer.cancel()
        summary = summarize_recipes(runs)
        if worker.wait() != 0:
            stderr.seek(0)
            summary["error"] = f"worker exit {worker.returncode}: {stderr.read()[-1500:]}"
    return summary


def summarize_recipes(runs):
    """Per recipe: seconds, accuracy, seconds per epoch on the GPU and on the CPU; quick's seeds with AMP on/off."""
    cpu = {r["recipe"]: r for r in runs if r["role"] == "cpu"}
    out = {}
    for name in ("quick", "original", "best"):
        main = [r for r in runs if r["role"] == "gpu" and r["recipe"] == name and r["amp"]]
        if not main:
            continue
        per_epoch = statistics.mean(s for r in main for s in r["epoch_s"])
        row = {"seconds": statistics.mean(r["seconds"] for r in main), "epochs": main[0]["epochs"],
               "accuracy": statistics.mean(r["accuracy"] for r in main), "epoch_s": per_epoch,
               "accuracies": [r["accuracy"] for r in main]}
        if name in cpu:
            row["cpu_epoch_s"] = statistics.mean(cpu[name]["epoch_s"])
            row["gpu_not_slower"] = per_epoch <= row["cpu_epoch_s"]
        out[name] = row
    off = [r for r in runs if r["role"] == "gpu" and r["recipe"] == "quick" and not r["amp"]]
    if "quick" in out and off:
        on_acc, off_acc = out["quick"]["accuracies"], [r["accuracy"] for r in off]
        spread = max(max(on_acc) - min(on_acc), max(off_acc) - min(off_acc))
        delta = statistics.mean(on_acc) - statistics.mean(off_acc)
        out["amp"] = {"on_accuracy": statistics.mean(on_acc), "off_accuracy": statistics.mean(off_acc),
                      "on_seconds": out["quick"]["seconds"], "off_seconds": statistics.mean(r["seconds"] for r in off),
                      "difference": delta, "seed_spread": spread, "within_noise": abs(delta) <= max(spread, 0.001)}
    return out


# ---------------------------------------------------------------- part: students sharing one GPU

CPU_ONLY = f"""
import json, os, torch
from mnist_lab.data import load_mnist
from mnist_lab.models import build_model
scores = build_model(config.model)(load_mnist(download=False).X_test[:256])
print({MARK!r} + json.dumps({{"pid": os.getpid(), "cuda_initialized": torch.cuda.is_initialized()}}))
"""
OVER_SHARE_GPU = """
total = torch.cuda.get_device_properties(0).total_memory
free_before = torch.cuda.mem_get_info()[0]
x = torch.empty(int(total * ASK), dtype=torch.uint8, device="cuda")
"""
OVER_SHARE_DRY = """
total = free_before = 0
def fit_huge():
    X = torch.ones(1000, 28, 28)
    raise torch.OutOfMemoryError("CUDA out of memory (simulated: the dry mode has no GPU)")
fit_huge()
"""
AFTER_OOM = f"""
cuda = torch.cuda.is_initialized()
print({MARK!r} + json.dumps({{"reserved_mib": torch.cuda.memory_reserved() / 2**20 if cuda else 0.0,
      "still_computes": float(torch.ones(3, device=device).sum()) == 3.0, "asked_mib": total * ASK / 2**20,
      "free_before_mib": free_before / 2**20}}))
"""


def part_sharing(bench):
    """N = 1, 2, 4, 8 students training at once; the lone kernel first proves a CPU-only kernel holds no GPU
    memory, and the two kernels then play one student over their share."""
    rows = {}
    for n in (1, 2) if bench.dry else (1, 2, 4, 8):
        if bench.left() < 60:
            rows[n] = {"skipped": "out of time"}
            break
        rows[n] = share_gpu(bench, n)
        solo = rows[1].get("seconds_mean")
        rows[n]["slowdown"] = rows[n]["seconds_mean"] / solo if solo else None
        bench.record("sharing", rows)
    return rows


def share_gpu(bench, n):
    """``n`` lesson kernels, each with the share MAX_PER_GPU=n gives it, training the lesson at once."""
    share = memory_share("", n)
    baseline = bench.driver.used_mib()
    kernels = bench.kernels([share] * n, threads=max(1, usable_cores() // n))
    try:
        run_all(bench, kernels, lesson_settings_cell(), "settings")
        if n == 1:
            bench.record("cpu_only_kernel", cpu_only(bench, kernels[0], baseline))
        pids = [f["pid"] for f in run_all(bench, kernels, lesson_setup(bench.dry), "setup")]
        with Sampler(bench.driver) as sampler:
            found = run_all(bench, kernels, LESSON_TRAINING, "training")
        if n == 2:
            bench.record("over_share", over_share(bench, *kernels, pids[1]))
    finally:
        for k in kernels:
            k.close()
    seconds = [f["seconds"] for f in found]
    row = {"share": share, "seconds": seconds, "seconds_mean": statistics.mean(seconds),
           "accuracy": [f["accuracy"] for f in found], "peak_reserved_mib": [f["peak_reserved_mib"] for f in found],
           "driver_per_process_mib": [sampler.peak_per_pid.get(pid) for pid in pids]}
    if sampler.peak_used is not None:
        row["driver_device_per_student_mib"] = (sampler.peak_used - baseline) / n
    return row


def run_all(bench, kernels, code, what):
    """Run ``code`` in every kernel at once; the figures of each."""
    sent = [k.send(code) for k in kernels]
    return [checked(k.collect(m, bench.left()), what) for k, m in zip(kernels, sent)]


def cpu_only(bench, kernel, baseline):
    """The package on the CPU only (torch imported, a model run): no CUDA context, nothing on the GPU."""
    found = checked(kernel.run(CPU_ONLY, bench.left()), "CPU only")
    used = bench.driver.used_mib()
    return {"cuda_initialized": found["cuda_initialized"],
            "pid_listed_by_driver": found["pid"] in bench.driver.processes_mib() if bench.driver.nvml else None,
            "device_used_delta_mib": None if used is None else used - baseline}


def over_share(bench, a, b, b_pid):
    """While ``a`` trains the lesson, ``b`` asks for more than its share: one line for ``b``, ``a`` untouched."""
    ask = min(0.95, memory_share("", 2) + 0.15)
    with Sampler(bench.driver) as sampler:
        training = a.send(LESSON_TRAINING)
        time.sleep(1.0)  # a is training now
        status, _, text, errors = b.run((OVER_SHARE_DRY if bench.dry else OVER_SHARE_GPU).replace("ASK", str(ask)),
                                        bench.left())
        after = checked(b.run(AFTER_OOM.replace("ASK", str(ask)), bench.left()), "b after the error")
        a_status, a_found, _, a_errors = a.collect(training, bench.left())
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in (errors[0]["traceback"] if errors else [])]
    return {"share": memory_share("", 2), "asked_share": ask, "b_status": status, "b_error_lines": len(lines),
            "b_line": lines[0] if lines else text[-300:],
            "b_had_a_traceback": any("Traceback" in line or "File " in line for line in lines),
            "b_after": after, "b_driver_peak_mib": sampler.peak_per_pid.get(b_pid),
            "would_fit_without_the_cap": after["asked_mib"] < after["free_before_mib"] if not bench.dry else None,
            "a_status": a_status, "a_accuracy": a_found.get("accuracy"), "a_seconds": a_found.get("seconds"),
            "a_errors": [f"{e['ename']}: {e['evalue']}" for e in a_errors]}


# ---------------------------------------------------------------- the table

def fmt(value, unit="", digits=2):
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def table_rows(results):
    """``(part, what, value, goal)`` rows of the one table."""
    rows = []
    nb = results.get("notebook", {})
    for name, seconds in nb.get("sections_s", {}).items():
        rows.append(("notebook", name[:40], fmt(seconds, " s", 1), ""))
    if "total_s" in nb:
        met = nb["total_s"] <= GOALS["notebook_s"]
        rows.append(("notebook", "total (kernel start included)", fmt(nb["total_s"], " s", 1),
                     f"<= {GOALS['notebook_s']:.0f} s: {fmt(met)}"))
        rows.append(("notebook", "errors in cells", str(len(nb["errors"])), "0"))
        rows += section13_rows(nb["section13"])
    rows += recipe_rows(results.get("recipes", {}))
    for n, row in results.get("sharing", {}).items():
        if not isinstance(row, dict):
            continue
        if "seconds_mean" not in row:
            rows.append(("sharing", f"N = {n}", row.get("skipped", "not run"), ""))
            continue
        memory = (f"peak {max(row['peak_reserved_mib']):.0f} MiB/student "
                  f"(driver {fmt(row.get('driver_device_per_student_mib'), ' MiB', 0)})")
        rows.append(("sharing", f"N = {n} (share {row['share']:g})",
                     f"{fmt(row['seconds_mean'], ' s')}, x{fmt(row['slowdown'])}, {memory}", "slowdown, memory"))
    rows += over_share_rows(results.get("over_share", {}))
    if "cpu_only_kernel" in results:
        c = results["cpu_only_kernel"]
        rows.append(("sharing", "CPU-only kernel: CUDA / on the driver",
                     f"{fmt(c['cuda_initialized'])} / {fmt(c['pid_listed_by_driver'])}", "NO / NO"))
    for part, value in results.items():
        if isinstance(value, dict) and "error" in value:
            rows.append((part, "ERROR", value["error"].strip().splitlines()[-1][:100], ""))
    return rows


def section13_rows(s13):
    before, after = s13["allocated_before_training_mib"], s13["allocated_after_release_mib"]
    listed, left = s13["pid_listed_by_driver_after_shutdown"], s13["device_used_after_shutdown_minus_before_mib"]
    return [("section 13", "allocated before 5 / after release", f"{fmt(before, ' MiB', 1)} / {fmt(after, ' MiB', 1)}",
             f"back to before, nothing held: {fmt(s13['back_to_before'])}"),
            ("section 13", "still holding a model or optimizer", ", ".join(s13["still_holding_a_model"] or []) or "-",
             "nothing"),
            ("section 13", "after shutdown: listed / used vs before", f"{fmt(listed)} / {fmt(left, ' MiB', 0)}",
             "NO / ~0")]


def recipe_rows(rec):
    rows = []
    for name in ("quick", "original", "best"):
        if name not in rec:
            continue
        r, goal = rec[name], ""
        if name == "quick":
            met = r["seconds"] <= GOALS["quick_s"] and min(r["accuracies"]) >= GOALS["quick_accuracy"]
            goal = f"<= {GOALS['quick_s']:.0f} s at >= 99 %: {fmt(met)}"
        rows.append(("recipes", f"{name} ({r['epochs']} epochs): time, accuracy", f"{fmt(r['seconds'], ' s')}, {r['accuracy']:.2%}", goal))
        if "cpu_epoch_s" in r:
            rows.append(("recipes", f"{name}: s/epoch GPU vs CPU", f"{fmt(r['epoch_s'])} vs {fmt(r['cpu_epoch_s'])}",
                         f"GPU not slower: {fmt(r['gpu_not_slower'])}"))
    if "amp" in rec:
        a = rec["amp"]
        rows.append(("recipes", "quick AMP on / off: accuracy", f"{a['on_accuracy']:.2%} / {a['off_accuracy']:.2%}",
                     f"within the seeds' spread {a['seed_spread']:.2%}: {fmt(a['within_noise'])}"))
        rows.append(("recipes", "quick AMP on / off: seconds", f"{fmt(a['on_seconds'])} / {fmt(a['off_seconds'])}", ""))
    return rows


def over_share_rows(over):
    rows = []
    if "b_status" in over:
        rows += [("over share", f"B asks {over['asked_share']:.0%} (share {over['share']:g})",
                  f"{over['b_error_lines']} line: {over['b_line'][:50]}", "1 line, no traceback"),
                 ("over share", "A trains on untouched", f"{over['a_status']}, {fmt(over['a_accuracy'])}", "ok"),
                 ("over share", "B goes on after the line", fmt(over["b_after"].get("still_computes")), "yes")]
    return rows


def table_text(results):
    """The one table: a heading line (the GPU, the date), then one line per figure with its goal."""
    mode = "dry mode (CPU, tiny data)" if results["dry"] else f"{results['gpu']} ({fmt(results['gpu_total_mib'], ' MiB', 0)})"
    lines = [(f"benchmarks/gpu.py: {mode}, torch {results['torch']} (CUDA {results['cuda']}), Python "
              f"{results['python']}, {results['cpu_cores']} CPU cores, {results['started']}")]
    rows = table_rows(results)
    widths = [max(columns(r[i]) for r in rows) for i in range(3)] if rows else []
    for row in rows:
        lines.append(("  ".join(v + " " * (w - columns(v)) for v, w in zip(row, widths)) + "  " + row[3]).rstrip())
    return "\n".join(lines)


def columns(text):
    """Terminal columns of ``text``: a Japanese character takes two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in str(text))


# ---------------------------------------------------------------- preparing the GPU machine's carry

def prepare(carry):
    """Write ``carry``: wheels for CPython 3.12 on manylinux x86_64 of what the GPU machine lacks (resolved here with
    pip, pinned to the versions installed here), their requirements file, and MNIST gzipped."""
    from importlib.metadata import version

    carry = Path(carry)
    wheels = carry / "wheels"
    shutil.rmtree(carry, ignore_errors=True)
    wheels.mkdir(parents=True)
    target = ["--python-version", "3.12", "--implementation", "cp", "--abi", "cp312", "--only-binary=:all:",
              "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_28_x86_64", "--platform", "linux_x86_64"]
    tops = [f"{name}=={version(name)}" for name in JUPYTER]
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed", "--target",
                        scratch, "--report", str(report), *target, *tops], check=True)
        closure = [(item["metadata"]["name"], item["metadata"]["version"])
                   for item in json.loads(report.read_text())["install"]]
    carried = [f"{name}=={v}" for name, v in closure if canonical(name) not in ON_THE_GPU_MACHINE]
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", str(wheels), *target,
                    *carried], check=True)
    (carry / "requirements.txt").write_text("\n".join(tops) + "\n")
    raw = carry / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    from mnist_lab.data import RAW_FILES, ensure_mnist, mnist_folder, raw_dir

    source = raw_dir(ensure_mnist(mnist_folder(), download=False))
    for name in RAW_FILES:
        with open(source / name, "rb") as f, gzip.open(raw / f"{name}.gz", "wb", compresslevel=9) as g:
            shutil.copyfileobj(f, g)
    size = sum(p.stat().st_size for p in carry.rglob("*") if p.is_file())
    print(f"{carry}: {len(list(wheels.iterdir()))} wheels for CPython 3.12 + MNIST, {size / 2**20:.1f} MiB. "
          f"On the GPU machine run the one line in this file's docstring.")


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def mnist_root(folder, scratch):
    """A data root holding MNIST's four raw files: ``folder`` itself, or its gzipped files unpacked into ``scratch``."""
    from mnist_lab.data import RAW_FILES, mnist_folder, raw_dir

    root = mnist_folder(folder)
    if all((raw_dir(root) / name).is_file() for name in RAW_FILES):
        return root
    unpacked = raw_dir(scratch)
    unpacked.mkdir(parents=True, exist_ok=True)
    for name in RAW_FILES:
        with gzip.open(raw_dir(root) / f"{name}.gz", "rb") as g, open(unpacked / name, "wb") as f:
            shutil.copyfileobj(g, f)
    return Path(scratch)


# ---------------------------------------------------------------- main

def cpu_seconds():
    """CPU seconds used so far by this process and its finished children (kernels, the worker)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


PARTS = {"notebook": part_notebook, "sharing": part_sharing, "recipes": part_recipes}  # recipes last: cut short, it
# keeps every run finished by then


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default="gpu.json", help="where to write the figures (default: gpu.json)")
    parser.add_argument("--data", default=None, help="MNIST (raw or gzipped; default: $MNIST_LAB_DATA, else ./mnist_data)")
    parser.add_argument("--budget", type=float, default=480, help="seconds for the whole run (default: 480)")
    parser.add_argument("--dry", action="store_true", help="the dry mode even with CUDA (default: only without)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help=f"the parts to run (default: all: {' '.join(PARTS)})")
    parser.add_argument("--prepare", metavar="DIR", help="write the GPU machine's carry to DIR and stop")
    parser.add_argument("--recipes-worker", metavar="SPEC", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.recipes_worker:
        return recipes_worker(json.loads(args.recipes_worker)) or 0
    if args.prepare:
        return prepare(args.prepare) or 0
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        homes = {"IPYTHONDIR": "ipython", "JUPYTER_RUNTIME_DIR": "runtime", "JUPYTER_DATA_DIR": "data-dir",
                 "JUPYTER_CONFIG_DIR": "config-dir", "MPLCONFIGDIR": "matplotlib"}  # a home that may be read-only
        for name, folder in homes.items():
            (scratch / folder).mkdir()
            os.environ.setdefault(name, str(scratch / folder))
        (scratch / "work").mkdir()
        bench = Bench(args, mnist_root(args.data, scratch / "data"), scratch / "work")
        for name in args.parts:
            started, cpu = time.perf_counter(), cpu_seconds()
            try:
                result = PARTS[name](bench) if bench.left() > 30 else {"skipped": "out of time"}
            except Exception:  # noqa: BLE001 - one part's failure must not cost the others' figures
                result = {**bench.results.get(name, {}), "error": traceback.format_exc()}
            result.update(part_s=time.perf_counter() - started, cpu_s=cpu_seconds() - cpu)  # cpu_s: this and children
            bench.record(name, result)
        table = table_text(bench.results)
        print("\n" + table + f"\nfigures: {bench.json_path}")
        bench.json_path.with_suffix(".txt").write_text(table + "\n")
    return 1 if any(isinstance(v, dict) and "error" in v for v in bench.results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
