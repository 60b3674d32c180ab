import json

import pytest
import torch

from mnist_lab import History, UserError, build_model, evaluate, fit, make_config, predict_proba
from mnist_lab.data import MNISTData


def tiny_data(n=256, seed=0):
    """Separable toy data: the label is written as a bright column, so a model can learn it in a few steps."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    X = torch.randn(n, 1, 28, 28, generator=g) * 0.1
    X[torch.arange(n), 0, :, 2 * y + 4] += 3
    empty = X[:0]
    return MNISTData(X[: n * 3 // 4], y[: n * 3 // 4], empty, y[:0], X[n * 3 // 4:], y[n * 3 // 4:])


def test_presets_match_their_documents():
    seed = make_config("seed")
    assert (seed.model, seed.epochs, seed.batch_size, seed.lr, seed.schedule) == ("seed", 10, 64, 0.01, "constant")
    assert make_config("quick", epochs=3, lr=None).epochs == 3


@pytest.mark.parametrize("overrides, match", [
    ({"epochs": 0}, "epochs"), ({"batch_size": -1}, "batch_size"), ({"lr": 0.0}, "lr"),
    ({"model": "vgg"}, "vgg"), ({"schedule": "cosine"}, "cosine"), ({"val_size": -5}, "val_size"),
])
def test_bad_settings_are_user_errors(overrides, match):
    with pytest.raises(UserError, match=match):
        make_config("quick", **overrides)


def test_unknown_preset():
    with pytest.raises(UserError, match="プリセット 'fast'"):
        make_config("fast")


def test_fit_records_every_epoch_and_learns(capsys):
    data = tiny_data()
    config = make_config("quick", epochs=3, batch_size=32)
    history = fit(build_model("quick", seed=0), data, config, device="cpu", progress=False)
    assert len(history) == 3 and not history.interrupted and history.eval_split == "test"
    assert set(history.records[0]) == {"epoch", "train_loss", "train_accuracy", "eval_loss", "eval_accuracy",
                                       "seconds", "lr"}
    assert history.column("eval_accuracy")[-1] > 0.9
    assert history.column("train_loss")[-1] < history.column("train_loss")[0]
    assert capsys.readouterr().out.count("学習デバイス: cpu") == 1


def test_same_seed_same_metrics_on_cpu():
    data = tiny_data()
    config = make_config("quick", epochs=2, batch_size=16, seed=5)
    runs = [fit(build_model("quick", seed=5), data, config, device="cpu", progress=False) for _ in range(2)]
    assert runs[0].records[-1]["eval_loss"] == runs[1].records[-1]["eval_loss"]
    assert runs[0].column("train_loss") == runs[1].column("train_loss")
    other = fit(build_model("quick", seed=6), data, make_config("quick", epochs=2, batch_size=16, seed=6),
                device="cpu", progress=False)
    assert other.column("train_loss") != runs[0].column("train_loss")


def test_ctrl_c_keeps_the_finished_epochs(capsys):
    def interrupt_after_two(history):
        if len(history) == 2:
            raise KeyboardInterrupt

    model = build_model("quick", seed=0)
    history = fit(model, tiny_data(), make_config("quick", epochs=5, batch_size=64), device="cpu",
                  progress=False, on_epoch_end=interrupt_after_two)
    assert history.interrupted and len(history) == 2
    assert "中断しました" in capsys.readouterr().out
    assert not model.training


def test_history_json_roundtrip(tmp_path):
    history = History(records=[{"epoch": 1, "eval_accuracy": 0.5}], eval_split="val", interrupted=True)
    history.save(tmp_path / "h.json")
    assert History.from_dict(json.loads((tmp_path / "h.json").read_text())) == history


def test_evaluate_and_predict_agree():
    data = tiny_data()
    model = build_model("seed", seed=0)
    loss, acc = evaluate(model, data.X_test, data.y_test, batch_size=7)
    probs = predict_proba(model, data.X_test, batch_size=5)
    assert probs.shape == (64, 10) and torch.allclose(probs.sum(1), torch.ones(64))
    assert acc == (probs.argmax(1) == data.y_test).float().mean().item()
    assert loss == pytest.approx(torch.nn.functional.nll_loss(probs.log(), data.y_test).item(), rel=1e-4)


def test_quick_preset_on_real_mnist_is_far_above_chance(trained, mnist):
    model, history, _ = trained
    assert len(history) == 1
    assert history.records[-1]["train_accuracy"] > 0.9
    assert evaluate(model, mnist.X_test, mnist.y_test)[1] > 0.98
