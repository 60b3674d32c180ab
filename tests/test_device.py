import pytest
import torch

from mnist_lab import UserError, best_device, describe_device, free_gpu_memory, gpu_memory_mib


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert best_device() == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("mnist_lab.device._mps_available", lambda: True)
    assert best_device() == torch.device("mps")
    monkeypatch.setattr("mnist_lab.device._mps_available", lambda: False)
    assert best_device() == torch.device("cpu") == best_device("cpu")


def test_unknown_device_is_a_user_error():
    with pytest.raises(UserError, match="tpu"):
        best_device("tpu")


def test_asking_for_a_missing_gpu_explains_what_to_do(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("mnist_lab.device._mps_available", lambda: False)
    with pytest.raises(UserError, match="--device cpu"):
        best_device("cuda")
    with pytest.raises(UserError, match="MPS"):
        best_device("mps")
    assert gpu_memory_mib() == {"allocated": 0.0, "reserved": 0.0}
    assert free_gpu_memory() == {"allocated": 0.0, "reserved": 0.0}


def test_describe_cpu():
    assert describe_device("cpu") == f"cpu ({torch.get_num_threads()} threads)"


def test_a_model_passed_to_free_gpu_memory_is_one_line():
    """``free_gpu_memory(model)``: the variable still holds the model, so nothing could be freed; said in one line."""
    from invariants import assert_japanese_message

    with pytest.raises(UserError) as refused:
        free_gpu_memory(torch.nn.Linear(2, 2))
    assert_japanese_message(refused.value)
