"""The CLI end to end, in this process (``main(argv)`` is the whole command): real runs, and every bad input ending
in exit status 2 with one line that names what is wrong. The installed ``mnist-lab`` command runs once as a process;
signals, encodings and permissions, where the process itself is under test, are in test_process.py and
test_faults.py."""

import json
import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from mnist_lab import UserError, build_model, save_checkpoint
from mnist_lab.cli import main


def run_main(capsys, *argv):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:  # argparse's usage errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *names):
    """Exit status 2 and one line on stderr that names each of ``names`` (a file, a value): no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert "Traceback" not in err and all(name in lines[0] for name in names), lines[0]


@pytest.fixture
def checkpoint(tmp_path):
    """A checkpoint as ``train`` writes it (an untrained quick model: enough for the command's checks)."""
    return save_checkpoint(tmp_path / "model.pt", build_model("quick", seed=0), {"model": "quick"})


def digit_image(path, mode="RGB", ink="black", paper="white", size=(300, 400)):
    image = Image.new(mode, size, paper)
    w, h = size
    seven = [(0.27 * w, 0.2 * h), (0.73 * w, 0.2 * h), (0.4 * w, 0.88 * h)]
    ImageDraw.Draw(image).line(seven, fill=ink, width=max(2, w // 12))
    image.save(path)
    return path


def test_train_dry_run_writes_metrics_and_checkpoint(capsys, tmp_path, mnist_root):
    out = tmp_path / "run"
    code, stdout, _ = run_main(capsys, "train", "--preset", "original", "--dry-run", "--data", mnist_root,
                               "--device", "cpu", "--out", out)
    assert code == 0 and stdout
    metrics = json.loads((out / "results.json").read_text())
    assert {"test_accuracy", "train_seconds", "epochs", "model", "device", "history"} <= set(metrics)
    assert metrics["model"] == "original_cnn" and metrics["epochs"] == 1 and metrics["dry_run"] is True
    assert 0 <= metrics["test_accuracy"] <= 1 and len(metrics["history"]["records"]) == 1
    assert (out / "model.pt").is_file()


def test_evaluate_prints_accuracy_and_table(capsys, trained, mnist_root):
    code, out, _ = run_main(capsys, "evaluate", trained[2], "--data", mnist_root, "--device", "cpu")
    assert code == 0
    accuracy = float(re.search(r"([0-9.]+) ?%", out).group(1))  # the first percentage printed: the test accuracy
    assert accuracy > 98
    assert "precision" in out and "support" in out and len(out.splitlines()) >= 12


def test_predict_reads_drawn_digits_of_any_kind(capsys, trained, tmp_path):
    images = [digit_image(tmp_path / "black_on_white.png"),
              digit_image(tmp_path / "white_on_black.jpg", ink="white", paper="black", size=(64, 90)),
              digit_image(tmp_path / "transparent.png", mode="RGBA", ink=(0, 0, 0, 255), paper=(0, 0, 0, 0)),
              digit_image(tmp_path / "gray.png", mode="L", ink=30, paper=220)]
    code, out, err = run_main(capsys, "predict", trained[2], *images, "--device", "cpu")
    assert code == 0, err
    assert [line.split(": ")[1][0] for line in out.splitlines()] == ["7"] * 4, out


def test_predict_keeps_going_past_a_bad_image(capsys, trained, tmp_path):
    blank = tmp_path / "blank.png"
    Image.new("L", (50, 50), 255).save(blank)
    code, out, err = run_main(capsys, "predict", trained[2], blank, digit_image(tmp_path / "seven.png"))
    assert "seven.png: 7" in out and "blank.png" not in out
    assert_one_line_error(code, err, "blank.png")


@pytest.mark.parametrize("argv, names", [
    (["train", "--preset", "turbo"], ["turbo"]),
    (["train", "--epochs", "0"], ["epochs"]),
    (["train", "--epochs", "two"], ["two"]),
    (["train", "--mnist-dir", "TMP/nowhere", "--dry-run", "--out", "TMP/o"], ["nowhere"]),
    (["evaluate", "TMP/missing.pt"], ["missing.pt"]),
    (["evaluate", "TMP/notes.txt"], ["notes.txt"]),
    (["predict", "TMP/missing.pt", "TMP/x.png"], ["missing.pt"]),
    (["predict", "CKPT", "TMP/missing.png"], ["missing.png"]),
    (["predict", "CKPT", "TMP/notes.txt"], ["notes.txt"]),
    (["predict", "CKPT", "TMP/empty.png"], ["empty.png"]),
    (["predict", "CKPT"], ["IMAGE"]),
    (["train", "--lr", "1e39", "--dry-run", "--out", "TMP/o"], ["lr"]),  # over float32: the update overflows
    (["train", "--lr", "2e6", "--dry-run", "--out", "TMP/o"], ["lr"]),  # a run no report could read
    (["app", "CKPT", "--host", ""], ["--host"]),  # an unset $HOST would listen on every network
])
def test_bad_input_is_one_line_naming_it(capsys, tmp_path, checkpoint, argv, names):
    (tmp_path / "notes.txt").write_text("not a checkpoint nor an image")
    Image.new("RGB", (40, 40), "white").save(tmp_path / "empty.png")
    argv = [a.replace("CKPT", str(checkpoint)).replace("TMP", str(tmp_path)) for a in argv]
    code, out, err = run_main(capsys, *argv)
    assert_one_line_error(code, err, *names)
    assert out == "" and not (tmp_path / "o").exists()  # nothing printed as a result, nothing half-written


def test_every_flag_states_its_default():
    from mnist_lab.cli import build_parser

    parser = build_parser()
    subparsers = parser._subparsers._group_actions[0].choices
    for name, sub in subparsers.items():
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert "既定" in (action.help or ""), f"{name} {action.option_strings}"
    assert set(subparsers) >= {"train", "evaluate", "predict"}


def test_train_best_preset_switches_and_tensorboard(capsys, tmp_path, mnist_root):
    out, logs = tmp_path / "run", tmp_path / "tb"
    code, _, err = run_main(capsys, "train", "--preset", "best", "--dry-run", "--data", mnist_root,
                                 "--device", "cpu", "--out", out, "--no-augment", "--schedule", "cosine",
                                 "--tensorboard", logs)
    assert code == 0, err
    metrics = json.loads((out / "results.json").read_text())
    assert metrics["config"]["model"] == "ensemble" and metrics["config"]["augment"] is False
    assert metrics["config"]["schedule"] == "cosine" and metrics["config"]["val_size"] == 5000
    assert metrics["history"]["eval_split"] == "val" and metrics["best_epoch"] == 1
    assert list(logs.rglob("events.out.tfevents.*"))


def test_the_installed_command_works_from_any_folder(tmp_path, installed_command):
    """The console script as a process: it finds the package from any folder, names itself in its help, and a
    mistake is the real interpreter's exit status 2 with one line."""
    result = subprocess.run([installed_command, "train", "--help"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0 and "mnist-lab train" in result.stdout.splitlines()[0], result.stderr
    assert "--force" in result.stdout and "--dry-run" in result.stdout
    result = subprocess.run([installed_command, "evaluate", "nowhere.pt"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, check=False)
    assert_one_line_error(result.returncode, result.stderr, "nowhere.pt")


def test_the_optional_logs_wrapper_passes_on_every_hook_of_a_callback():
    """A hook BestEffort does not pass on never reaches TensorBoard; one with another signature breaks training."""
    import inspect

    from mnist_lab.callbacks import Callback
    from mnist_lab.cli import BestEffort

    hooks = [name for name in vars(Callback) if name.startswith(("on_", "before_"))]
    assert hooks
    for name in hooks:
        assert name in vars(BestEffort), name
        assert inspect.signature(getattr(BestEffort, name)) == inspect.signature(getattr(Callback, name)), name


# --- a quoted ~ is the home folder, wherever a path comes from -----------------------------------------------------

TILDE_ARGV = {  # every path a command takes, each written with a quoted ~ (the attribute it lands in, by position)
    "train": (["train", "--out", "~/{0}", "--tensorboard", "~/{1}", "--mnist-dir", "~/{2}"], "out tensorboard mnist_dir"),
    "evaluate": (["evaluate", "~/{0}", "--data", "~/{1}"], "checkpoint mnist_dir"),
    "predict": (["predict", "~/{0}", "~/{1}", "~/{2}"], "checkpoint images images"),
    "report": (["report", "~/{0}", "--mnist-dir", "~/{1}"], "run_dir mnist_dir"),
    "app": (["app", "~/{0}"], "checkpoint"),
}


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from(sorted(TILDE_ARGV)),
       names=st.lists(st.text(st.sampled_from("abcxyz09_-.データ"), min_size=1, max_size=8), min_size=3, max_size=3))
def test_every_path_argument_reads_a_quoted_tilde_as_the_home_folder(monkeypatch, tmp_path, command, names):
    from mnist_lab.cli import build_parser

    monkeypatch.setenv("HOME", str(tmp_path))
    argv, attributes = TILDE_ARGV[command]
    args = build_parser().parse_args([part.format(*names) for part in argv])
    given_paths = [getattr(args, a) for a in dict.fromkeys(attributes.split())]
    flat = [p for value in given_paths for p in (value if isinstance(value, list) else [value])]
    assert [Path(p) for p in flat] == [tmp_path / name for name in names[:len(flat)]]


@pytest.mark.parametrize("source", ["--mnist-dir", "--data", "MNIST_LAB_DATA"])
def test_a_quoted_tilde_in_the_mnist_folder_is_the_home_folder(monkeypatch, tmp_path, mnist_root, source):
    """Where the earlier message said `mkdir -p ~/mnist`, doing that now works; a file there is named as given."""
    from mnist_lab.data import ENV_ROOT, ensure_mnist

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv(ENV_ROOT, raising=False)
    monkeypatch.chdir(tmp_path)
    argv = ["evaluate", "model.pt", *([source, "~/mnist"] if source.startswith("--") else [])]
    if not source.startswith("--"):
        monkeypatch.setenv(ENV_ROOT, "~/mnist")
    folder = build_parser_args(argv).mnist_dir
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "MNIST").symlink_to(Path(mnist_root).resolve() / "MNIST")
    assert ensure_mnist(folder, download=False).resolve() == (tmp_path / "mnist").resolve()
    (tmp_path / "mnist" / "MNIST").unlink()
    (tmp_path / "mnist").rmdir()
    (tmp_path / "mnist").write_text("not a folder")
    with pytest.raises(UserError) as refused:
        ensure_mnist(folder, download=False)
    setting = "--mnist-dir" if source == "--data" else source  # --data is the flag's older name
    assert setting in str(refused.value) and "\n" not in str(refused.value)  # says which setting to change


def build_parser_args(argv):
    from mnist_lab.cli import build_parser

    return build_parser().parse_args(argv)


def test_a_quoted_tilde_in_out_makes_no_folder_named_tilde(monkeypatch, tmp_path, capsys):
    """`train --out "~/x"` writes the run in the home folder, not in ./~/x."""
    from test_train import tiny_data

    from mnist_lab import cli
    from mnist_lab.runs import is_run

    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    monkeypatch.setattr(cli, "load_mnist", lambda root=None, val_size=0, seed=0: tiny_data(64))
    code, _, err = run_main(capsys, "train", "--dry-run", "--device", "cpu", "--out", "~/x")
    assert code == 0 and is_run(home / "x") and not list(work.iterdir()), err


def test_version_names_the_installed_package(capsys):
    import importlib.metadata

    with pytest.raises(SystemExit) as ended:
        main(["--version"])
    assert ended.value.code == 0
    assert importlib.metadata.version("mnist-lab") in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["Train"], ["train", "extra", "--dry-run"], ["predict", "a.pt"],
                                  ["report", "--epochs", "3", "run"]])
def test_a_usage_mistake_points_to_the_help_of_the_command_given(argv, capsys):
    with pytest.raises(SystemExit) as ended:
        main(argv)
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert ended.value.code == 2 and "Traceback" not in line
    command = argv[0] if argv[0] in ("train", "evaluate", "predict", "report", "app") else None
    helps = re.findall(r"`([^`]*) --help`", line)
    assert helps and helps[-1].split()[-1] == (command or helps[-1].split()[-1]) and (command or "mnist") in helps[-1]
    assert not re.search(r"\b(command|argument|invalid|choose)\b", line)  # argparse's English is translated


@pytest.mark.parametrize("moment", ["starting", "ending"])
def test_a_signal_as_a_command_starts_or_ends_is_one_line(moment, monkeypatch, capsys):
    """Ctrl+C or kill in the instant before a command's signal handlers are set, or as they are taken down after
    its last line: one line and 128 + the signal, never a traceback."""
    import contextlib
    import signal

    from mnist_lab import cli
    from mnist_lab.interrupts import Interrupted, Signals

    @contextlib.contextmanager
    def ends_with_a_signal(then_ignore=False):
        yield Signals()
        raise Interrupted(signal.SIGTERM)

    def starts_with_a_signal():
        raise Interrupted(signal.SIGTERM)

    if moment == "starting":
        monkeypatch.setattr(cli, "build_parser", starts_with_a_signal)
    else:
        monkeypatch.setattr(cli, "stop_on_signals", ends_with_a_signal)
    code = main(["predict", str(Path(__file__).parents[1] / "mnist_lab" / "pad_model.pt"), "missing.png"])
    assert code == 128 + signal.SIGTERM
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.strip() and "missing.png" not in line]
    assert "Traceback" not in line and re.search(r"[\u3040-\u30ff]", line)


def test_a_preset_teaching_non_digits_trains_any_model_given_with_a_note(tmp_path, mnist_root, capsys):
    """``--preset pad --model quick_cnn``: the pad recipe for that model (without non-digits, which it has no place
    for), as the lesson's for_model does, instead of pointing to a setting the command line does not have."""
    from mnist_lab import load_checkpoint

    code = main(["train", "--preset", "pad", "--model", "quick_cnn", "--dry-run", "--device", "cpu",
                 "--mnist-dir", str(mnist_root), "--out", str(tmp_path / "run")])
    assert code == 0, capsys.readouterr().err
    assert load_checkpoint(tmp_path / "run" / "model.pt")[1]["config"]["not_digits"] == 0
    assert any(line.startswith("お知らせ: ") for line in capsys.readouterr().err.splitlines())


def test_the_mnist_folder_in_a_message_can_be_pasted_into_a_shell(tmp_path, monkeypatch, capsys):
    import shlex

    monkeypatch.setenv("MNIST_LAB_DATA", str(tmp_path / "mnist "))  # a space at the end, invisible in a message
    code = main(["train", "--dry-run", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and shlex.quote(str(tmp_path / "mnist ")) in err


@pytest.mark.parametrize("value", ["0", "false", "No", "off", ""])
def test_debug_switched_off_in_words_shows_no_traceback(value, monkeypatch, capsys, tmp_path, checkpoint):
    """MNIST_LAB_DEBUG=0 (false, no, off, empty) is off, as for every MNIST_LAB_ boolean: one line, status 2."""
    monkeypatch.setenv("MNIST_LAB_DEBUG", value)
    code, _, err = run_main(capsys, "predict", checkpoint, tmp_path / "missing.png")
    assert_one_line_error(code, err, "missing.png")


def test_debug_switched_on_shows_the_traceback(monkeypatch, capsys, tmp_path, checkpoint):
    monkeypatch.setenv("MNIST_LAB_DEBUG", "1")
    with pytest.raises(UserError):
        main(["evaluate", str(tmp_path / "missing.pt")])


def test_environment_variables_that_change_the_recipe_are_named_in_one_note(monkeypatch, capsys):
    """A MNIST_LAB_<FIELD> left from CI or the notebook's fast mode changes what ``train`` trains: one note names
    each variable that did (not one overridden by a flag typed, nor one equal to the preset's value)."""
    from dataclasses import replace

    from mnist_lab.cli import build_parser, train_config
    from mnist_lab.recipes import PRESETS

    args = build_parser().parse_args(["train", "--preset", "original", "--epochs", "3"])
    assert train_config(args, "original") == replace(PRESETS["original"], epochs=3)
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("MNIST_LAB_MODEL", "mlp")
    monkeypatch.setenv("MNIST_LAB_EPOCHS", "1")
    monkeypatch.setenv("MNIST_LAB_LR", str(PRESETS["original"].lr))
    config = train_config(args, "original")
    notes = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert config.model == "mlp" and config.epochs == 3
    assert len(notes) == 1 and "MNIST_LAB_MODEL" in notes[0], notes
    assert "MNIST_LAB_EPOCHS" not in notes[0] and "MNIST_LAB_LR" not in notes[0], notes


@pytest.mark.parametrize(("variable", "value", "flag"), [("MNIST_LAB_EMA", "nan", "--ema"),
                                                         ("MNIST_LAB_EPOCHS", "0", "--epochs")])
def test_a_bad_environment_value_names_the_variable_not_a_flag_never_typed(variable, value, flag, monkeypatch,
                                                                           capsys, tmp_path):
    monkeypatch.setenv(variable, value)
    code, _, err = run_main(capsys, "train", "--dry-run", "--out", tmp_path / "run")
    assert_one_line_error(code, err, variable)
    assert flag not in err and not (tmp_path / "run").exists()
    code, _, err = run_main(capsys, "train", "--dry-run", "--out", tmp_path / "run", flag, value)
    assert_one_line_error(code, err, flag)
