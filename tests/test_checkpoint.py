import os
import stat
from pathlib import Path

import pytest
import torch
from invariants import assert_japanese_message, snapshot
from test_faults import previous_run

from mnist_lab import UserError, build_model, load_checkpoint, predict_proba, save_checkpoint
from mnist_lab.checkpoint import read_checkpoint, write_checkpoint
from mnist_lab.runs import is_run


@pytest.mark.parametrize("name", ["original_cnn", "ensemble"])
def test_roundtrip_predicts_the_same(tmp_path, name):
    model = build_model(name, seed=0).eval()
    path = save_checkpoint(tmp_path / "a" / "model.pt", model, {"lr": 0.01}, {"test_accuracy": 0.5})
    loaded, ckpt = load_checkpoint(path)
    X = torch.randn(8, 1, 28, 28)
    assert torch.equal(predict_proba(model, X), predict_proba(loaded, X))
    assert ckpt["config"] == {"lr": 0.01} and ckpt["results"] == {"test_accuracy": 0.5} and ckpt["model"] == name


def test_checkpoint_holds_only_plain_data(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", build_model("quick"))
    ckpt = torch.load(path, weights_only=True)  # would raise if anything but tensors and plain data were inside
    assert set(ckpt) == {"format", "model", "state_dict", "config", "results"}


def test_loading_into_another_architecture_is_explained(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", build_model("quick"))
    with pytest.raises(UserError, match="'quick_cnn' モデルのチェックポイント"):
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
    with pytest.raises(UserError, match="torch.save"):  # said to be one, and how to save instead
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


@pytest.mark.parametrize("odd", [{"model": ["quick"]}, {"model": "quick", "state_dict": [1, 2]},
                                 {"model": "quick", "state_dict": {"fc.weight": "not a tensor"}}])
def test_odd_contents_are_refused_as_not_ours(tmp_path, odd):
    from mnist_lab.checkpoint import FORMAT

    path = tmp_path / "odd.pt"
    torch.save({"format": FORMAT, **odd}, path)
    with pytest.raises(UserError, match="チェックポイント|形に合いません"):
        load_checkpoint(path)


@pytest.mark.parametrize("old, new, cls", [("seed", "original_cnn", "OriginalCNN"),
                                          ("original", "original_cnn", "OriginalCNN"),
                                          ("quick", "quick_cnn", "QuickCNN")])
def test_checkpoints_with_old_model_names_still_load(tmp_path, old, new, cls):
    path = save_checkpoint(tmp_path / "m.pt", build_model(new), {"model": old, "epochs": 1})
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["model"] == new  # what this version writes
    ckpt["model"] = old  # what earlier versions wrote for this architecture
    torch.save(ckpt, path)
    model, info = load_checkpoint(path)
    assert info["model"] == new == info["config"]["model"] and type(model).__name__ == cls
    assert type(build_model(old)).__name__ == cls  # and older code that names it still builds it


def test_the_shipped_pad_model_written_under_the_old_names_loads_under_the_new():
    from mnist_lab.app import PAD_MODEL

    stored = torch.load(PAD_MODEL, weights_only=True)
    model, info = load_checkpoint(PAD_MODEL)
    assert stored["model"] in ("pad", "pad_cnn") and info["model"] == info["config"]["model"] == "pad_cnn"
    assert type(model).__name__ == "PadCNN"


def test_the_package_files_are_never_saved_over(tmp_path):
    """save_checkpoint(PAD_MODEL, ...), copied from the lesson's load_checkpoint(PAD_MODEL), with results that claim
    to be better (no copy would be kept aside): refused in one line, the bundled model and the package unchanged."""
    from mnist_lab.app import PAD_MODEL

    before = PAD_MODEL.read_bytes()
    listed = sorted(p.name for p in PAD_MODEL.parent.iterdir())
    (tmp_path / "link.pt").symlink_to(PAD_MODEL)
    try:
        for target in (PAD_MODEL, str(PAD_MODEL), PAD_MODEL.with_name("mine.pt"), tmp_path / "link.pt"):
            with pytest.raises(UserError) as refused:
                save_checkpoint(target, build_model("quick_cnn"), {"model": "quick_cnn"}, {"test_accuracy": 0.999})
            assert_japanese_message(refused.value)
            assert PAD_MODEL.read_bytes() == before and sorted(p.name for p in PAD_MODEL.parent.iterdir()) == listed
    finally:  # a failing run must not leave the repository's pad model replaced
        if PAD_MODEL.read_bytes() != before:
            PAD_MODEL.write_bytes(before)
        PAD_MODEL.with_name("mine.pt").unlink(missing_ok=True)


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


def test_a_device_given_in_the_models_place_is_named_as_the_mistake(tmp_path):
    """``load_checkpoint(path, device)`` (cell 116 writes ``device=device``): one line saying the second argument is
    the model and the device goes as ``device=``; with ``device=`` it loads."""
    path = save_checkpoint(tmp_path / "m.pt", build_model("quick"))
    for device in ("cpu", torch.device("cpu"), 0):
        with pytest.raises(UserError) as refused:
            load_checkpoint(path, device)
        assert_japanese_message(refused.value)
        assert "device=" in str(refused.value)  # the keyword to write, as code
    assert load_checkpoint(path, device=torch.device("cpu"))[1]["model"] == "quick_cnn"


# --- only a regular file is ever replaced ------------------------------------------------------------------------

def _special_files(folder):
    """Things at a path that are no regular file: a pipe, a socket, a folder (a device is checked by its mode)."""
    import socket

    os.mkfifo(folder / "fifo")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(folder / "socket"))
    (folder / "folder").mkdir()
    return [folder / "fifo", folder / "socket", folder / "folder"]


def test_saving_over_a_pipe_socket_or_folder_is_refused_and_leaves_it(tmp_path):
    model = build_model("quick")
    for target in _special_files(tmp_path):
        kind = stat.S_IFMT(target.lstat().st_mode)
        for named in (target, tmp_path / f"link-to-{target.name}"):
            if named != target:
                named.symlink_to(target)
            with pytest.raises(UserError) as caught:
                save_checkpoint(named, model)
            assert_japanese_message(caught.value)
            assert stat.S_IFMT(target.lstat().st_mode) == kind  # still a pipe, a socket, a folder
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary file left


def test_a_device_node_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    """``/dev/null`` as the target: its mode (a character device) is shown to the check by a stand-in stat; no
    device is ever written."""
    from mnist_lab import files

    target, real_stat = tmp_path / "null", os.stat
    target.write_bytes(b"device stand-in")
    monkeypatch.setattr(files.os, "stat", lambda p, *a, **k: os.stat_result(
        (stat.S_IFCHR | 0o666, *real_stat(p, *a, **k)[1:])) if Path(p) == target else real_stat(p, *a, **k))
    monkeypatch.setattr(files, "_new_temporary", lambda *a, **k: pytest.fail("wrote before checking"))
    with pytest.raises(UserError) as caught:
        save_checkpoint(target, build_model("quick"))
    assert_japanese_message(caught.value)
    assert target.read_bytes() == b"device stand-in"


def test_a_link_to_a_checkpoint_is_followed_and_stays_a_link(tmp_path):
    real, link = tmp_path / "real.pt", tmp_path / "link.pt"
    save_checkpoint(real, build_model("quick", seed=0))
    link.symlink_to(real)
    save_checkpoint(link, build_model("original", seed=0))
    assert link.is_symlink() and load_checkpoint(real)[1]["model"] == "original_cnn"


# --- a pad_cnn trained without non-digits has no threshold, and loads ------------------------------------------

def test_a_pad_cnn_trained_by_any_recipe_loads_and_predicts_without_a_warning(tmp_path):
    """The quick recipe on pad_cnn leaves its "not a digit" threshold unset (NaN): the checkpoint loads, and every
    reader (predict, the app's and DrawPad's flag, flagged) says "cannot tell" rather than refusing or warning."""
    import json

    from invariants import run_main
    from PIL import Image, ImageDraw
    from test_train import tiny_data

    from mnist_lab import fit, make_config
    from mnist_lab.ood import flagged, probabilities_and_flag, read, threshold_of

    data, model = tiny_data(40), build_model("pad_cnn", seed=0)  # one step of training
    fit(model, data, make_config("quick", model="pad_cnn", batch_size=32), device="cpu", progress=False)
    assert threshold_of(model) is None
    path = save_checkpoint(tmp_path / "run" / "model.pt", model, make_config("quick", model="pad_cnn"))
    loaded, _ = load_checkpoint(path)
    X = data.X_test[:4]
    assert torch.allclose(predict_proba(loaded, X), predict_proba(model, X), atol=1e-5)
    assert [r.not_a_digit for r in read(loaded, X)] == [None] * 4
    assert probabilities_and_flag(loaded, X[:1])[1] is None and not flagged(loaded, X).any()
    picture = Image.new("L", (28, 28), 0)
    ImageDraw.Draw(picture).line([(8, 6), (20, 6), (12, 23)], fill=255, width=3)  # a seven
    picture.save(tmp_path / "seven.png")
    code, out, err = run_main(["predict", path, tmp_path / "seven.png", "--json", "--device", "cpu"])
    assert code == 0, err
    assert [r["not_a_digit"] for r in json.loads(out)] == [None]


@pytest.mark.parametrize("name, value", [("fc.bias", float("nan")), ("fc.weight", float("inf")),
                                         ("features.0.2.running_var", -1.0)])
def test_impossible_weights_are_refused_when_saved_and_when_loaded(tmp_path, name, value):
    """Never saved (a saved file always loads), and refused when a file holds them anyway (edited afterwards)."""
    model = build_model("pad_cnn")
    with torch.no_grad():
        model.state_dict()[name].view(-1)[0] = value
    with pytest.raises(UserError) as refused:
        save_checkpoint(tmp_path / "m.pt", model)
    assert_japanese_message(refused.value)
    assert not (tmp_path / "m.pt").exists()
    path = save_checkpoint(tmp_path / "m.pt", build_model("pad_cnn"))
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["state_dict"][name].view(-1)[0] = value
    torch.save(checkpoint, path)
    with pytest.raises(UserError) as refused:
        load_checkpoint(path)
    assert_japanese_message(refused.value)


# --- what goes into a checkpoint is plain data, so that it always loads ------------------------------------------

def test_numpy_numbers_arrays_and_histories_are_saved_as_plain_data(tmp_path):
    import numpy as np

    from mnist_lab import History

    path = save_checkpoint(tmp_path / "m.pt", build_model("quick"), {"batch_size": np.int64(64), "lr": np.float32(0.5)},
                           {"test_accuracy": np.float64(0.9), "acc": np.array([.9]), "h": History(records=[{"epoch": 1}]),
                            "t": torch.tensor([1, 2]), "ok": np.bool_(True), 3: (1, "a")})
    ckpt = load_checkpoint(path)[1]
    assert ckpt["config"] == {"batch_size": 64, "lr": 0.5}
    assert ckpt["results"] == {"test_accuracy": 0.9, "acc": [0.9], "t": [1, 2], "ok": True, 3: [1, "a"],
                               "h": {**History().to_dict(), "records": [{"epoch": 1}]}}
    assert type(ckpt["config"]["batch_size"]) is int and type(ckpt["results"]["ok"]) is bool


def _unsupported(value):
    """Whether ``value`` holds something no checkpoint can hold (the test's own oracle, independent of ``plain``)."""
    import numpy as np

    if isinstance(value, dict):
        return any(_unsupported(k) or _unsupported(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(map(_unsupported, value))
    if isinstance(value, np.ndarray):
        return value.dtype.kind == "c"
    return isinstance(value, (set, complex, bytes, np.complexfloating)) or type(value) is object


def _same(original, loaded):
    """Whether ``loaded`` is ``original`` as plain data (NaN equal to NaN)."""
    import math

    import numpy as np

    if isinstance(original, (np.ndarray, np.generic, torch.Tensor)):
        return _same(original.tolist(), loaded)
    if isinstance(original, dict):
        return type(loaded) is dict and list(loaded) == list(original) and all(
            _same(v, loaded[k]) for k, v in original.items())
    if isinstance(original, (list, tuple)):
        return type(loaded) is list and len(loaded) == len(original) and all(map(_same, original, loaded))
    if isinstance(original, float) and math.isnan(original):
        return type(loaded) is float and math.isnan(loaded)
    return type(loaded) in (type(None), bool, int, float, str) and loaded == original and (
        type(loaded) is bool) == isinstance(original, (bool, np.bool_))


def _metrics(unsupported_too=False):
    """Nested dicts, lists and tuples of Python and NumPy numbers, strings, arrays and tensors; ``unsupported_too``:
    with things no checkpoint can hold (a set, a complex number, bytes, an object) among them."""
    import numpy as np
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp

    numpy_scalars = st.one_of(st.floats(width=32).map(np.float32), st.floats().map(np.float64),
                              st.integers(-2**63, 2**63 - 1).map(np.int64), st.booleans().map(np.bool_),
                              st.integers(0, 255).map(np.uint8))
    arrays = hnp.arrays(st.sampled_from(["float64", "float32", "int64", "uint8", "bool"]),
                        hnp.array_shapes(min_dims=0, max_dims=2, max_side=3))
    tensors = st.lists(st.floats(width=32), max_size=4).map(torch.tensor)
    unsupported = st.sampled_from([{1, 2}, 1j, np.complex64(1), np.array([1j]), b"bytes", object()])
    leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5), numpy_scalars,
                       arrays, tensors)
    nested = st.recursive(st.one_of(leaves, unsupported) if unsupported_too else leaves, lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=5) | st.integers(), inner, max_size=3)), max_leaves=8)
    return st.dictionaries(st.text(max_size=8), nested, max_size=4)


