"""Bad input and faults, as a new user meets them, through the CLI: one Japanese line, the right exit status,
and nothing lost (an earlier run in the same place stays byte for byte as it was).

Each case is a row: the command, its exit status, a fragment of the one line it must print. Output-folder cases
also check that the previous run is intact; faults (a full disk, a crash between the two files of a run, Ctrl+C,
no permission, out of memory) are made real where the machine allows it (a tiny tmpfs, another user, os._exit)
and injected where it does not.
"""

import errno
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw
from test_train import tiny_data

from mnist_lab import build_model, make_config, save_checkpoint
from mnist_lab.cli import main
from mnist_lab.data import ensure_mnist
from mnist_lab.history import History
from mnist_lab.runs import write_run

REPO = Path(__file__).resolve().parents[1]
IS_ROOT = os.geteuid() == 0


def seven(path, mode="RGB", ink="black", paper="white", size=(120, 160), **save):
    image = Image.new(mode, size, paper)
    w, h = size
    ImageDraw.Draw(image).line([(0.27 * w, 0.2 * h), (0.73 * w, 0.2 * h), (0.4 * w, 0.88 * h)], fill=ink,
                               width=max(2, w // 12))
    image.save(path, **save)
    return path


def png_header_only(path, width, height):
    """A PNG that claims ``width`` x ``height`` pixels (what a huge scan looks like to a reader, without the bytes)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    return path


def previous_run(folder, exist_ok=False):
    """A finished run, as train writes it, with a report figure beside it."""
    history = History(records=[{"epoch": 1, "train_loss": 0.3, "train_accuracy": 0.9, "eval_loss": 0.2,
                                "eval_accuracy": 0.99, "seconds": 1.0, "lr": 0.01}], kept_epoch=1)
    folder.mkdir(parents=True, exist_ok=exist_ok)
    write_run(folder, build_model("quick", seed=0), vars(make_config("quick")), {"test_accuracy": 0.9907}, history)
    (folder / "training_curves.png").write_bytes(b"old figure")
    return folder


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def place(tmp_path, monkeypatch):
    """Everything the cases point at, in a fresh folder; training reads tiny toy data instead of MNIST."""
    tmp_path.chmod(0o755)
    previous_run(tmp_path / "run")
    (tmp_path / "notes.txt").write_text("not a checkpoint nor an image")
    (tmp_path / "empty").mkdir()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("my thesis")
    save_checkpoint(tmp_path / "model.pt", build_model("quick", seed=0))
    impossible_checkpoint(tmp_path / "nan.pt", "fc.weight", float("nan"))  # save_checkpoint refuses to write these
    Image.new("RGB", (40, 40), "white").save(tmp_path / "blank.png")
    seven(tmp_path / "seven.png")
    frames = [Image.new("L", (40, 40), 255), Image.new("L", (40, 40), 0)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    png_header_only(tmp_path / "huge.png", 30000, 30000)
    (tmp_path / "cut.png").write_bytes((tmp_path / "seven.png").read_bytes()[:100])
    os.mkfifo(tmp_path / "fifo.png")  # reading it would wait forever
    (tmp_path / "loop.png").symlink_to("loop.png")
    (tmp_path / "hello.pt").write_text("hello")  # the unpickler fails on it with a KeyError
    impossible_checkpoint(tmp_path / "negvar.pt", "features.0.2.running_var", -1.0)  # a variance cannot be negative
    for name, metrics in (("nohistory", {"test_accuracy": 0.9}), ("broken", None)):
        folder = previous_run(tmp_path / name)
        (folder / "results.json").write_text("{broken" if metrics is None else json.dumps(metrics))
    torch.save(build_model("quick", seed=0), tmp_path / "pickled.pt")  # torch.save(model), not its state_dict
    monkeypatch.setattr("mnist_lab.cli.load_mnist", toy_mnist)
    return tmp_path


def impossible_checkpoint(path, name, value):
    """A checkpoint whose tensor ``name`` holds ``value`` at its first place: edited after saving, as a hand or a
    broken disk could."""
    save_checkpoint(path, build_model("quick", seed=0))
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["state_dict"][name].view(-1)[0] = value
    torch.save(checkpoint, path)


def toy_mnist(root=None, val_size=0, seed=0):
    """Stands in for ``load_mnist``: the real checks of a data folder that is named, then tiny toy data."""
    if root is not None:
        ensure_mnist(root, download=False)
    return tiny_data(256)


def run_cli(place, argv, capsys):
    argv = [str(a).replace("TMP", str(place)) for a in argv]
    try:
        code = main(argv)
    except SystemExit as e:  # argparse
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line(code, err, want_code, fragment):
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("お知らせ")]
    assert code == want_code, err
    assert len(lines) == 1 and lines[0].startswith("エラー: "), err
    assert fragment in lines[0] and "Traceback" not in err, lines[0]


def assert_nothing_lost(place, before):
    assert snapshot(place / "run") == before, "the previous run changed"
    assert not list(place.glob(".*.partial-*")) and not list(place.glob(".*.replaced-*"))


TRAIN = ["train", "--device", "cpu", "--epochs", "1"]  # a whole training (on toy data): it may replace a run
CASES = [  # (argv, exit status, a fragment of the one line)
    # output folders: checked before training, never replaced unless asked
    (TRAIN + ["--out", "TMP/run"], 2, "--force"),
    (TRAIN + ["--out", "TMP/notes.txt"], 2, "ファイルです"),
    (TRAIN + ["--out", "TMP/mine"], 2, "学習結果ではない"),
    (TRAIN + ["--out", "TMP/mine", "--force"], 2, "学習結果ではない"),
    (TRAIN + ["--out", "TMP/notes.txt/run"], 2, "ファイル"),
    (TRAIN + ["--out", "TMP/new", "--tensorboard", "TMP/notes.txt"], 2, "TensorBoard"),
    # settings
    (TRAIN + ["--out", "TMP/new", "--lr", "inf"], 2, "学習率"),
    (TRAIN + ["--out", "TMP/new", "--lr", "nan"], 2, "学習率"),
    (TRAIN + ["--out", "TMP/new", "--lr", "-1"], 2, "学習率"),
    (TRAIN + ["--out", "TMP/new", "--epochs", "0"], 2, "epochs"),
    (TRAIN + ["--out", "TMP/new", "--batch-size", "0"], 2, "--batch-size"),  # the flag typed, not the setting
    (TRAIN + ["--out", "TMP/new", "--val-size", "-5"], 2, "--val-size"),
    (TRAIN + ["--out", "TMP/new", "--patience", "3"], 2, "検証データ"),
    (TRAIN + ["--out", "TMP/new", "--ema", "1.5"], 2, "ema"),
    (TRAIN + ["--out", "TMP/new", "--model", "vgg"], 2, "vgg"),
    (TRAIN + ["--out", "TMP/new", "--preset", "turbo"], 2, "turbo"),
    # argparse, in Japanese
    ([], 2, "コマンド"),
    (["fly"], 2, "fly"),
    (["train", "--device", "tpu"], 2, "のどれか"),
    (["train", "--epochs", "two"], 2, "整数ではありません"),
    (["train", "--lr", "fast"], 2, "数ではありません"),
    (["train", "--epochs"], 2, "値を 1 つ"),
    (["train", "--schedule", "linear"], 2, "linear"),
    (["train", "--colour", "red"], 2, "知らない引数"),
    (["predict", "TMP/model.pt"], 2, "IMAGE を指定"),
    (["evaluate"], 2, "checkpoint を指定"),
    # data
    (["evaluate", "TMP/model.pt", "--data", "TMP/notes.txt"], 2, "ファイルです"),
    (["evaluate", "TMP/model.pt", "--data", "TMP/mnsit"], 2, "がありません"),
    (["evaluate", "TMP/model.pt", "--data", "TMP/empty"], 2, "train-images-idx3-ubyte"),
    # checkpoints
    (["evaluate", "TMP/missing.pt"], 2, "見つかりません"),
    (["evaluate", "TMP/run"], 2, "フォルダです"),
    (["evaluate", "TMP/notes.txt"], 2, "読めません"),
    (["evaluate", "TMP/nan.pt"], 2, "NaN"),
    (["predict", "TMP/nan.pt", "TMP/seven.png"], 2, "NaN"),
    (["predict", "TMP/empty", "TMP/seven.png"], 2, "フォルダです"),
    # images
    (["predict", "TMP/model.pt", "TMP/nothing.png"], 2, "見つかりません"),
    (["predict", "TMP/model.pt", "TMP/empty"], 2, "フォルダです"),
    (["predict", "TMP/model.pt", "TMP/notes.txt"], 2, "画像として読めません"),
    (["predict", "TMP/model.pt", "TMP/cut.png"], 2, "画像として読めません"),
    (["predict", "TMP/model.pt", "TMP/blank.png"], 2, "何か書いてください"),
    (["predict", "TMP/model.pt", "TMP/anim.gif"], 2, "動く画像"),
    (["predict", "TMP/model.pt", "TMP/huge.png"], 2, "大きすぎ"),
    (["predict", "TMP/model.pt", "TMP/fifo.png"], 2, "fifo.png"),
    (["predict", "TMP/model.pt", "TMP/loop.png"], 2, "loop.png"),
    (["predict", "TMP/model.pt", "TMP/no\nsuch.png"], 2, "no\\nsuch.png"),  # a newline in a name: still one line
    (["predict", "TMP/model.pt", ""], 2, "IMAGE"),
    (["evaluate", "TMP/hello.pt"], 2, "hello.pt"),
    (["evaluate", "TMP/negvar.pt"], 2, "running_var"),
    (TRAIN + ["--out", ""], 2, "--out"),
    (TRAIN + ["--out", "TMP/run/sub"], 2, "sub"),
    (TRAIN + ["--out", "TMP/new", "--tensorboard", "TMP/new/tb"], 2, "--tensorboard"),
    (TRAIN + ["--out", "TMP/new", "--seed", "-1"], 2, "seed"),
    (TRAIN + ["--out", "TMP/new", "--seed", str(2**64)], 2, "seed"),
    # round 10: what the user typed is what the line names
    (["predict", "TMP/pickled.pt", "TMP/seven.png"], 2, "torch.save"),  # a whole model, pickled: not "broken"
    (["predict", "TMP/seven.png", "TMP/model.pt"], 2, "model.pt"),  # the two swapped: the model comes first
    (["predict", "TMP/model.pt", "TMP/empty/"], 2, "empty/*.png"),  # a folder: how to name the images in it
    # run folders read by report
    (["report", "TMP/run/model.pt"], 2, "model.pt"),
    (["report", "TMP/nowhere"], 2, "ありません"),
    (["report", "TMP/empty"], 2, "results.json"),
    (["report", "TMP/nohistory"], 2, "history"),
    (["report", "TMP/broken"], 2, "results.json"),  # the file that cannot be read, named
]


@pytest.mark.parametrize("argv, code, fragment", CASES, ids=[" ".join(c[0])[:60] for c in CASES])
def test_bad_input_is_one_japanese_line_and_loses_nothing(place, capsys, monkeypatch, argv, code, fragment):
    before = snapshot(place / "run")
    trained = []
    monkeypatch.setattr("mnist_lab.cli.fit", lambda *a, **k: trained.append(1))
    got, _, err = run_cli(place, argv, capsys)
    assert_one_line(got, err, code, fragment)
    assert not trained, "the mistake was found only after training"
    assert_nothing_lost(place, before)
    assert not (place / "new").exists() and not (place / "mnsit").exists()


def test_there_are_at_least_fifty_cases():
    assert len(CASES) + len(FAULTS) >= 50


def test_force_replaces_a_run_whole_and_drops_its_old_figures(place, capsys):
    code, _, err = run_cli(place, TRAIN + ["--out", "TMP/run", "--force"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in (place / "run").iterdir()) == ["model.pt", "results.json"]
    assert json.loads((place / "run" / "results.json").read_text())["dry_run"] is False
    assert not list(place.glob(".*"))


def raise_on(target, exception, monkeypatch, after=0):
    """Make ``target`` (a dotted name) raise ``exception`` on its call number ``after + 1``."""
    module, name = target.rsplit(".", 1)
    real = getattr(__import__(module, fromlist=[name]), name)
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) > after:
            raise exception
        return real(*args, **kwargs)

    monkeypatch.setattr(target, failing)


FAULTS = [  # (where it breaks, what it raises, which call, exit status, fragment)
    ("torch.save", OSError(errno.ENOSPC, "No space left on device"), 0, 2, "ディスクがいっぱい"),
    ("json.dumps", OSError(errno.ENOSPC, "No space left on device"), 0, 2, "ディスクがいっぱい"),
    ("os.fsync", OSError(errno.EDQUOT, "Disk quota exceeded"), 0, 2, "ディスクがいっぱい"),
    ("os.replace", OSError(errno.EIO, "Input/output error"), 1, 2, "書けません"),
    ("os.replace", PermissionError(errno.EACCES, "Permission denied"), 0, 2, "権限"),
    ("mnist_lab.train.evaluate", RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate"),
     0, 2, "--batch-size"),
    ("mnist_lab.train.evaluate", torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), 0, 2,
     "メモリが足りません"),
    ("mnist_lab.train.evaluate", MemoryError(), 0, 2, "メモリが足りません"),
    ("mnist_lab.cli.write_run", ZeroDivisionError("a bug"), 0, 1, "予期しないエラー"),
    ("mnist_lab.cli.write_run", KeyboardInterrupt(), 0, 130, "中断しました"),
]


@pytest.mark.parametrize("target, exception, after, code, fragment", FAULTS,
                         ids=[f"{f[0]}-{type(f[1]).__name__}" for f in FAULTS])
def test_a_fault_while_training_or_saving_leaves_the_previous_run_whole(place, capsys, monkeypatch, target,
                                                                          exception, after, code, fragment):
    before = snapshot(place / "run")
    raise_on(target, exception, monkeypatch, after)
    got, _, err = run_cli(place, TRAIN + ["--out", "TMP/run", "--force"], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert got == code and len(lines) == 1 and fragment in lines[0] and "Traceback" not in err, err
    assert_nothing_lost(place, before)


CRASH = """
import os, sys
sys.path.insert(0, {repo!r}); sys.path.insert(0, {tests!r})
import mnist_lab.cli, mnist_lab.files
from test_train import tiny_data
mnist_lab.cli.load_mnist = lambda root=None, val_size=0, seed=0: tiny_data(256)
real, calls = {target}, []
def crash(*args, **kwargs):
    calls.append(1)
    if len(calls) > {after}:
        os._exit(9)  # the process dies here: no cleanup, no finally
    return real(*args, **kwargs)
{target} = crash
mnist_lab.cli.main(["train", "--epochs", "1", "--device", "cpu", "--out", {out!r}, "--force"])
"""


@pytest.mark.parametrize("target, after", [("mnist_lab.files.os.replace", 1),  # between model.pt and results.json
                                           ("mnist_lab.runs.os.replace", 0),  # before the old run is moved aside
                                           ("mnist_lab.runs.os.replace", 1)])  # between moving old out and new in
def test_a_crash_between_the_files_of_a_run_keeps_the_previous_run(place, target, after, capsys):
    before = snapshot(place / "run")
    script = CRASH.format(repo=str(REPO), tests=str(REPO / "tests"), target=target, after=after,
                          out=str(place / "run"))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 9, result.stderr
    kept = list(place.glob(".run.replaced-*/run")) or [place / "run"]
    assert snapshot(kept[0]) == before
    if kept[0] != place / "run":  # the process died between the two renames: the reader is told where it is
        code, _, err = run_cli(place, ["report", "TMP/run"], capsys)
        assert_one_line(code, err, 2, str(kept[0]))


def test_a_really_full_disk_keeps_the_previous_run(tmp_path, capsys, monkeypatch):
    """A 1 MiB tmpfs: the new model does not fit beside the old one. Needs root (CI is root)."""
    if not IS_ROOT:
        if os.environ.get("CI") == "true":
            pytest.fail("CI runs as root: this test must mount its tmpfs there")
        pytest.skip("mounting a tmpfs needs root; the injected ENOSPC cases above still run")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], check=True)
    try:
        previous_run(disk / "run")
        before = snapshot(disk / "run")
        (disk / "filler").write_bytes(b"\0" * (1024 * 1024 - sum(map(len, before.values())) - 200 * 1024))
        monkeypatch.setattr("mnist_lab.cli.load_mnist", lambda root=None, val_size=0, seed=0: tiny_data(256))
        code, _, err = run_cli(disk, ["train", "--epochs", "1", "--device", "cpu", "--model", "original",
                                      "--out", "TMP/run", "--force"], capsys)
        assert_one_line(code, err, 2, "ディスクがいっぱい")
        assert_nothing_lost(disk, before)
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def without_root_powers(argv, cwd):
    """Run the CLI so that file permissions apply: as root (CI is root), without the two capabilities that let root
    read and write past them; as anyone else, as they are."""
    return subprocess.run(WITHOUT_ROOT_POWERS + [sys.executable, "-m", "mnist_lab", *argv], cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300,
                          check=False)


# Root keeps a capability through exec when it is in the bounding set or in the inheritable set (some container
# engines fill that one), so both are emptied of the two.
WITHOUT_ROOT_POWERS = ["setpriv", "--inh-caps=-all", "--ambient-caps=-all",
                       "--bounding-set=-dac_override,-dac_read_search"] if IS_ROOT else []


def assert_permissions_apply(locked):
    """The test means something only if the command really meets the permissions: writing into ``locked`` fails."""
    probe = ("import pathlib, sys\ntry:\n    (pathlib.Path(sys.argv[1]) / 'probe').write_text('')\n"
             "except PermissionError:\n    sys.exit(0)\nprint(pathlib.Path('/proc/self/status').read_text())\n"
             "sys.exit(1)")
    result = subprocess.run(WITHOUT_ROOT_POWERS + [sys.executable, "-c", probe, str(locked)], capture_output=True,
                            text=True, timeout=60, check=False)
    caps = [line for line in result.stdout.splitlines() if line.startswith(("Cap", "Uid", "Seccomp", "NoNewPrivs"))]
    assert result.returncode == 0, f"this machine lets the command write into a read-only folder: {caps} {result.stderr}"


def test_no_permission_is_one_line_and_loses_nothing(tmp_path):
    locked = tmp_path / "locked"
    previous_run(locked / "run")
    before = snapshot(locked / "run")
    save_checkpoint(tmp_path / "model.pt", build_model("quick"))
    seven(tmp_path / "secret.png")
    (tmp_path / "data" / "MNIST" / "raw").mkdir(parents=True)
    (tmp_path / "secret.png").chmod(0)
    (tmp_path / "data" / "MNIST" / "raw").chmod(0)
    for folder in (locked / "run", locked):  # a run may be replaced in place (a mount point): lock it too
        folder.chmod(0o555)
    try:
        assert_permissions_apply(locked)
        for argv in (["train", "--dry-run", "--out", str(locked / "new")],
                     ["train", "--epochs", "1", "--out", str(locked / "run"), "--force"],
                     ["predict", str(tmp_path / "model.pt"), str(tmp_path / "secret.png")],
                     ["evaluate", str(tmp_path / "model.pt"), "--data", str(tmp_path / "data")]):
            result = without_root_powers(argv, tmp_path)
            assert_one_line(result.returncode, result.stderr, 2, "権限")
    finally:
        for folder in (locked, locked / "run", tmp_path / "data" / "MNIST" / "raw"):
            folder.chmod(0o755)
    assert snapshot(locked / "run") == before and not (locked / "new").exists()


@pytest.mark.parametrize("argv", [["-h"], ["--version"], ["train", "-h"]])
def test_help_that_could_not_be_written_does_not_end_as_shown(argv):
    result = subprocess.run([sys.executable, "-m", "mnist_lab", *argv], stdout=open("/dev/full", "w"),  # noqa: SIM115
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120,
                            check=False)
    assert result.returncode == 2, result.stderr
    assert_one_line(2, result.stderr, 2, "")


def test_the_answers_of_an_unfinished_model_come_with_a_note(place, capsys):
    code, out, err = run_cli(place, ["train", "--device", "cpu", "--dry-run", "--out", place / "dry"], capsys)
    assert code == 0, err
    for argv in (["predict", place / "dry" / "model.pt", place / "seven.png"], ["evaluate", place / "dry" / "model.pt"]):
        code, out, err = run_cli(place, argv, capsys)
        assert code == 0 and out, err
        assert [line for line in err.splitlines() if line.startswith("お知らせ: ")], err
    code, out, err = run_cli(place, ["predict", place / "model.pt", place / "seven.png"], capsys)
    assert code == 0 and not err.strip(), err  # a checkpoint saved whole: nothing to point out
