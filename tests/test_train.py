import dataclasses
import json
import math

import pytest
import torch
from invariants import assert_japanese_message

from mnist_lab import History, UserError, build_model, count_parameters, evaluate, fit, make_config, predict_proba
from mnist_lab.callbacks import Callback, LiveCurves, TensorBoardLogger
from mnist_lab.compare import compare
from mnist_lab.data import MNISTData
from mnist_lab.recipes import MAX_BATCH_SIZE, MAX_EPOCHS, MAX_LR, TrainConfig, with_env_overrides


def told(out):
    """The lines ``fit`` printed after the first, which names the device."""
    return [line for line in out.splitlines() if line.strip()][1:]


def tiny_data(n=256, seed=0):
    """Separable toy data: the label is written as a bright column, so a model can learn it in a few steps."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    X = torch.randn(n, 1, 28, 28, generator=g) * 0.1
    X[torch.arange(n), 0, :, 2 * y + 4] += 3
    empty = X[:0]
    return MNISTData(X[: n * 3 // 4], y[: n * 3 // 4], empty, y[:0], X[n * 3 // 4:], y[n * 3 // 4:])


def test_presets_match_their_documents():
    original = make_config("original")
    assert (original.model, original.epochs, original.batch_size, original.lr, original.schedule) == (
        "original_cnn", 3, 64, 0.01, "constant")  # the notebook's and the CLI's: the seed ran 10 (--epochs 10)
    assert make_config("quick", epochs=3, lr=None).epochs == 3


def test_the_environment_sets_what_the_caller_does_not_name():
    environ = {"MNIST_LAB_EPOCHS": "1", "MNIST_LAB_LR": "0.002"}
    assert make_config("original", environ=environ) == make_config("original", epochs=1, lr=0.002, environ={})
    assert make_config("original", epochs=2, environ=environ).epochs == 2  # named here: the caller wins
    with pytest.raises(UserError, match="MNIST_LAB_EPOCHS"):
        make_config("quick", environ={"MNIST_LAB_EPOCHS": "many"})


@pytest.mark.parametrize("overrides, match", [
    ({"epochs": 0}, "epochs"), ({"batch_size": -1}, "batch_size"), ({"lr": 0.0}, "lr"),
    ({"model": "vgg"}, "vgg"), ({"schedule": "linear"}, "linear"), ({"val_size": -5}, "val_size"),
    ({"patience": -1}, "patience"), ({"patience": 3}, "検証データ"),
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
    out = capsys.readouterr().out
    assert "cpu" in out.splitlines()[0] and not told(out)  # the device, once; nothing else without a progress bar


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
    class InterruptAfterTwo(Callback):
        def on_epoch_end(self, model, history):
            if len(history) == 2:
                raise KeyboardInterrupt

    model = build_model("quick", seed=0)
    history = fit(model, tiny_data(), make_config("quick", epochs=5, batch_size=64), device="cpu",
                  progress=False, callbacks=[InterruptAfterTwo()])
    assert history.interrupted and len(history) == 2
    (line,) = told(capsys.readouterr().out)  # one line tells the student which epoch's weights they have
    assert "2" in line
    assert not model.training


@pytest.mark.parametrize("step", ["describe_device", "make_scheduler", "standard_callbacks", "extra_pictures",
                                  "with_validation"])
def test_stop_before_the_first_step_is_one_line_and_leaves_the_model_as_it_was(monkeypatch, step):
    """■ while fit still prepares (the device line, the data moved, the optimizer, the callbacks): the model is as it
    was, and a notebook shows one line, not a KeyboardInterrupt traceback; the CLI still ends as after Ctrl+C."""
    from mnist_lab import train as train_module

    def pressed(*args, **kwargs):
        raise KeyboardInterrupt

    data = tiny_data()
    if step == "with_validation":
        monkeypatch.setattr(MNISTData, "with_validation", pressed)
    else:
        monkeypatch.setattr(train_module, step, pressed)
    model = build_model("quick", seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(KeyboardInterrupt) as stopped:
        fit(model, data, make_config("quick", epochs=1, batch_size=64), device="cpu", progress=False)
    (line,) = stopped.value._render_traceback_()  # what IPython shows instead of the traceback
    assert "Traceback" not in line and "KeyboardInterrupt" not in line and len(line) > 10
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_history_json_roundtrip(tmp_path):
    history = History(records=[{"epoch": 1, "eval_accuracy": 0.5}], eval_split="val", interrupted=True)
    (tmp_path / "h.json").write_text(json.dumps(history.to_dict()))
    assert History.from_dict(json.loads((tmp_path / "h.json").read_text())) == history


def test_evaluate_and_predict_agree():
    data = tiny_data()
    model = build_model("original", seed=0)
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


def with_val(data, n=64):
    """``data`` with its last ``n`` training samples moved to a validation split."""
    return MNISTData(data.X_train[:-n], data.y_train[:-n], data.X_train[-n:], data.y_train[-n:], data.X_test,
                     data.y_test)


@pytest.mark.parametrize("schedule", ["constant", "onecycle", "cosine", "step"])
def test_every_schedule_trains_and_records_its_rate(schedule):
    config = make_config("quick", epochs=3, batch_size=32, lr=0.01, schedule=schedule)
    history = fit(build_model("quick", seed=0), tiny_data(), config, device="cpu", progress=False)
    lrs = history.column("lr")
    if schedule == "constant":
        assert lrs == [0.01] * 3
    elif schedule == "step":
        assert lrs == pytest.approx([0.01, 0.001, 0.0001])
    else:
        assert lrs[-1] < 1e-4  # annealed to (almost) zero at the end of the run
    assert history.column("eval_accuracy")[-1] > 0.5


def test_validation_chooses_the_kept_epoch_and_never_looks_at_the_test_set():
    data = with_val(tiny_data(512))
    data.X_test[:] = float("nan")  # any use of the test set during training would show up as nan
    model = build_model("quick", seed=0)
    history = fit(model, data, make_config("quick", epochs=4, batch_size=32, val_size=64), device="cpu",
                  progress=False)
    assert history.eval_split == "val"
    losses = history.column("eval_loss")
    assert history.best_epoch == 1 + losses.index(min(losses))
    assert evaluate(model, data.X_val, data.y_val)[0] == min(losses)  # the model holds the best epoch's weights


def test_early_stopping_after_patience_epochs(capsys):
    data = with_val(tiny_data(512))
    config = make_config("quick", epochs=30, batch_size=32, lr=1e-6, schedule="constant", val_size=64, patience=2)
    history = fit(build_model("quick", seed=0), data, config, device="cpu", progress=False)
    assert history.stopped_early and len(history) < 30
    assert len(history) - history.best_epoch == 2
    (line,) = told(capsys.readouterr().out)  # one line: after how many epochs without progress, stopped when
    assert "2" in line and str(len(history)) in line


def test_augmentation_changes_training_but_not_evaluation():
    data = tiny_data()
    plain = fit(build_model("quick", seed=0), data, make_config("quick", epochs=1, batch_size=32), "cpu",
                progress=False)
    augmented = fit(build_model("quick", seed=0), data, make_config("quick", epochs=1, batch_size=32, augment=True),
                    "cpu", progress=False)
    assert plain.column("train_loss") != augmented.column("train_loss")


def test_env_overrides_parse_each_type():
    config = with_env_overrides(make_config("original"), {"MNIST_LAB_AUGMENT": "true", "MNIST_LAB_LR": "0.5",
                                                      "MNIST_LAB_MODEL": "lenet5"})
    assert (config.augment, config.lr, config.model) == (True, 0.5, "lenet5")
    with pytest.raises(UserError, match="MNIST_LAB_EPOCHS"):
        with_env_overrides(make_config("original"), {"MNIST_LAB_EPOCHS": "many"})
    with pytest.raises(UserError, match="MNIST_LAB_AUGMENT"):
        with_env_overrides(make_config("original"), {"MNIST_LAB_AUGMENT": "maybe"})


def test_tensorboard_logs_every_epoch(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(tmp_path)
    fit(build_model("quick", seed=0), tiny_data(), make_config("quick", epochs=2, batch_size=64), "cpu",
        progress=False, callbacks=[logger])
    runs = {path.parent.name for path in tmp_path.rglob("events.out.tfevents.*")}
    assert {"loss_train", "loss_test", "accuracy_train", "accuracy_test"} <= runs
    events = EventAccumulator(str(tmp_path / "accuracy_test")).Reload()
    assert [e.step for e in events.Scalars("accuracy")] == [1, 2]


def test_tensorboard_missing_is_explained(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard"):
            raise ModuleNotFoundError("No module named 'tensorboard'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    with pytest.raises(UserError, match="pip install tensorboard"):
        TensorBoardLogger("anywhere")


def test_compare_tabulates_each_model():
    data = tiny_data()
    table = compare(data, {"a": make_config("quick", epochs=1, batch_size=64),
                           "b": make_config("original", model="lenet5", epochs=2, batch_size=64)}, device="cpu")
    assert list(table.index) == ["a", "b"] and list(table["model"]) == ["quick_cnn", "lenet5"]
    assert list(table["epochs"]) == [1, 2] and (table["seconds"] > 0).all()
    for name in ("a", "b"):
        assert table.loc[name, "errors"] == round((1 - table.loc[name, "test_accuracy"]) * len(data.y_test))
    assert table.loc["b", "parameters"] == count_parameters(build_model("lenet5"))


def test_config_val_size_carves_the_same_validation_split_as_loading():
    data = tiny_data(512)
    data.X_test[:] = float("nan")  # untouched during training
    history = fit(build_model("quick", seed=0), data, make_config("quick", epochs=1, batch_size=64, val_size=100),
                  device="cpu", progress=False)
    assert history.eval_split == "val" and history.best_epoch == 1
    carved = data.with_validation(100, seed=0)
    assert len(carved.y_val) == 100 and len(carved.y_train) == len(data.y_train) - 100
    assert torch.equal(carved.y_val, data.with_validation(100, seed=0).y_val)


def test_an_average_of_few_steps_has_forgotten_the_untrained_weights():
    """With --ema 0.999 and one short epoch, the kept weights read the data about as well as the trained ones: the
    average warms up instead of holding mostly the random starting weights (99 % fell to 92 % on quick)."""
    data = tiny_data(512)
    plain, averaged = build_model("quick", seed=0), build_model("quick", seed=0)
    fit(plain, data, make_config("quick", epochs=1, batch_size=32), "cpu", progress=False)
    fit(averaged, data, make_config("quick", epochs=1, batch_size=32, ema=0.999), "cpu", progress=False)
    untrained = evaluate(build_model("quick", seed=0), data.X_test, data.y_test)[1]
    assert evaluate(plain, data.X_test, data.y_test)[1] > 0.9 and untrained < 0.5
    assert evaluate(averaged, data.X_test, data.y_test)[1] > 0.9


def test_ema_keeps_the_averaged_weights():
    data = with_val(tiny_data(512))
    plain = build_model("quick", seed=0)
    fit(plain, data, make_config("quick", epochs=2, batch_size=32, val_size=64), "cpu", progress=False)
    averaged = build_model("quick", seed=0)
    history = fit(averaged, data, make_config("quick", epochs=2, batch_size=32, val_size=64, ema=0.9), "cpu",
                  progress=False)
    assert not all(torch.equal(p, q) for p, q in zip(plain.state_dict().values(), averaged.state_dict().values()))
    assert evaluate(averaged, data.X_val, data.y_val)[1] == history.records[history.best_epoch - 1]["eval_accuracy"]
    with pytest.raises(UserError, match="ema"):
        make_config("quick", ema=1.0)



def test_each_ensemble_member_learns_from_its_own_loss():
    from mnist_lab.models import Ensemble
    from mnist_lab.train import training_loss

    data = tiny_data()
    X, y = data.X_train[:32], data.y_train[:32]
    alone = [build_model("quick", seed=s) for s in (1, 2)]
    ensemble = Ensemble([build_model("quick", seed=s) for s in (1, 2)])
    training_loss(ensemble, X, y)[0].backward()
    for member, model in zip(ensemble.members, alone):  # the ensemble's loss is the members' mean: half each
        training_loss(model, X, y)[0].backward()
        assert all(torch.allclose(p.grad, q.grad / 2, atol=1e-6) for p, q in zip(member.parameters(), model.parameters()))


def test_an_ensemble_of_one_trains_exactly_like_its_member():
    from mnist_lab.models import Ensemble

    data, config = tiny_data(), make_config("quick", epochs=2, batch_size=32)
    model, ensemble = build_model("quick", seed=1), Ensemble([build_model("quick", seed=1)])
    fit(model, data, config, device="cpu", progress=False)
    history = fit(ensemble, data, config, device="cpu", progress=False)
    assert all(torch.equal(p, q) for p, q in zip(ensemble.members[0].parameters(), model.parameters()))
    _, accuracy = evaluate(ensemble, data.X_test, data.y_test)
    assert accuracy == history.records[-1]["eval_accuracy"] > 0.9


def test_ctrl_c_stops_the_whole_comparison_and_the_table_says_so(monkeypatch):
    from mnist_lab import compare as compare_module

    real_fit, calls = compare_module.fit, []

    def fit_interrupted_in_the_second(model, data, config, device=None, progress=True):
        calls.append(config.model)
        if len(calls) == 2:  # ■ during the second model's first epoch: fit keeps what it has and says so
            from mnist_lab.history import History
            return History(interrupted=True)
        return real_fit(model, data, config, device, progress=progress)

    monkeypatch.setattr(compare_module, "fit", fit_interrupted_in_the_second)
    configs = {"a": make_config("quick", epochs=1, batch_size=64), "b": make_config("quick", model="lenet5"),
               "c": make_config("original", epochs=1)}
    trained = {}
    table = compare(tiny_data(), configs, device="cpu", progress=False, models=trained)
    assert calls == ["quick_cnn", "lenet5"], "the third model must not be trained"
    assert list(table["status"]) == ["trained", "interrupted", "not trained"]
    assert list(trained) == ["a", "b"]  # the finished model and the stopped one are the student's to use
    assert evaluate(trained["a"], tiny_data().X_test, tiny_data().y_test)[1] == table.loc["a", "test_accuracy"]
    assert table.loc["a", "test_accuracy"] > 0.5 and table.loc[["b", "c"], "test_accuracy"].isna().all()
    assert table.loc["c", "epochs"] == 0 and table["errors"].isna().tolist() == [False, True, True]


def test_ctrl_c_between_two_trainings_still_gives_the_table(monkeypatch):
    """■ can land outside fit too (while a model is built or measured): the comparison still ends with its table."""
    from mnist_lab import compare as compare_module

    def measured_when_interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(compare_module, "evaluate", measured_when_interrupted)
    configs = {"a": make_config("quick", epochs=1, batch_size=64), "b": make_config("quick", epochs=1)}
    table = compare(tiny_data(), configs, device="cpu", progress=False)
    assert list(table["status"]) == ["interrupted", "not trained"] and table["errors"].isna().all()


def test_live_curves_get_many_points_per_epoch_and_the_bar_names_the_epoch():
    from mnist_lab.callbacks import LiveCurves, ProgressBar

    curves = LiveCurves(points_per_epoch=4)
    data, config = tiny_data(512), make_config("quick", epochs=2, batch_size=32)  # 12 steps an epoch
    fit(build_model("quick", seed=0), data, config, device="cpu", progress=False, callbacks=[curves])
    epochs = [p["epoch"] for p in curves.points]
    assert len(epochs) == 8 and epochs[3] == 1.0 and epochs[-1] == 2.0 and epochs == sorted(epochs)
    assert all(0 <= p["train_accuracy"] <= 1 and p["train_loss"] > 0 for p in curves.points)
    assert curves.points[-1]["train_loss"] < curves.points[0]["train_loss"]

    bar = ProgressBar(24, "test", disable=True)
    bar.on_train_begin(None, History(), 2, 12)
    bar.on_epoch_begin(None)
    bar.on_epoch_begin(None)
    assert "2/2" in bar.bar.desc


def test_weights_broken_by_the_last_update_stop_the_run_instead_of_being_kept():
    """The loss of a step is measured before its update: an update that overflows the weights on the last step is
    seen only by the evaluation that follows, which must refuse the epoch rather than keep it."""
    from mnist_lab.callbacks import Callback
    from mnist_lab.errors import TrainingDiverged

    class Overflow(Callback):
        def on_step(self, model, loss, correct, size):
            with torch.no_grad():
                next(model.parameters()).fill_(float("inf"))

    model, config = build_model("quick", seed=0), make_config("quick", epochs=1, batch_size=64)
    with pytest.raises(TrainingDiverged):
        fit(model, tiny_data(64), config, device="cpu", callbacks=[Overflow()], progress=False)


# --- every recipe is checked, wherever it is made or used ---------------------------------------------------------

FIELDS = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
RANGES = {"epochs": (1, MAX_EPOCHS), "batch_size": (1, MAX_BATCH_SIZE), "lr": (math.ulp(0), MAX_LR), "seed": (0, 2**64 - 1),
          "val_size": (0, math.inf), "patience": (0, math.inf), "ema": (0, math.nextafter(1, 0)), "not_digits": (0, 1)}


def _config_changes():
    import numpy as np
    from hypothesis import strategies as st

    values = st.one_of(
        st.none(), st.booleans(), st.integers(), st.integers(-3, 5000), st.floats(), st.floats(0, 1), st.text(max_size=6),
        st.sampled_from(["False", "no", "0.01", "3", "quick", "mlp", "onecycle", "step", "a\nb"]),
        st.integers(-2**63, 2**63 - 1).map(np.int64), st.floats(0, 12).map(np.float64), st.booleans().map(np.bool_),
        st.lists(st.integers(), max_size=2), st.just(np.array([1, 2])), st.just(object()))
    names = st.one_of(st.sampled_from(sorted(FIELDS)), st.sampled_from(["epoch", "batchsize", "LR"]), st.text(max_size=8))
    return st.dictionaries(names.filter(lambda n: n not in ("preset", "environ")), values, max_size=4)


def _assert_usable(config, changes):
    """An accepted recipe: every value of its field's own type, in range, and what was asked for."""
    import numpy as np

    for name, kind in FIELDS.items():
        value = getattr(config, name)
        assert type(value) is kind, (name, value)
        if name in RANGES:
            assert RANGES[name][0] <= value <= RANGES[name][1], (name, value)
    for name, value in changes.items():
        if value is not None and name not in ("model",):
            asked_bool = isinstance(value, (bool, np.bool_))
            assert asked_bool == (FIELDS[name] is bool), (name, value)  # "False" is never taken for True
            assert getattr(config, name) == value


