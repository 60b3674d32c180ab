"""Each student's share of the GPU's memory, on a machine without a GPU: the setting's plumbing from .env and
hub/.env into every kernel of both serving modes (and the Kubernetes values), and a real IPython kernel started as
the image starts it (docker/ipython_kernel_config.py + the environment): the share arrives, nothing CUDA-related
happens while the kernel never uses the GPU, the cap is queued for CUDA's initialisation, and a CUDA out-of-memory
error becomes one Japanese line and gives the failed cell's memory back. On a GPU: benchmarks/gpu.py."""

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from test_docker import compose_config, fake_server, student_starts
from test_hub_config import compose_hub, hub_env, load_config

from mnist_lab_deploy import gpu_share, make_env
from mnist_lab_deploy.gpu_policy import memory_share

REPO = Path(__file__).resolve().parents[1]
KERNEL_CONFIG = REPO / "docker" / "ipython_kernel_config.py"


def test_the_share_divides_the_gpu_among_its_students_with_a_margin():
    shares = {n: memory_share("", n) for n in (1, 2, 4, 8)}
    assert shares[1] == 1.0  # alone on the GPU: no cap
    for n in (2, 4, 8):
        assert 0.85 <= shares[n] * n <= 0.9  # what is left covers n CUDA contexts
    assert memory_share("0.3", 4) == 0.3
    for bad in ("0", "-0.1", "1.5", "half", "nan"):
        with pytest.raises(ValueError, match="GPU_MEMORY_SHARE") as refused:
            memory_share(bad, 4)
        assert "\n" not in str(refused.value)


def test_make_env_writes_the_share_from_the_cap_or_as_asked(tmp_path, monkeypatch):
    state = fake_server(tmp_path, monkeypatch, "0, 81000\n1, 81000")
    assert student_starts(tmp_path, monkeypatch, state, "aoi", 2600)["GPU_MEMORY_SHARE"] == "1"
    capped = student_starts(tmp_path, monkeypatch, state, "ren", 2601, "--max-per-gpu", "4")
    assert float(capped["GPU_MEMORY_SHARE"]) == memory_share("", 4)
    asked = student_starts(tmp_path, monkeypatch, state, "sora", 2602, "--max-per-gpu", "4", "--gpu-share", "0.5")
    assert asked["GPU_MEMORY_SHARE"] == "0.5"
    with pytest.raises(SystemExit) as refused:
        student_starts(tmp_path, monkeypatch, state, "mio", 2603, "--gpu-share", "2")
    assert "--gpu-share" in str(refused.value) and "\n" not in str(refused.value)


