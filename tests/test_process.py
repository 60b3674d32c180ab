"""The real ``train`` process, from outside: SIGINT, SIGTERM and SIGHUP at generated moments, SIGKILL and what it
leaves for the next run, file names that are not UTF-8 on a strict UTF-8 terminal, and output nobody reads.

The command runs on tiny toy data (tests/toy_cli.py), which prints ``EPOCH n`` after each epoch so that a signal
can be sent at a known point. Invariants: the status is 128 + the signal's number (or 0 when the run had already
ended), a stopped run is one Japanese line on stderr without a traceback, whatever is at ``--out`` is a whole run
(holding at least every epoch that had finished when the signal came) or the earlier run byte for byte, and no
hidden folder is left.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from invariants import assert_one_japanese_line, problem_lines, run_main, snapshot, stray_folders
from test_faults import previous_run, seven

from mnist_lab import build_model, save_checkpoint
from mnist_lab.runs import FIGURES, is_run

REPO = Path(__file__).resolve().parents[1]
TOY = REPO / "tests" / "toy_cli.py"
ENV = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}


def start(out, *extra, n=768, epochs=4):
    argv = [sys.executable, str(TOY), "train", "--device", "cpu", "--epochs", str(epochs), "--batch-size", "32",
            "--out", out, *extra]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**ENV, "TOY_N": str(n)})


def wait_for_epoch(process, epoch):
    """Read the process's stdout up to the line ``EPOCH epoch``; False if it ended before."""
    for line in iter(process.stdout.readline, b""):
        if line.strip() == f"EPOCH {epoch}".encode():
            return True
    return False


moments = st.one_of(st.tuples(st.just(0), st.floats(0, 2.5)),  # while starting and loading the data
                    st.tuples(st.integers(1, 2), st.floats(0, 0.4)))  # after epoch 1 or 2 finished


@settings(max_examples=6, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(signum=st.sampled_from([signal.SIGINT, signal.SIGTERM, signal.SIGHUP]), moment=moments,
       earlier=st.booleans())
def test_a_signal_at_any_moment_keeps_every_finished_epoch_or_the_earlier_run(tmp_path, signum, moment, earlier):
    base = Path(os.path.realpath(tmp_path)) / f"case{time.monotonic_ns()}"
    out = base / "run"
    before = snapshot(previous_run(out)) if earlier else None
    process = start(out, *(["--force"] if earlier else []))
    epoch, delay = moment
    reached = wait_for_epoch(process, epoch) if epoch else True
    time.sleep(delay)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=300)
    stderr = stderr.decode()
    if process.returncode == -signum:  # still importing, before the command could start anything: the signal's
        assert not epoch and not out.exists() or snapshot(out) == before, stderr  # default (a shell says 128+N)
        return
    assert process.returncode in (0, 128 + signum), (process.returncode, stderr)
    if process.returncode:
        assert_one_japanese_line(stderr, prefix="")
    else:
        assert not problem_lines(stderr), stderr
    beside = out.with_name(f"{out.name}-2")  # where a stopped run goes when it may not replace the earlier one
    new = (out if out.is_dir() and is_run(out) and (not earlier or snapshot(out) != before) else
           beside if beside.is_dir() and is_run(beside) else None)
    if new is not None:
        metrics = json.loads((new / "results.json").read_text())
        assert metrics["kept_epoch"] == len(metrics["history"]["records"])  # no validation split: the last epoch
        assert metrics["kept_epoch"] >= (epoch if reached else 0), "a finished epoch was lost"
    else:
        assert not (epoch and reached), "the run was lost although an epoch had finished"
        assert snapshot(out) == before if earlier else not out.exists()
    if earlier and process.returncode:  # --force replaces an earlier run only with a whole one
        assert snapshot(out) == before, "a stopped run replaced the earlier one"
    assert not stray_folders(base), stray_folders(base)


def test_ctrl_c_while_the_command_loads_pytorch_is_one_line(tmp_path):
    """A student who presses Ctrl+C at once: the package is still importing PyTorch (about 1.5 s)."""
    process = subprocess.Popen([sys.executable, "-m", "mnist_lab", "train", "--dry-run", "--out", tmp_path / "run"],
                               stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=ENV)
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    # -2: before Python itself had started; 0: a library being imported swallowed it (seldom) and the run finished
    assert process.returncode in (130, -signal.SIGINT, 0), stderr.decode()
    assert "Traceback" not in stderr.decode()
    if process.returncode == 130:
        assert_one_japanese_line(stderr.decode(), prefix="")
        assert not (tmp_path / "run").exists()