def test_any_config_values_give_a_checked_recipe_or_one_japanese_line():
    from hypothesis import given, settings

    data = tiny_data(32)
    model = build_model("quick", seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    @settings(max_examples=150, deadline=None)
    @given(changes=_config_changes())
    def check(changes):
        for make in (lambda: make_config("quick", environ={}, **changes), lambda: TrainConfig(**changes)):
            try:
                config = make()
            except UserError as e:
                assert_japanese_message(e)
                continue
            _assert_usable(config, changes)
        known = {k: v for k, v in changes.items() if k in FIELDS}
        config = make_config("quick", environ={})
        for name, value in known.items():  # a recipe changed behind the checks' back
            object.__setattr__(config, name, value)
        try:
            TrainConfig(**known)
        except UserError:
            with pytest.raises(UserError) as caught:  # fit refuses it too, before any training
                fit(model, data, config, device="cpu", progress=False)
            assert_japanese_message(caught.value)
            assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())

    check()


def test_a_batch_too_large_for_memory_is_refused_everywhere_before_training(tmp_path, monkeypatch):
    from invariants import assert_one_japanese_line, run_main

    monkeypatch.setattr("mnist_lab.cli.load_mnist", lambda *a, **k: pytest.fail("training began"))

    with pytest.raises(UserError, match="MNIST_LAB_BATCH_SIZE"):  # the variable it came from is named
        make_config("quick", environ={"MNIST_LAB_BATCH_SIZE": str(MAX_BATCH_SIZE + 1)})
    assert make_config("quick", batch_size=MAX_BATCH_SIZE).batch_size == MAX_BATCH_SIZE
    code, _, err = run_main(["train", "--out", tmp_path / "q1", "--force", "--batch-size", "10000000", "--model", "deep",
                             "--lr", "10", "--val-size", "1"])
    assert code == 2 and assert_one_japanese_line(err) and not (tmp_path / "q1").exists()


