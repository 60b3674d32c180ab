"""What ``report``, ``evaluate`` and ``predict`` read, generated and edited as a user might: ``metrics.json`` edited
by hand (keys deleted, values replaced by any JSON, deep nesting, broken text), histories with any values,
checkpoints with impossible weights; and the settings that must be refused before any data is loaded (seeds out of
range) or that must not lose a run (``--tensorboard`` on a disk that is full, or fills while training).
"""

import copy
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from invariants import assert_japanese_message, assert_one_japanese_line, problem_lines, run_main, stray_folders
from test_faults import previous_run, seven, snapshot
from test_train import tiny_data

from mnist_lab import UserError, build_model, make_config
from mnist_lab.checkpoint import FORMAT
from mnist_lab.history import History
from mnist_lab.plots import plot_history
from mnist_lab.recipes import with_env_overrides
from mnist_lab.report import run_notes
from mnist_lab.runs import is_run, read_run, write_run

IS_ROOT = os.geteuid() == 0
SLOW_ENOUGH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
RECORD = {"epoch": 1, "train_loss": 0.3, "train_accuracy": 0.9, "eval_loss": 0.2, "eval_accuracy": 0.95,
          "seconds": 1.5, "lr": 0.01}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs") / "run"
    folder.mkdir()
    history = History(records=[{**RECORD, "epoch": e} for e in (1, 2, 3)], kept_epoch=3)
    write_run(folder, build_model("quick", seed=0), vars(make_config("quick")), {"test_accuracy": 0.99}, history)
    return folder


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=6)


def paths(value, prefix=()):
    """Every place in a JSON value: dict keys and list indices, as tuples."""
    found = [prefix]
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        found += paths(child, (*prefix, key))
    return found


def edited(metrics, data):
    """``metrics`` with one to three edits a user could make by hand: delete an entry, or put any JSON value in."""
    metrics = copy.deepcopy(metrics)
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.sampled_from(paths(metrics)[1:]))
        parent = metrics
        for key in where[:-1]:
            parent = parent[key]
        if data.draw(st.booleans()):
            del parent[where[-1]]
        else:
            parent[where[-1]] = data.draw(json_values)
        if not isinstance(metrics, dict) or not paths(metrics)[1:]:
            break
    return json.dumps(metrics)


TEXTS = ["[" * 100_000 + "]" * 100_000, '{"history": ' * 5000 + "1" + "}" * 5000, "\ufeff{}", "", "null",
         '{"history": {"records": [{"epoch": NaN}]}}', '{"history": {"records": [{"epoch": 1e999}]}}']


@settings(max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=SLOW_ENOUGH)
@given(data=st.data())
def test_an_edited_metrics_file_is_refused_before_mnist_is_loaded_or_reported_whole(run, tmp_path, monkeypatch,
                                                                                      data):
    folder = Path(tempfile.mkdtemp(dir=tmp_path)) / "run"
    shutil.copytree(run, folder)
    metrics = json.loads((run / "results.json").read_text())
    text = data.draw(st.one_of(st.builds(edited, st.just(metrics), st.just(data)), st.sampled_from(TEXTS)))
    (folder / "results.json").write_text(text)
    loaded = []

    def load_mnist(root=None, **kwargs):
        loaded.append(1)
        raise KeyboardInterrupt  # stop here: what matters is whether the run folder was accepted first

    monkeypatch.setattr("mnist_lab.report.load_mnist", load_mnist)
    code, _, err = run_main(["report", folder, "--device", "cpu"])
    try:
        metrics, history = read_run(folder)
    except UserError as e:
        assert_japanese_message(e)
        assert code == 2 and not loaded, "a broken run folder was found only after loading MNIST"
        assert_one_japanese_line(err)
        return
    assert loaded, err  # accepted: then everything report does with it afterwards works
    plot_history(history).savefig(io.BytesIO(), format="png")
    assert all(isinstance(note, str) for note in run_notes(metrics, history))


numbers = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10**30),
                    st.booleans(), st.text(max_size=2))


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(records=st.lists(st.dictionaries(st.sampled_from(sorted(RECORD)), numbers, min_size=4), max_size=4),
       fair=st.booleans())