def test_any_metrics_round_trip_or_are_refused_before_writing(tmp_path_factory, monkeypatch):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    model, folder = build_model("quick"), tmp_path_factory.mktemp("metrics")
    monkeypatch.setattr("mnist_lab.files.os.fsync", lambda fd: None)  # durability is not what is tested here

    write_checkpoint(folder / "earlier.pt", build_model("mlp"), {}, {"test_accuracy": 0.5})
    earlier = (folder / "earlier.pt").read_bytes()

    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(results=st.one_of(_metrics(), _metrics(unsupported_too=True)), config=_metrics())
    def check(results, config):
        path = folder / "model.pt"
        path.write_bytes(earlier)  # a checkpoint this kernel did not write: kept aside when replaced
        try:
            save_checkpoint(path, model, config, results)
        except UserError as e:
            assert_japanese_message(e)
            assert path.read_bytes() == earlier and _unsupported([results, config])
            return
        assert (folder / "model.previous.pt").read_bytes() == earlier
        (folder / "model.previous.pt").unlink()
        assert not _unsupported([results, config])
        ckpt = load_checkpoint(path)[1]
        assert _same(results, ckpt["results"]) and _same(config, ckpt["config"])

    check()


@pytest.mark.parametrize("target", ["model.pt", "other.pt", "link to model.pt"])
def test_a_run_folder_written_by_train_is_never_saved_into(tmp_path, target):
    """A checkpoint saved into a run folder (directly, or through a link that leads there) would no longer be the
    model its record and figures describe: refused, nothing changed. The lesson's own place is saved into again and
    again (§11 re-run)."""
    run = previous_run(tmp_path / "run")
    before = snapshot(run)
    path = run / target
    if target.startswith("link"):
        path = tmp_path / "mine.pt"
        path.symlink_to(run / "model.pt")
    with pytest.raises(UserError) as caught:
        save_checkpoint(path, build_model("mlp"), {}, {"test_accuracy": 0.1})
    assert_japanese_message(caught.value)
    assert snapshot(run) == before and is_run(run)
    for _ in range(2):
        assert load_checkpoint(save_checkpoint(tmp_path / "notebook" / "model.pt", build_model("mlp")))[1]["model"] == "mlp"