@pytest.mark.parametrize("call, names", [
    (lambda m, d, c: fit(m, d, c, callbacks=[LiveCurves], progress=False), "callbacks"),  # the class, () forgotten
    (lambda m, d, c: fit(m, d, c, callbacks=LiveCurves(), progress=False), "callbacks"),  # not in a list
    (lambda m, d, c: fit(m, d.head(0, 0), c, progress=False), None),  # no training data
    (lambda m, d, c: fit(m, d, c, device="gpu", progress=False), None),
    (lambda m, d, c: compare(d, {"a": c}, device="gpu", progress=False), "compare"),
])
def test_a_mistake_in_fit_or_compare_is_one_japanese_line_about_that_call(call, names, capsys):
    import re

    model, data, config = build_model("quick", seed=0), tiny_data(64), make_config("quick", epochs=1, batch_size=16)
    with pytest.raises(UserError) as refused:
        call(model, data, config)
    text = str(refused.value)
    assert_japanese_message(refused.value)
    assert not re.search(r"[A-Za-z]+Error|Expected|total_steps", text), text  # its own words, not PyTorch's
    assert "fit に渡したもの" not in text or names != "compare"
    if names == "callbacks":
        assert "callbacks" in text


@pytest.mark.parametrize("model", ["quick_cnn", "lenet5", "ensemble", "mlp"])
def test_non_digits_are_taught_only_to_a_model_that_keeps_their_threshold(model):
    """Refused before any training (found after it, the whole training was lost)."""
    with pytest.raises(UserError) as refused:
        make_config("pad", model=model, val_size=64)
    assert_japanese_message(refused.value)
    untouched = build_model(model, seed=0)
    before = {k: v.clone() for k, v in untouched.state_dict().items()}
    config = make_config("pad", val_size=64, epochs=1)  # a pad_cnn recipe, given another model
    with pytest.raises(UserError) as refused:
        fit(untouched, tiny_data(), config, "cpu", progress=False)
    assert_japanese_message(refused.value)
    assert all(torch.equal(before[k], v) for k, v in untouched.state_dict().items())