def test_plot_history_draws_or_says_in_one_japanese_line_what_is_wrong(records, fair):
    if fair:  # values training could have written, however extreme
        records = [{**RECORD, "epoch": i + 1, "train_loss": 3.4e38 if i else 0.0, "eval_loss": float("nan")}
                   for i in range(len(records))]
    try:
        figure = plot_history(History(records=records))
    except UserError as e:
        assert not fair
        assert_japanese_message(e)
    else:
        figure.savefig(io.BytesIO(), format="png")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    seven(folder / "seven.png")
    return folder


CORRUPTIONS = ["nan", "inf", "-inf", "huge", "negative", "empty", "shape", "complex", "bool", "half", "text",
               "missing", "extra", "list"]


@settings(max_examples=50, deadline=None, derandomize=True, database=None, suppress_health_check=SLOW_ENOUGH)
@given(key=st.sampled_from(sorted(build_model("quick").state_dict())), corruption=st.sampled_from(CORRUPTIONS),
       where=st.floats(0, 1))
def test_a_checkpoint_with_impossible_weights_is_refused_never_a_nan_probability(images, key, corruption, where):
    state = build_model("quick", seed=0).state_dict()
    value = state[key].clone()
    flat = value.view(-1)
    i = int(where * (flat.numel() - 1))
    if corruption in ("nan", "inf", "-inf", "huge", "negative"):
        assume(value.is_floating_point() or corruption == "negative")
        flat[i] = {"nan": float("nan"), "inf": float("inf"), "-inf": -float("inf"), "huge": 3e38,
                   "negative": -abs(float(flat[i])) - 5}[corruption]
    changed = {"empty": lambda: flat[:0], "shape": lambda: flat[:1].repeat(3), "complex": lambda: value.to(torch.complex64),
               "bool": value.bool, "half": value.half, "text": lambda: "0.5", "list": value.tolist}
    state[key] = changed.get(corruption, lambda: value)()
    if corruption == "missing":
        del state[key]
    if corruption == "extra":
        state["extra.weight"] = torch.ones(3)
    path = images / "broken.pt"
    torch.save({"format": FORMAT, "model": "quick", "state_dict": state, "config": {}, "metrics": {}}, path)
    code, out, err = run_main(["predict", path, images / "seven.png", "--device", "cpu"])
    assert "Traceback" not in err and "nan" not in out.lower(), (out, err)
    if code == 0:
        probability = float(re.search(r"確率 ([0-9.]+)%", out).group(1))
        assert 0 <= probability <= 100 and not problem_lines(err)
    else:
        assert code == 2, err
        assert_one_japanese_line(err)


@pytest.mark.parametrize("seed", ["-1", str(2**64), str(10**30), "-99999999999999999999"])
def test_a_seed_out_of_range_is_refused_before_loading_data(tmp_path, monkeypatch, seed):
    loaded = []
    monkeypatch.setattr("mnist_lab.cli.load_mnist", lambda *a, **k: loaded.append(1))
    code, _, err = run_main(["train", "--dry-run", "--seed", seed, "--out", tmp_path / "run"])
    assert code == 2 and not loaded and not (tmp_path / "run").exists()
    assert_one_japanese_line(err)
    with pytest.raises(UserError) as caught:
        with_env_overrides(make_config("quick"), {"MNIST_LAB_SEED": seed})
    assert_japanese_message(caught.value)


def test_the_largest_seed_works():
    assert make_config("quick", seed=2**64 - 1).seed == 2**64 - 1


@pytest.fixture
def small_disk(tmp_path):
    """A real 1 MiB file system (tmpfs; CI runs as root, where this must never be skipped)."""
    if not IS_ROOT:
        if os.environ.get("CI") == "true":
            pytest.fail("CI runs as root: this test must mount its tmpfs there")
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], check=True)
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(folder):
    with open(folder / "filler", "wb") as f:
        try:
            f.write(b"\0" * (2 << 20))
        except OSError:
            pass