@pytest.mark.parametrize("device", ["meta", "gpu", 3, "cuda:99"])
def test_a_device_this_machine_cannot_load_into_is_one_japanese_line(tmp_path, device):
    path = save_checkpoint(tmp_path / "m.pt", build_model("quick_cnn"))
    with pytest.raises(UserError) as refused:
        load_checkpoint(path, device=device)
    assert_japanese_message(refused.value)


def _edited(tmp_path, name, edit):
    path = tmp_path / "model.pt"
    save_checkpoint(path, build_model("quick_cnn", seed=0))
    ckpt = torch.load(path, weights_only=True)
    edit(ckpt)
    torch.save(ckpt, tmp_path / name)
    return tmp_path / name


EDITS = {
    "a weight named by a number": lambda c: c.update(state_dict={i: v for i, v in enumerate(c["state_dict"].values())}),
    "sparse weights": lambda c: c.update(state_dict={k: v.to_sparse() if v.ndim == 2 else v
                                                     for k, v in c["state_dict"].items()}),
    "a model of a newer version": lambda c: c.update(model="resnet50"),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_a_hand_edited_checkpoint_is_one_line_from_python_and_the_command(tmp_path, edit):
    from invariants import assert_one_japanese_line, run_main

    path = _edited(tmp_path, "edited.pt", EDITS[edit])
    with pytest.raises(UserError) as refused:
        load_checkpoint(path)
    assert_japanese_message(refused.value)
    from PIL import Image

    Image.new("L", (28, 28)).save(tmp_path / "x.png")
    code, _, err = run_main(["predict", path, tmp_path / "x.png", "--device", "cpu"])
    assert code == 2
    assert_one_japanese_line(err)


def test_a_wrapped_model_is_saved_as_the_model_it_wraps_and_another_module_is_refused(tmp_path):
    model = build_model("quick_cnn", seed=1)
    for wrapped in (torch.compile(model), torch.nn.DataParallel(model)):
        loaded, ckpt = load_checkpoint(save_checkpoint(tmp_path / "w.pt", wrapped))
        assert ckpt["model"] == "quick_cnn"
        assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    for other in (torch.nn.Sequential(model), torch.nn.Linear(2, 2)):
        with pytest.raises(UserError) as refused:
            save_checkpoint(tmp_path / "o.pt", other)
        assert_japanese_message(refused.value)
    assert not (tmp_path / "o.pt").exists()


def test_a_folder_name_or_a_home_folder_path_is_read_as_a_user_means_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    model = build_model("quick_cnn", seed=0)
    with pytest.raises(UserError):
        save_checkpoint("runs/nb/", model)  # not a file named "nb"
    assert not (tmp_path / "runs" / "nb").exists()
    save_checkpoint("~/x.pt", model)
    assert (tmp_path / "home" / "x.pt").is_file() and not (tmp_path / "~").exists()
    assert load_checkpoint("~/x.pt")[1]["model"] == "quick_cnn"


def test_a_checkpoint_another_process_overwrote_is_said_on_loading_it(tmp_path, capsys):
    """Two notebooks saving to runs/notebook/model.pt: the one that saved first is told, when it loads the file,
    that it now holds another model."""
    import subprocess
    import sys

    path = tmp_path / "model.pt"
    save_checkpoint(path, build_model("quick_cnn", seed=0))
    load_checkpoint(path)
    assert "お知らせ" not in capsys.readouterr().out  # its own: nothing to say
    code = f"from mnist_lab import save_checkpoint, build_model; save_checkpoint({str(path)!r}, build_model('mlp'))"
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ,
                                                                  "PYTHONPATH": str(Path(__file__).parents[1])})
    model, _ = load_checkpoint(path)
    assert type(model).__name__ == "MLP" and "お知らせ" in capsys.readouterr().out