def test_data_fit_cannot_use_is_one_japanese_line_not_an_english_error():
    """Something with labels but no MNISTData methods (a student's own object): fit names what it takes."""
    from types import SimpleNamespace

    with pytest.raises(UserError) as refused:
        fit(build_model("quick", seed=0), SimpleNamespace(y_train=[0, 1]), make_config("quick"), "cpu", progress=False)
    assert_japanese_message(refused.value)


def test_what_the_data_cannot_give_a_recipe_is_said_before_any_training(monkeypatch):
    """A recipe's validation split larger than the data, or no image to evaluate on: refused before the first
    step (fit), and before the first model (compare), so no finished training is lost."""
    from mnist_lab import train as train_module
    from mnist_lab.compare import compare

    monkeypatch.setattr(train_module, "train_epoch", lambda *a, **k: pytest.fail("trained before refusing"))
    data = tiny_data(64)
    for config, given in ((make_config("quick", val_size=500), data), (make_config("quick"), data.head(48, 0))):
        with pytest.raises(UserError) as refused:
            fit(build_model("quick", seed=0), given, config, device="cpu", progress=False)
        assert_japanese_message(refused.value)
    with pytest.raises(UserError):
        compare(data, {"quick": make_config("quick"), "big": make_config("quick", val_size=500)}, "cpu", False)