def test_a_stopped_force_run_goes_beside_the_earlier_run_it_may_not_replace(tmp_path):
    """``docker stop`` or the hub's culler during a ``--force`` retrain: the finished earlier run stays, and the
    epochs the new one finished are kept beside it."""
    out = tmp_path / "run"
    before = snapshot(previous_run(out))
    process = start(out, "--force", epochs=50)
    assert wait_for_epoch(process, 1)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 128 + signal.SIGTERM, stderr.decode()
    assert snapshot(out) == before
    kept = json.loads((tmp_path / "run-2" / "results.json").read_text())
    assert kept["kept_epoch"] >= 1 and kept["interrupted"]


def test_signals_while_the_finished_command_exits_change_nothing(tmp_path):
    """Ctrl+C pressed again and again after the last epoch: the run is saved and Python's own clean-up at exit is
    never interrupted (no traceback); the status says the run was saved (0) or that a signal stopped it (130)."""
    out = tmp_path / "run"
    process = start(out, epochs=1, n=64)
    assert wait_for_epoch(process, 1)
    while process.poll() is None:
        process.send_signal(signal.SIGINT)
        time.sleep(0.005)
    stderr = process.stderr.read().decode()
    assert process.returncode in (0, 130), (process.returncode, stderr)
    if process.returncode:
        assert_one_japanese_line(stderr, prefix="")
    else:
        assert not problem_lines(stderr), stderr
    assert is_run(out) and not stray_folders(tmp_path)


def test_a_killed_run_leaves_a_folder_the_next_run_names_and_removes(tmp_path):
    out = tmp_path / "run"
    process = start(out, epochs=50)
    assert wait_for_epoch(process, 1)
    process.kill()  # SIGKILL: no handler, no cleanup
    process.wait(timeout=60)
    left = stray_folders(tmp_path)
    assert left, "a killed run should have left its staging folder (this test must be able to fail)"
    result = subprocess.run([sys.executable, str(TOY), "train", "--dry-run", "--device", "cpu", "--out", out],
                            capture_output=True, text=True, env=ENV, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if line.startswith("お知らせ: ")]
    assert len(notes) == 1 and str(left[0]) in notes[0] and not problem_lines(result.stderr), result.stderr
    assert is_run(out) and not stray_folders(tmp_path)


@pytest.fixture
def toy_training(monkeypatch):
    from test_train import tiny_data

    monkeypatch.setattr("mnist_lab.cli.load_mnist", lambda root=None, val_size=0, seed=0: tiny_data(64))


LONGEST = "é" * 127 + "n"  # 255 bytes: the longest name a folder can have; its hidden folders' names are cut short


@pytest.mark.parametrize(("inside", "name"), [(False, "run"), (True, "run"), (False, LONGEST)])
def test_an_old_run_left_aside_by_a_killed_replacement_is_put_back(tmp_path, toy_training, monkeypatch, inside,
                                                                   name):
    """Killed between moving the old run aside and moving the new one in: the next run puts the old one back."""
    from mnist_lab.files import hidden_prefix

    old = snapshot(previous_run(tmp_path / "old"))
    if inside:  # the run folder must stay ('.'): the old files were moved into a hidden folder inside it
        out = tmp_path / "here"
        out.mkdir()
        (tmp_path / "old").rename(out / ".replaced-abcd1234")
        save_checkpoint(out / "model.pt", build_model("quick"))  # the new run's first file had moved in
        monkeypatch.chdir(out)
    else:
        out, aside = tmp_path / name, tmp_path / (hidden_prefix(name, "replaced") + "abcd1234")
        aside.mkdir()
        (tmp_path / "old").rename(aside / name)
    code, _, err = run_main(["train", "--dry-run", "--device", "cpu", "--out", "." if inside else out])
    assert code == 2 and any(line.startswith("お知らせ: ") for line in err.splitlines()), err
    assert "--force" in assert_one_japanese_line(err)  # the old run is back, so it is not replaced unasked
    assert snapshot(out) == old and not stray_folders(tmp_path)