def test_saving_never_replaces_what_is_no_checkpoint(tmp_path, monkeypatch):
    """main.ipynb, notes, any file that is no checkpoint: refused before anything is written, left as it was."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "main.ipynb").write_text('{"cells": []}')
    (tmp_path / "notes.pt").write_text("my notes")
    for name in ("main.ipynb", "notes.pt", "requirements.txt", "runs/notebook/../../main.ipynb", "model.png"):
        with pytest.raises(UserError) as refused:
            save_checkpoint(name, build_model("quick", seed=0))
        assert_japanese_message(refused.value)
    assert (tmp_path / "main.ipynb").read_text() == '{"cells": []}' and (tmp_path / "notes.pt").read_text() == "my notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["main.ipynb", "notes.pt"]


def test_a_checkpoint_saved_before_a_restart_is_kept_aside_not_replaced(tmp_path, monkeypatch, capsys):
    """A trained model saved by an earlier kernel (or another notebook), then a model saved to the same name: the
    earlier one is moved aside with a note, and a model this kernel saved itself is simply replaced."""
    from mnist_lab import checkpoint

    path = tmp_path / "runs" / "notebook" / "model.pt"
    trained = build_model("quick", seed=1)
    save_checkpoint(path, trained, {}, {"test_accuracy": 0.92})
    monkeypatch.setattr(checkpoint, "_WRITTEN", {})  # a new kernel: it has saved nothing yet
    capsys.readouterr()
    save_checkpoint(path, build_model("original", seed=0), {}, {"test_accuracy": 0.09})
    assert [line for line in capsys.readouterr().out.splitlines() if line.startswith("お知らせ: ")]
    aside = path.with_name("model.previous.pt")
    assert load_checkpoint(aside)[1]["model"] == "quick_cnn" and load_checkpoint(path)[1]["model"] == "original_cnn"
    assert all(torch.equal(p, q) for p, q in zip(load_checkpoint(aside)[0].state_dict().values(),
                                                 trained.state_dict().values()))
    save_checkpoint(path, build_model("mlp", seed=0))  # this kernel's own checkpoint: replaced, nothing new aside
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.previous.pt", "model.pt"]


def test_a_recipe_of_another_model_saved_with_a_model_is_pointed_out(tmp_path, capsys):
    from dataclasses import asdict

    from mnist_lab import make_config

    save_checkpoint(tmp_path / "same.pt", build_model("quick", seed=0), asdict(make_config("quick")))
    assert not capsys.readouterr().out
    save_checkpoint(tmp_path / "other.pt", build_model("quick", seed=0), asdict(make_config("original")))
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("お知らせ: ")]
    assert len(notes) == 1 and "original_cnn" in notes[0] and "quick_cnn" in notes[0]


def test_what_stands_at_the_name_is_named_and_a_read_only_folder_is_one_line(tmp_path, monkeypatch):
    from mnist_lab import checkpoint

    weights = tmp_path / "weights.pt"
    torch.save(build_model("quick", seed=0).state_dict(), weights)  # the PyTorch examples' habit
    notes = tmp_path / "notes.pt"
    notes.write_text("my notes")
    messages = []
    for target in (weights, notes):
        with pytest.raises(UserError) as refused:
            save_checkpoint(target, build_model("quick", seed=0))
        messages.append(str(refused.value))
        assert str(target) not in str(refused.value).split("例: ")[-1]  # the example is another name
    assert messages[0] != messages[1].replace("notes.pt", "weights.pt")  # weights alone named as such
    (tmp_path / "link.pt").symlink_to(tmp_path / "notes.txt")
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UserError):
        save_checkpoint(tmp_path / "link.pt", build_model("quick", seed=0))
    assert (tmp_path / "notes.txt").read_text() == "mine"

    path = tmp_path / "ro" / "model.pt"
    save_checkpoint(path, build_model("quick", seed=1), {}, {"test_accuracy": 0.9})
    monkeypatch.setattr(checkpoint, "_WRITTEN", {})  # a new kernel
    monkeypatch.setattr(checkpoint.os, "link", lambda *a: (_ for _ in ()).throw(OSError(30, "Read-only file system")))
    monkeypatch.setattr(checkpoint.shutil, "copy2", lambda *a: (_ for _ in ()).throw(PermissionError(13, "denied")))
    before = path.read_bytes()
    with pytest.raises(UserError) as refused:
        save_checkpoint(path, build_model("quick", seed=0), {}, {"test_accuracy": 0.1})
    assert_japanese_message(refused.value)
    assert path.read_bytes() == before and sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]


def test_restart_and_run_all_does_not_pile_up_copies(tmp_path, monkeypatch):
    from mnist_lab import checkpoint

    path = tmp_path / "model.pt"
    for accuracy in (0.9, 0.9, 0.95):  # each a new kernel saving as good a model or better
        monkeypatch.setattr(checkpoint, "_WRITTEN", {})
        save_checkpoint(path, build_model("quick", seed=0), {}, {"test_accuracy": accuracy})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_a_name_with_spaces_around_it_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    """``"model.pt "`` or ``" model.pt"`` (an input method's space): one line, nothing written, not even the file named
    with the space."""
    monkeypatch.chdir(tmp_path)
    for name in ("model.pt ", " model.pt", "runs/ notebook/model.pt", "　model.pt"):
        with pytest.raises(UserError) as refused:
            save_checkpoint(name, build_model("quick"))
        assert_japanese_message(refused.value)
    assert list(tmp_path.iterdir()) == []