def test_callbacks_that_are_no_callbacks_are_named(capsys):
    for odd in ([None], ["LiveCurves"], [LiveCurves, None]):
        with pytest.raises(UserError) as refused:
            fit(build_model("quick", seed=0), tiny_data(), make_config("quick", epochs=1), "cpu", progress=False,
                callbacks=odd)
        assert_japanese_message(refused.value)
        assert "fit に渡したもの" not in str(refused.value)  # not the generic line about the first three arguments


def test_a_model_fit_cannot_train_is_named_before_training():
    for model in (build_model("quick", seed=0).half(), build_model("quick", seed=0).requires_grad_(False)):
        with pytest.raises(UserError) as refused:
            fit(model, tiny_data(), make_config("quick", epochs=1), "cpu", progress=False)
        assert_japanese_message(refused.value)
        assert "fit に渡したもの" not in str(refused.value)


def test_a_hook_fit_never_calls_is_one_line_before_training():
    """A student's callback with Keras' ``on_batch_end`` would silently never run: one line before any step."""
    from invariants import assert_japanese_message

    from mnist_lab.callbacks import Callback

    class Keras(Callback):
        def on_batch_end(self, batch, logs=None):
            raise AssertionError("never called by fit")

    model = build_model("quick", seed=0)
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(UserError) as refused:
        fit(model, tiny_data(64), make_config("quick", batch_size=16), "cpu", callbacks=[Keras()], progress=False)
    assert_japanese_message(refused.value)
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters()))  # not one step made


def test_a_students_own_callback_that_fails_is_named_not_blamed_on_fits_arguments():
    from mnist_lab.callbacks import Callback

    class Mine(Callback):
        def on_step(self, model, loss, correct, size):
            raise ValueError("student bug")

    model = build_model("quick", seed=0)
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(UserError) as refused:
        fit(model, tiny_data(64), make_config("quick", batch_size=16), "cpu", callbacks=[Mine()], progress=False)
    assert "Mine" in str(refused.value) and "\n" not in str(refused.value)
    assert not all(torch.equal(p, q) for p, q in zip(before, model.parameters()))  # the step it made is kept