def test_tensorboard_on_a_full_disk_is_one_line_before_training(tmp_path, small_disk, monkeypatch):
    fill(small_disk)
    trained = []
    monkeypatch.setattr("mnist_lab.cli.fit", lambda *a, **k: trained.append(1))
    code, _, err = run_main(["train", "--dry-run", "--device", "cpu", "--out", tmp_path / "run",
                             "--tensorboard", small_disk / "tb"])
    assert code == 2 and not trained and not (tmp_path / "run").exists()
    assert_one_japanese_line(err)


def test_tensorboard_filling_the_disk_while_training_loses_nothing(tmp_path, small_disk, monkeypatch):
    """The logs are an extra: when they can no longer be written, one note, and the run is still saved."""
    from mnist_lab.callbacks import Callback
    from mnist_lab.cli import fit as real_fit

    class FillAfterFirstEpoch(Callback):
        def on_epoch_end(self, model, history):
            if len(history) == 1:
                fill(small_disk)

    monkeypatch.setattr("mnist_lab.cli.load_mnist", lambda root=None, val_size=0, seed=0: tiny_data(256))
    monkeypatch.setattr("mnist_lab.cli.fit", lambda model, data, config, device, callbacks, progress: real_fit(
        model, data, config, device, [*callbacks, FillAfterFirstEpoch()], progress))
    code, _, err = run_main(["train", "--epochs", "3", "--device", "cpu", "--out", tmp_path / "run",
                             "--tensorboard", small_disk / "tb"])
    assert code == 0 and not problem_lines(err), err
    assert "Traceback" not in err and "Exception in thread" not in err
    assert is_run(tmp_path / "run") and len(json.loads((tmp_path / "run" / "results.json").read_text())
                                            ["history"]["records"]) == 3
    assert not stray_folders(tmp_path)


names = st.text(st.sampled_from("abtb0_-データ"), min_size=1, max_size=6).filter(lambda n: n not in (".", ".."))


@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(place=st.sampled_from(["in an earlier run", "a link to an earlier run", "holds --out", "is --out"]),
       sub=st.lists(names, max_size=2), deeper=st.lists(names, min_size=1, max_size=2), force=st.booleans())
def test_tensorboard_logs_never_go_into_a_run_folder_or_around_the_new_one(tmp_path, monkeypatch, place, sub, deeper,
                                                                           force):
    """An earlier run stays byte for byte what it was (logs in it would make it no run folder, which --force then
    refuses to replace); refused in one line before training, and nothing is made."""
    trained = []
    monkeypatch.setattr("mnist_lab.cli.fit", lambda *a, **k: trained.append(1))
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    base = previous_run(root / "base")
    before = snapshot(base)
    out = root / "new"
    if place == "in an earlier run":
        logs = base.joinpath(*sub)
    elif place == "a link to an earlier run":
        (root / "link").symlink_to(base)
        logs = (root / "link").joinpath(*sub)
    elif place == "holds --out":
        logs, out = root / "logs", (root / "logs").joinpath(*deeper)
    else:
        logs, out = base, base
    code, _, err = run_main(["train", "--epochs", "1", "--device", "cpu", "--out", out, "--tensorboard", logs,
                             *(["--force"] if force else [])])
    assert code == 2 and not trained, err
    assert_one_japanese_line(err)
    assert snapshot(base) == before and is_run(base) and not stray_folders(root)
    assert out == base or not out.exists()


@pytest.mark.parametrize("inside", [["MNIST"], ["MNIST", "raw"], ["MNIST", "tb", "deeper"]])
def test_tensorboard_logs_never_go_into_the_mnist_data(tmp_path, monkeypatch, inside):
    trained = []
    monkeypatch.setattr("mnist_lab.cli.fit", lambda *a, **k: trained.append(1))
    raw = tmp_path / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte").write_bytes(b"data")
    before = snapshot(tmp_path / "mnist")
    code, _, err = run_main(["train", "--dry-run", "--device", "cpu", "--out", tmp_path / "new", "--mnist-dir",
                             tmp_path / "mnist", "--tensorboard", (tmp_path / "mnist").joinpath(*inside)])
    assert code == 2 and not trained, err
    assert_one_japanese_line(err)
    assert snapshot(tmp_path / "mnist") == before and sorted(tmp_path.iterdir()) == [tmp_path / "mnist"]


