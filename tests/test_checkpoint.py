import pytest
import torch

from mnist_lab import UserError, build_model, load_checkpoint, predict_proba, save_checkpoint
from mnist_lab.checkpoint import read_checkpoint


@pytest.mark.parametrize("name", ["original", "ensemble"])
def test_roundtrip_predicts_the_same(tmp_path, name):
    model = build_model(name, seed=0).eval()
    path = save_checkpoint(tmp_path / "a" / "model.pt", model, {"lr": 0.01}, {"test_accuracy": 0.5})
    loaded, ckpt = load_checkpoint(path)
    X = torch.randn(8, 1, 28, 28)
    assert torch.equal(predict_proba(model, X), predict_proba(loaded, X))
    assert ckpt["config"] == {"lr": 0.01} and ckpt["metrics"] == {"test_accuracy": 0.5} and ckpt["model"] == name


def test_checkpoint_holds_only_plain_data(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", build_model("quick"))
    ckpt = torch.load(path, weights_only=True)  # would raise if anything but tensors and plain data were inside
    assert set(ckpt) == {"format", "model", "state_dict", "config", "metrics"}


def test_loading_into_another_architecture_is_explained(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", build_model("quick"))
    with pytest.raises(UserError, match="'quick' モデルのチェックポイント"):
        load_checkpoint(path, model=build_model("original"))


def test_mismatched_weights_are_explained(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(path, build_model("quick"))
    ckpt = torch.load(path, weights_only=True)
    ckpt["model"] = "original"  # a quick model's weights labelled as original
    torch.save(ckpt, path)
    with pytest.raises(UserError, match="形に合いません"):
        load_checkpoint(path)


def test_pickled_model_is_refused(tmp_path):
    path = tmp_path / "pickled.pt"
    torch.save(build_model("original"), path)  # the seed scripts' habit: a whole pickled model
    with pytest.raises(UserError, match="読めません"):
        read_checkpoint(path)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", b"\x80\x04K\x01."])
def test_garbage_is_refused(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(UserError, match="mnist_lab のチェックポイント"):
        read_checkpoint(path)


def test_foreign_state_dict_is_refused(tmp_path):
    path = tmp_path / "sd.pt"
    torch.save(build_model("original").state_dict(), path)
    with pytest.raises(UserError, match="ではありません"):
        read_checkpoint(path)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="見つかりません"):
        read_checkpoint(tmp_path / "none.pt")


def test_only_registered_models_can_be_saved(tmp_path):
    with pytest.raises(ValueError, match="not a registered model"):
        save_checkpoint(tmp_path / "m.pt", torch.nn.Linear(2, 2))


@pytest.mark.parametrize("odd", [{"model": ["quick"]}, {"model": "quick", "state_dict": [1, 2]},
                                 {"model": "quick", "state_dict": {"fc.weight": "not a tensor"}}])
def test_odd_contents_are_refused_as_not_ours(tmp_path, odd):
    from mnist_lab.checkpoint import FORMAT

    path = tmp_path / "odd.pt"
    torch.save({"format": FORMAT, **odd}, path)
    with pytest.raises(UserError, match="チェックポイント|形に合いません"):
        load_checkpoint(path)


def test_checkpoints_of_the_old_seed_model_still_load(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", build_model("original"))
    ckpt = torch.load(path, weights_only=True)
    ckpt["model"] = "seed"  # what earlier versions wrote for this architecture
    torch.save(ckpt, path)
    model, info = load_checkpoint(path)
    assert info["model"] == "original" and type(model).__name__ == "OriginalCNN"


def test_the_notebook_mistakes_are_one_line(tmp_path):
    """Arguments swapped, a model where a file name goes, a device this machine does not have."""
    model = build_model("quick")
    path = save_checkpoint(tmp_path / "m.pt", model)
    for call in (lambda: save_checkpoint(model, tmp_path / "x.pt"), lambda: load_checkpoint(model),
                 lambda: load_checkpoint(path, device="cuda:7" if torch.cuda.is_available() else "cuda")):
        with pytest.raises(UserError) as caught:
            call()
        assert "\n" not in str(caught.value)
    assert not (tmp_path / "x.pt").exists()
