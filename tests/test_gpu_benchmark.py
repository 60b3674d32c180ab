"""benchmarks/gpu.py keeps working without a GPU: its dry mode (tiny data, CPU, N = 1, 2, a simulated out-of-memory
error) runs every part end to end, as the GPU run will; the driver's readings and the carried MNIST are read right."""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import gpu  # benchmarks/gpu.py


def test_the_dry_mode_runs_every_part_end_to_end(mnist_root, tmp_path):
    out = tmp_path / "gpu.json"
    env = {**os.environ, "MNIST_LAB_DATA": str(mnist_root), "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu.py"), "--dry", "--json", str(out)],
                            capture_output=True, text=True, env=env, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["dry"] is True and not [k for k, v in figures.items() if isinstance(v, dict) and "error" in v]

    notebook = figures["notebook"]
    assert {int(name.split(".")[0]) for name in notebook["sections_s"]} == set(range(1, 14))  # 0 has no code
    assert notebook["errors"] == [] and notebook["total_s"] >= sum(notebook["sections_s"].values())
    s13 = notebook["section13"]
    assert s13["allocated_after_release_mib"] == s13["allocated_before_training_mib"] == 0.0  # no CUDA here
    assert isinstance(s13["still_holding_a_model"], list)

    recipes = figures["recipes"]
    for name in ("quick", "original", "best"):
        assert 0 <= recipes[name]["accuracy"] <= 1 and recipes[name]["seconds"] > 0
    assert recipes["quick"]["cpu_epoch_s"] > 0 and isinstance(recipes["amp"]["within_noise"], bool)

    sharing = figures["sharing"]
    assert [len(sharing[n]["seconds"]) for n in ("1", "2")] == [1, 2] and sharing["1"]["slowdown"] == 1.0
    assert sharing["2"]["share"] == gpu.memory_share("", 2) < 1 == sharing["1"]["share"]
    assert figures["cpu_only_kernel"]["cuda_initialized"] is False

    over = figures["over_share"]
    assert over["b_status"] == "error" and over["b_error_lines"] == 1 and not over["b_had_a_traceback"]
    assert over["a_status"] == "ok" and over["a_errors"] == [] and over["b_after"]["still_computes"] is True
    assert "total (kernel start included)" in result.stdout and "N = 2" in result.stdout


class FakeNVML:
    """nvidia-ml-py as benchmarks/gpu.py calls it: one 80 GiB GPU, its memory and processes."""

    def __init__(self):
        self.used, self.processes = 2**30, {}

    def nvmlInit(self):
        pass

    def nvmlDeviceGetHandleByIndex(self, index):
        return f"gpu{index}"

    def nvmlDeviceGetName(self, handle):
        return b"NVIDIA Fake"

    def nvmlDeviceGetMemoryInfo(self, handle):
        return SimpleNamespace(used=self.used, total=80 * 2**30)

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        return [SimpleNamespace(pid=pid, usedGpuMemory=None if mib is None else mib * 2**20)
                for pid, mib in self.processes.items()]


def test_the_driver_readings(monkeypatch):
    nvml = FakeNVML()
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    driver = gpu.Driver()
    assert driver.name() == "NVIDIA Fake" and driver.total_mib() == 80 * 1024 and driver.used_mib() == 1024
    nvml.processes = {42: 512.0, 43: None}
    assert driver.processes_mib() == {42: 512.0, 43: 0.0}
    nvml.processes, nvml.used = {}, 2**30 + 3 * 2**20
    assert driver.released(42, 1024.0, seconds=1) == (False, 3.0)
    assert gpu.Driver(enabled=False).used_mib() is None


def test_the_carried_mnist_is_unpacked(tmp_path):
    raw = tmp_path / "carry" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    from mnist_lab.data import RAW_FILES

    for name in RAW_FILES:
        with gzip.open(raw / f"{name}.gz", "wb") as f:
            f.write(name.encode())
    root = gpu.mnist_root(tmp_path / "carry", tmp_path / "scratch")
    assert {p.name: p.read_bytes() for p in (root / "MNIST" / "raw").iterdir()} == {n: n.encode() for n in RAW_FILES}
    assert gpu.mnist_root(root, tmp_path / "unused") == root  # raw files are used as they are


def test_section_13s_promise_needs_the_memory_back_and_nothing_held():
    before = {"allocated_mib": 0.0, "holding": []}
    assert gpu.back_to_before(before, {"allocated_mib": 0.0, "holding": []}) is True
    assert gpu.back_to_before(before, {"allocated_mib": 12.5, "holding": []}) is False
    assert gpu.back_to_before(before, {"allocated_mib": 0.0, "holding": ["models"]}) is False
    assert gpu.back_to_before(before, {}) is None