@pytest.mark.parametrize("name", ["results.json", "model.pt"])
def test_a_run_file_that_is_a_folder_is_not_reported_as_missing(tmp_path, name):
    from test_faults import previous_run

    from mnist_lab.runs import read_run

    run = previous_run(tmp_path / "run")
    (run / name).unlink()
    with pytest.raises(UserError) as missing:
        read_run(run)
    (run / name).mkdir()
    with pytest.raises(UserError) as folder:
        read_run(run)
    assert_japanese_message(folder.value)
    assert name in str(folder.value) and str(folder.value) != str(missing.value)


@pytest.mark.parametrize(("where", "attribute"), [("model.pt", "+i"), ("results.json", "+a"), (".", "+i")])
def test_force_onto_a_run_that_cannot_be_removed_is_refused_before_training(tmp_path, where, attribute):
    """A run holding a file (or being a folder) with the immutable or append-only attribute: even root cannot
    remove it, so ``--force`` would train, then leave the old run in a hidden folder beside the new one. Refused
    before training instead, the old run as it was."""
    from test_faults import previous_run, snapshot

    run = previous_run(tmp_path / "run")
    before = snapshot(run)
    subprocess.run(["chattr", attribute, str(run / where)], check=True)
    try:
        code, out, err = run_main(["train", "--epochs", "1", "--device", "cpu", "--force", "--out", run])
    finally:  # wherever the file went (a failing version moves it aside): pytest must be able to remove it
        subprocess.run(["chattr", "-R", "-ia", str(tmp_path)], check=True)
    assert code == 2 and not out, (out, err)
    assert_one_japanese_line(err)
    assert snapshot(run) == before and not stray_folders(tmp_path)


def test_a_dry_run_never_replaces_a_finished_run_even_with_force(tmp_path, monkeypatch):
    """``--dry-run`` checks that everything runs (one batch): with ``--force`` over a finished run it would replace a
    trained model by a meaningless one. Refused in one line before training; the run stays byte for byte."""
    trained = []
    monkeypatch.setattr("mnist_lab.cli.fit", lambda *a, **k: trained.append(1))
    run = previous_run(tmp_path / "run")
    before = snapshot(run)
    code, out, err = run_main(["train", "--dry-run", "--device", "cpu", "--force", "--out", run])
    assert code == 2 and not out and not trained, err
    assert_one_japanese_line(err)
    assert snapshot(run) == before and sorted(tmp_path.iterdir()) == [run]


def test_a_checkpoint_of_weights_without_values_is_one_line(tmp_path, capsys):
    """Tensors on the ``meta`` device (a model built under ``torch.device("meta")``) have shapes but no numbers."""
    path = tmp_path / "meta.pt"
    torch.save({"format": FORMAT, "model": "quick_cnn", "config": {}, "results": {},
                "state_dict": {k: torch.empty_like(v, device="meta")
                               for k, v in build_model("quick", seed=0).state_dict().items()}}, path)
    seven(tmp_path / "seven.png")
    for argv in (["predict", path, tmp_path / "seven.png"], ["evaluate", path]):
        code, out, err = run_main(argv)
        assert code == 2 and not out, err
        assert_one_japanese_line(err)


def test_a_record_saved_with_a_bom_is_read_and_a_broken_edit_is_pointed_at(run, tmp_path):
    """Windows Notepad saves results.json with a UTF-8 BOM: read as it is. A hand edit that breaks the JSON (a
    trailing comma) is refused in one line that gives the line of the edit, so it can be undone."""
    folder = tmp_path / "run"
    shutil.copytree(run, folder)
    text = (run / "results.json").read_text(encoding="utf-8")
    (folder / "results.json").write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert read_run(folder)[0] == read_run(run)[0]
    edited = text.rstrip().removesuffix("}").rstrip() + ",\n}\n"  # a trailing comma: JSON stops at the last line
    (folder / "results.json").write_text(edited, encoding="utf-8")
    with pytest.raises(UserError) as refused:
        read_run(folder)
    assert_japanese_message(refused.value)
    assert str(edited.count("\n")) in str(refused.value).replace(str(folder), ""), refused.value  # the line