def test_compose_passes_the_share_into_the_container(tmp_path):
    env = make_env.env_text(make_env.student_env("hanako", 1234, 1234, 8801, "f" * 48, 1, gpu_share=0.45))
    result = compose_config(tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["services"]["jupyter"]["environment"][gpu_share.ENV] == "0.45"
    old = "\n".join(line for line in env.splitlines() if not line.startswith("GPU_MEMORY_SHARE="))  # an older .env
    refused = compose_config(tmp_path, old)  # no default: compose names what is missing
    assert refused.returncode != 0 and "GPU_MEMORY_SHARE" in refused.stderr


def test_the_hub_gives_every_students_server_the_share_of_hub_env(monkeypatch):
    expected = memory_share(hub_env()["GPU_MEMORY_SHARE"], int(hub_env()["MAX_PER_GPU"]))
    spawner = load_config(monkeypatch)["c"].DockerSpawner
    assert float(spawner.environment[gpu_share.ENV]) == expected < 1
    assert load_config(monkeypatch, MAX_PER_GPU="8")["c"].DockerSpawner.environment[gpu_share.ENV] == "0.112"
    assert load_config(monkeypatch, GPU_MEMORY_SHARE="0.5")["c"].DockerSpawner.environment[gpu_share.ENV] == "0.5"
    with pytest.raises(SystemExit, match="hub/.env"):
        load_config(monkeypatch, GPU_MEMORY_SHARE="2")
    hub = json.loads(compose_hub(GPU_MEMORY_SHARE="0.3", HUB_ADMIN="teacher").stdout)["services"]["hub"]
    assert hub["environment"]["GPU_MEMORY_SHARE"] == "0.3"  # hub/.env reaches the hub's config


def test_the_kubernetes_values_give_the_same_share():
    import yaml

    from mnist_lab_deploy import kube

    values = yaml.safe_load(kube.VALUES.read_text())
    env = hub_env()
    share = float(values["singleuser"]["extraEnv"][gpu_share.ENV])
    assert share == memory_share(env["GPU_MEMORY_SHARE"], int(env["MAX_PER_GPU"]))
    assert [line.split(":")[0] for line in kube.disagreements(values, {**env, "MAX_PER_GPU": "8"})] == [
        f"singleuser.extraEnv.{gpu_share.ENV}"]  # the check follows MAX_PER_GPU too


def test_every_kernel_of_a_venv_like_the_images_loads_the_share(tmp_path, monkeypatch):
    """The image's way, not --config: the config in <venv>/etc/ipython/ (Dockerfile), read by IPython itself, and
    mnist_lab_deploy in the venv's site-packages (docker/install.sh), found without any search path of ours."""
    import shutil
    import subprocess
    import sysconfig

    from jupyter_client.manager import start_new_kernel

    copies = [line for line in (REPO / "Dockerfile").read_text().splitlines() if "/opt/venv/etc/ipython/" in line]
    assert copies == ["COPY docker/ipython_kernel_config.py /opt/venv/etc/ipython/"]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    (venv / "etc" / "ipython").mkdir(parents=True)
    shutil.copy(REPO / "docker" / "ipython_kernel_config.py", venv / "etc" / "ipython")
    site = sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)})
    shutil.copytree(REPO / "mnist_lab_deploy", Path(site) / "mnist_lab_deploy")
    spec = tmp_path / "share" / "jupyter" / "kernels" / "venv"
    spec.mkdir(parents=True)
    argv = [str(venv / "bin" / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "venv", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share" / "jupyter"))
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    km, kc = start_new_kernel(kernel_name="venv", env={**env, gpu_share.ENV: "0.3"}, startup_timeout=120,
                              cwd=str(tmp_path))  # not the checkout: only the venv holds mnist_lab_deploy
    try:
        status, said, _ = run(kc, "import sys, mnist_lab_deploy; print(sys.prefix, get_ipython().mnist_lab_gpu_share, "
                                  "mnist_lab_deploy.__file__.startswith(sys.prefix))")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert (status, said.split()) == ("ok", [str(venv), "0.3", "True"])


@pytest.mark.parametrize("share, total, held", [(0.225, 141e9, 30e9), (0.5, None, 0), (None, 80e9, 79e9)])
def test_the_out_of_memory_message_is_one_line_with_the_students_share(share, total, held):
    line = gpu_share.out_of_memory_message(share, total, held)
    assert "\n" not in line and "Traceback" not in line
    if share and total:
        assert f"{share * total / 1e9:.1f}" in line and f"{held / 1e9:.1f}" in line


@contextmanager
def kernel(env):
    """A real IPython kernel started as the image starts one: docker/ipython_kernel_config.py and ``env``."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", extra_arguments=[f"--config={KERNEL_CONFIG}"],
                              env={**os.environ, **env}, startup_timeout=120)
    try:
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def run(kc, code):
    """Execute ``code``; return ``(status, stdout text, error outputs)``."""
    out, errors = [], []

    def hook(msg):
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            errors.append(msg["content"])

    reply = kc.execute_interactive(code, output_hook=hook, timeout=120)
    return reply["content"]["status"], "".join(out), errors


SIMULATED_GPU = """
import types, torch
from mnist_lab_deploy import gpu_share
calls = []
torch.cuda.set_per_process_memory_fraction = lambda share, device=None: calls.append(share)
for call, _ in torch.cuda._queued_calls:  # what PyTorch runs when it initialises CUDA (ours only: no driver here)
    if getattr(call, "func", None) is gpu_share.cap_memory:
        call()
torch.cuda.is_initialized = lambda: True  # from here on: an 80 GB GPU on which this kernel holds 19.5 GB
torch.cuda.current_device = lambda: 0
torch.cuda.get_device_properties = lambda device: types.SimpleNamespace(total_memory=80e9)
torch.cuda.memory_reserved = lambda device=None: 19.5e9
torch.cuda.empty_cache = lambda: calls.append("empty_cache")
"""

HUGE_BATCH = """
import weakref
def fit(batch_size):
    X = torch.ones(batch_size, 28, 28)  # the batch that did not fit
    probe.append(weakref.ref(X))
    raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {batch_size * 3136 / 2**30:.2f} GiB")
probe = []
fit(100_000)
"""


def test_a_kernel_gets_its_share_lazily_and_a_student_over_it_gets_one_line():
    with kernel({gpu_share.ENV: "0.25"}) as kc:
        status, said, _ = run(kc, "import sys; print('torch' in sys.modules, get_ipython().mnist_lab_gpu_share)")
        assert (status, said.split()) == ("ok", ["False", "0.25"])  # the share arrived; torch is not even loaded
        status, said, _ = run(kc, "import torch\nprint(float((torch.ones(64, 64) @ torch.ones(64, 64)).sum()), "
                                  "torch.cuda.is_initialized())")
        assert (status, said.split()) == ("ok", ["262144.0", "False"])  # lesson code on the CPU: no CUDA at all
        status, _, _ = run(kc, SIMULATED_GPU)
        assert status == "ok"
        assert run(kc, "print(calls)")[1].strip() == "[0.25]"  # the cap is applied when CUDA initialises
        status, said, errors = run(kc, HUGE_BATCH)
        assert status == "error" and len(errors) == 1
        (line,) = errors[0]["traceback"]  # one line, no frames
        assert "20.0" in line and "19.5" in line and "Traceback" not in line and "fit(" not in line
        status, said, _ = run(kc, "print(probe[0]() is None, calls[-1], float(torch.ones(2).sum()))")
        assert said.split() == ["True", "empty_cache", "2.0"]  # the batch was freed; the kernel goes on


def test_a_kernel_without_a_share_gets_no_cap_but_the_same_one_line():
    with kernel({gpu_share.ENV: ""}) as kc:
        status, _, _ = run(kc, SIMULATED_GPU)
        assert status == "ok" and run(kc, "print(calls)")[1].strip() == "[]"
        status, _, errors = run(kc, HUGE_BATCH)
        (line,) = errors[0]["traceback"]
        assert status == "error" and "19.5" in line and "Traceback" not in line