def test_file_names_that_are_not_utf8_on_a_strict_utf8_terminal(tmp_path):
    """The run is written and the status says so: printing such a name can no longer fail afterwards."""
    base = os.fsencode(tmp_path)
    strict = {**ENV, "PYTHONIOENCODING": "utf-8:strict", "LC_ALL": "C.UTF-8"}
    out = base + b"/run-\xff\xfe"
    result = subprocess.run([sys.executable, str(TOY), "train", "--dry-run", "--device", "cpu", "--out", out],
                            capture_output=True, env=strict, timeout=300, check=False)
    assert result.returncode == 0 and not problem_lines(result.stderr.decode()), result.stderr.decode()
    assert is_run(os.fsdecode(out)) and b"\\xff\\xfe" in result.stdout
    image = base + b"/seven-\xe9.png"
    seven(Path(os.fsdecode(image)))
    result = subprocess.run([sys.executable, "-m", "mnist_lab", "predict", out + b"/model.pt", image,
                             base + b"/missing-\xe9.png"], capture_output=True, env=strict, timeout=300, check=False)
    assert result.returncode == 2 and result.stdout.count(b"\n") == 1 and b"\\xe9" in result.stdout
    assert_one_japanese_line(result.stderr.decode())
    assert b"missing-\\xe9" in result.stderr, result.stderr  # the byte as on stdout, never Python's \udce9


def test_output_nobody_reads_does_not_fail_the_run(tmp_path):
    """stdout closed by the reader (``| head -c0``): the run is written and the status is still 0."""
    out = tmp_path / "run"
    process = subprocess.Popen([sys.executable, str(TOY), "train", "--dry-run", "--device", "cpu", "--out", out],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=300) == 0 and not problem_lines(stderr), stderr
    assert is_run(out)


def test_a_printed_result_that_could_not_be_written_fails_and_a_written_run_does_not(tmp_path, mnist_root):
    """stdout on a full device (``> /dev/full``) or a pipe whose reader has gone: ``predict`` and ``evaluate``, whose
    result is what they print, fail (one line for a full device; 128 + SIGPIPE, silent, for a closed pipe);
    ``train``, whose result is its folder, writes it and succeeds."""
    checkpoint = save_checkpoint(tmp_path / "model.pt", build_model("quick_cnn"), {})
    image = seven(tmp_path / "seven.png")
    mnist = [sys.executable, "-m", "mnist_lab"]
    commands = {  # name: (argv, stdout, the statuses it may end with)
        "predict --json > /dev/full": ([*mnist, "predict", "--json", checkpoint, image], "/dev/full", {2}),
        "predict | closed": ([*mnist, "predict", checkpoint, image, image], subprocess.PIPE, {141}),
        "evaluate > /dev/full": ([*mnist, "evaluate", "--mnist-dir", mnist_root, "--device", "cpu", checkpoint],
                                 "/dev/full", {2}),
        "train > /dev/full": ([sys.executable, str(TOY), "train", "--dry-run", "--device", "cpu", "--out",
                               tmp_path / "run"], "/dev/full", {0}),
    }
    running = {}
    for name, (argv, sink, _) in commands.items():
        with open(sink, "w") if sink != subprocess.PIPE else contextlib.nullcontext(sink) as stdout:
            running[name] = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.PIPE, env=ENV)
        if running[name].stdout:
            running[name].stdout.close()  # the reader is gone before anything is written
    for name, process in running.items():
        stderr = process.stderr.read().decode()
        code = process.wait(timeout=300)
        assert code in commands[name][2], (name, code, stderr)
        if code == 2:
            assert_one_japanese_line(stderr)
        else:  # succeeded, or stopped by the closed pipe as Unix tools are (`| head -1`): nothing to say
            assert not problem_lines(stderr), stderr
    assert is_run(tmp_path / "run")


