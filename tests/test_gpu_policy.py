"""The GPU policy of mnist_lab_deploy/gpu_policy.py, on fake lists of GPUs: spread, capped, kept; nvidia-smi's output parsed
or refused in one line."""

import re
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mnist_lab_deploy.gpu_policy import GPU, choose_gpu, parse_nvidia_smi


def class_arrives(gpus, n, max_per_gpu=None):
    """Students start one after another; return the GPU each was given."""
    given_to = []
    for _ in range(n):
        given_to.append(choose_gpu(gpus, [g for g in given_to if g is not None], max_per_gpu))
    return given_to


def test_an_idle_four_gpu_server_gives_three_students_three_gpus():
    assert class_arrives([GPU(i, 80_000) for i in range(4)], 3) == [0, 1, 2]


def test_ties_go_to_the_gpu_with_more_free_memory():
    gpus = [GPU(0, 10_000), GPU(1, 70_000), GPU(2, 40_000)]
    assert class_arrives(gpus, 3) == [1, 2, 0]


def test_no_gpu_takes_more_than_the_maximum():
    gpus = [GPU(0), GPU(1)]
    assert class_arrives(gpus, 5, max_per_gpu=2) == [0, 1, 0, 1, None]


def test_a_student_keeps_their_gpu_unless_it_is_full_or_gone():
    gpus = [GPU(0), GPU(1), GPU(2)]
    assert choose_gpu(gpus, [0, 0, 1], previous=0) == 0  # fewest would be 2: kept anyway
    assert choose_gpu(gpus, [0, 0], max_per_gpu=2, previous=0) == 1  # full now: moved
    assert choose_gpu([GPU(0), GPU(1)], [], previous=5) == 0  # that GPU is gone


@given(st.lists(st.integers(0, 100_000), min_size=1, max_size=8), st.integers(0, 40), st.integers(1, 6))
def test_students_are_spread_evenly_and_never_over_the_cap(free, n, cap):
    gpus = [GPU(i, f) for i, f in enumerate(free)]
    given_to = class_arrives(gpus, n, max_per_gpu=cap)
    load = Counter(g for g in given_to if g is not None)
    assert max(load.values(), default=0) <= cap
    assert given_to.count(None) == max(0, n - cap * len(gpus))
    assert max(load[g.index] for g in gpus) - min(load[g.index] for g in gpus) <= 1  # even spread


def test_nvidia_smi_output_is_read_and_its_errors_are_refused():
    assert parse_nvidia_smi("0, 81000\n 1, 500 \n") == [GPU(0, 81000), GPU(1, 500)]
    error = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure ..."
    with pytest.raises(ValueError, match="couldn't communicate"):
        parse_nvidia_smi(error + "\n")
    assert parse_nvidia_smi("") == []


def test_the_servers_gpus_are_read_one_way_for_make_env_and_the_hub(tmp_path, monkeypatch):
    from mnist_lab_deploy.gpu_policy import NvidiaSmiError, server_gpus

    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi: a server without NVIDIA GPUs
    assert server_gpus() == []
    fake = tmp_path / "nvidia-smi"
    for said, code in (("0, 81000\n1, 20000", 0), ("NVIDIA-SMI has failed", 9), ("No devices were found?", 0)):
        fake.write_text(f"#!/bin/sh\necho '{said}'\nexit {code}\n")
        fake.chmod(0o755)
        if code == 0 and said[0].isdigit():
            assert server_gpus() == [GPU(0, 81000), GPU(1, 20000)]
        else:
            with pytest.raises(NvidiaSmiError, match=said.split()[0]):
                server_gpus()


def test_a_warning_before_the_list_is_passed_over_and_an_unknown_free_memory_counts_as_none():
    said = "WARNING: infoROM is corrupted at gpu 0000:41:00.0\n0, 81000\n1, [N/A]\n"
    assert parse_nvidia_smi(said) == [GPU(0, 81000), GPU(1, 0)]


def test_a_hanging_nvidia_smi_is_one_error_the_callers_already_catch(tmp_path, monkeypatch):
    from mnist_lab_deploy import gpu_policy

    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\nexec sleep 30\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    real_run = gpu_policy.subprocess.run
    monkeypatch.setattr(gpu_policy.subprocess, "run", lambda *a, **k: real_run(*a, **{**k, "timeout": 0.5}))
    with pytest.raises(gpu_policy.NvidiaSmiError) as failed:
        gpu_policy.server_gpus()
    assert "\n" not in str(failed.value) and re.search(r"[\u3040-\u30ff]", str(failed.value))


@pytest.mark.parametrize("max_per_gpu", [0, -1, 901, 10**6])
def test_a_maximum_per_gpu_that_would_leave_no_cap_is_refused(max_per_gpu):
    from mnist_lab_deploy.gpu_policy import memory_share

    with pytest.raises(ValueError):
        memory_share("", max_per_gpu)
    assert 0 < memory_share("", 900) < memory_share("", 4) < 1