def test_a_closed_stdout_or_stderr_is_a_stream_whose_writes_fail(tmp_path):
    """``>&-``, ``2>&-`` or both: Python starts with no stream there. ``predict``, whose result is what it prints, fails
    with status 2 when stdout is closed; ``train`` writes its run and succeeds; ``--help`` ends normally. Never a
    traceback, never Python's status 120 for a stream it could not flush at exit."""
    checkpoint = save_checkpoint(tmp_path / "model.pt", build_model("quick_cnn"), {})
    image = seven(tmp_path / "seven.png")
    closings = {"stdout": ">&-", "stderr": "2>&-", "both": ">&- 2>&-"}
    predict = [sys.executable, "-m", "mnist_lab", "predict", "--device", "cpu", checkpoint, image]
    cases = {  # (command, what is closed): (argv, status)
        **{("train", closed): ([sys.executable, str(TOY), "train", "--dry-run", "--device", "cpu", "--out",
                                tmp_path / f"run-{closed}"], 0) for closed in closings},
        ("predict", "stdout"): (predict, 2), ("predict", "both"): (predict, 2),
        ("help", "stdout"): ([sys.executable, "-m", "mnist_lab", "--help"], 0),
    }
    running = {case: subprocess.Popen(["sh", "-c", f'exec "$@" {closings[case[1]]}', "sh", *map(str, argv)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
               for case, (argv, _) in cases.items()}
    for (name, closed), process in running.items():
        stderr = process.communicate(timeout=300)[1].decode()
        expected = cases[name, closed][1]
        assert process.returncode == expected, (name, closed, process.returncode, stderr)
        assert "Traceback" not in stderr, stderr
        if closed == "stdout" and expected == 2:
            assert_one_japanese_line(stderr)
        elif closed == "stdout":
            assert not problem_lines(stderr), (name, stderr)
    for closed in closings:
        assert is_run(tmp_path / f"run-{closed}")


REPORT_MOMENTS = ["data", *FIGURES]  # before the figures are drawn; while one is half written (tests/toy_cli.py)


def start_report(run, moment):
    return subprocess.Popen([sys.executable, str(TOY), "report", run, "--device", "cpu"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**ENV, "TOY_PAUSE": moment})


def paused(process):
    """Wait until ``process`` (:func:`start_report`) stops at its moment; False if it ended before."""
    return any(line.strip() == b"PAUSED" for line in iter(process.stdout.readline, b""))


def toy(*argv):
    return subprocess.run([sys.executable, str(TOY), *map(str, argv)], capture_output=True, env=ENV, timeout=300,
                          check=False)


@settings(max_examples=3, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(signum=st.sampled_from([signal.SIGINT, signal.SIGTERM, signal.SIGHUP]), moment=st.sampled_from(FIGURES))
def test_a_signal_while_report_writes_removes_its_temporary_file(tmp_path, signum, moment):
    base = tmp_path / f"case{time.monotonic_ns()}"
    run = previous_run(base / "run")
    process = start_report(run, moment)
    assert paused(process), process.stderr.read().decode()
    process.send_signal(signum)
    stderr = process.communicate(timeout=300)[1].decode()
    assert process.returncode == 128 + signum, (process.returncode, stderr)
    assert_one_japanese_line(stderr, prefix="")
    assert is_run(run) and not stray_folders(base), stray_folders(base)


def test_what_a_killed_report_left_never_makes_a_run_look_foreign(tmp_path):
    """SIGKILL while a figure is half written leaves its temporary file: the folder is still a run, a run inside it
    is refused, and the next report or ``train --force`` removes the file."""
    run = previous_run(tmp_path / "run")
    for follower in (["report", run, "--device", "cpu"], ["train", "--epochs", "1", "--device", "cpu", "--force", "--out", run]):
        process = start_report(run, "predictions.png")
        assert paused(process)
        process.kill()
        process.communicate(timeout=300)
        assert stray_folders(run) and is_run(run)
        inside = toy("train", "--dry-run", "--device", "cpu", "--out", run / "sub" / "deeper")
        assert inside.returncode == 2 and not (run / "sub").exists(), inside.stderr.decode()
        assert_one_japanese_line(inside.stderr.decode())
        result = toy(*follower)
        assert result.returncode == 0 and not problem_lines(result.stderr.decode()), result.stderr.decode()
        assert is_run(run) and not stray_folders(tmp_path), stray_folders(tmp_path)


@settings(max_examples=2, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(moment=st.sampled_from(FIGURES))
def test_a_run_folder_moved_while_report_writes_keeps_no_temporary_file(tmp_path, moment):
    base = tmp_path / f"case{time.monotonic_ns()}"
    run, moved = previous_run(base / "run"), base / "run-moved"
    process = start_report(run, moment)
    assert paused(process)
    run.rename(moved)
    stderr = process.communicate(b"\n", timeout=300)[1].decode()
    assert process.returncode == 2, stderr
    assert_one_japanese_line(stderr)
    assert is_run(moved) and not stray_folders(base), stray_folders(base)


@settings(max_examples=1, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(moment=st.sampled_from(REPORT_MOMENTS))
@example(moment="data")
def test_a_run_replaced_while_report_runs_never_gets_the_old_models_figures(tmp_path, moment):
    """``train --force`` into the folder while ``report`` has read its model: whichever finishes first, the folder
    ends with the new model and no figure drawn from the old one."""
    base = tmp_path / f"case{time.monotonic_ns()}"
    run = previous_run(base / "run")
    old_model = (run / "model.pt").read_bytes()
    report = start_report(run, moment)
    assert paused(report)
    train = subprocess.Popen([sys.executable, str(TOY), "train", "--epochs", "1", "--device", "cpu", "--force", "--out",
                              run], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    notes = []
    for line in iter(train.stderr.readline, b""):  # until it waits for the report (a note) or has ended
        notes.append(line.decode())
        if line.startswith("お知らせ".encode()):
            break
    report_err = report.communicate(b"\n", timeout=300)[1].decode()
    train_err = "".join(notes) + train.communicate(timeout=300)[1].decode()
    assert train.returncode == 0 and not problem_lines(train_err), train_err
    assert report.returncode in (0, 2), report_err
    if report.returncode:
        assert_one_japanese_line(report_err)
    assert is_run(run) and (run / "model.pt").read_bytes() != old_model
    assert not [name for name in FIGURES if (run / name).exists()], "figures of the replaced model"
    assert not stray_folders(base), stray_folders(base)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_while_predict_reads_is_one_line_and_its_status(tmp_path, signum):
    """``kill``, ``docker stop`` or a closed terminal while ``predict`` reads many images: one Japanese line and
    128 + the signal's number, as after Ctrl+C (Python's default would end it silently)."""
    image = seven(tmp_path / "seven.png")
    argv = [sys.executable, "-m", "mnist_lab", "predict", REPO / "mnist_lab" / "pad_model.pt", *[image] * 20000]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    assert process.stdout.readline()  # it is reading
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, stderr.decode()
    assert_one_japanese_line(stderr.decode(), prefix="")


@given(length=st.integers(200, 255), wide=st.booleans())
@settings(max_examples=6, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_longest_folder_names_take_a_run_and_its_replacement(tmp_path, toy_training, length, wide):
    """Any name a folder can have takes a run, and ``--force`` replaces it (the hidden folders' names beside it are
    longer, so they are cut short), with nothing left beside it."""
    name = ("é" * (length // 2) + "n" * (length % 2)) if wide else "n" * length
    out = tmp_path / f"case{time.monotonic_ns()}" / name
    for extra in ([], ["--force"]):
        code, _, err = run_main(["train", "--dry-run", "--device", "cpu", "--out", out, *extra])
        assert code == 0 and not problem_lines(err), err
        assert is_run(out) and not stray_folders(out.parent)


def test_a_command_run_from_a_deleted_folder_is_one_line(tmp_path):
    """The terminal's folder was removed meanwhile (by another window, a file manager): one line, not oneMKL's."""
    (tmp_path / "gone").mkdir()
    script = 'cd "$1" && rmdir "$1" && exec "$2" -m mnist_lab --version'
    result = subprocess.run(["sh", "-c", script, "sh", tmp_path / "gone", sys.executable], env=ENV,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2, result.stderr
    assert_one_japanese_line(result.stderr)


def test_predict_json_stays_utf8_for_a_file_name_that_is_not(tmp_path):
    """A file name with bytes that are no UTF-8: the JSON is still UTF-8 (the name escaped), and gives the name back."""
    name = os.fsencode(tmp_path) + b"/bad\xff\xfe.png"
    seven(os.fsdecode(name))
    result = subprocess.run([sys.executable, "-m", "mnist_lab", "predict", "--json", "--device", "cpu",
                             os.fsencode(REPO / "mnist_lab" / "pad_model.pt"), name],
                            capture_output=True, env=ENV, timeout=120, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    (reading,) = json.loads(result.stdout.decode("utf-8"))
    assert os.fsencode(reading["image"]) == name and reading["digit"] in range(10)
