"""Where ``train --out`` may point, generated: new and nested paths, empty folders, runs, foreign folders, files,
links (to runs, to folders, dangling, in a loop), ``.``, mount points (empty, holding a run, with ``lost+found``,
a bind mount of the same file system), read-only and full file systems (real tmpfs mounts: CI runs as root), a disk
that fills while training, and the process's umask.

For every shape the outcome is known in advance (a run is written, or one Japanese line and status 2 before any
training), and the invariants hold: an earlier run byte for byte intact unless ``--force`` replaced it whole, a link
still a link, a mount point still mounted, no hidden staging folder anywhere, and a run folder readable by whoever
may read its files.
"""

import contextlib
import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from invariants import assert_one_japanese_line, problem_lines, run_main, snapshot, stray_folders
from test_faults import previous_run
from test_train import tiny_data

from mnist_lab.history import History
from mnist_lab.runs import is_run

IS_ROOT = os.geteuid() == 0
IN_CI = os.environ.get("CI") == "true"
WRITES = {"new", "nested", "empty", "link-empty", "dangling", "dot-empty", "mount-empty", "mount-lost+found",
          "bind-empty"}  # a run is written there with or without --force
REPLACES = {"run", "link-run", "dot-run", "mount-run", "bind-run"}  # a run is there: written only with --force
REFUSED = {"foreign", "file", "link-file", "link-loop", "inside-run", "under-file", "readonly", "readonly-mount",
           "full", "full-run", "fills"}
MOUNTED = {"mount-empty", "mount-lost+found", "mount-run", "bind-empty", "bind-run", "readonly", "readonly-mount",
           "full", "full-run", "fills"}
SHAPES = sorted(WRITES | REPLACES | REFUSED)


def mount(*args):
    subprocess.run(["mount", *args], check=True, capture_output=True)


def tmpfs(folder, size="4m", readonly=False):
    folder.mkdir(parents=True, exist_ok=True)
    mount("-t", "tmpfs", "-o", f"size={size}" + (",ro" if readonly else ""), "tmpfs", str(folder))
    return folder


def is_mount_point(folder):
    """Whether ``folder`` is a mount point (a bind mount of the same file system included)."""
    return subprocess.run(["mountpoint", "-q", str(folder)], check=False).returncode == 0


def fill(folder, leave=0):
    """Fill the file system of ``folder`` up to ``leave`` bytes."""
    stat = os.statvfs(folder)
    with contextlib.suppress(OSError), open(folder / "filler", "wb") as f:
        f.write(b"\0" * max(0, stat.f_bavail * stat.f_frsize - leave))


def build(base, shape, mounts):
    """Make ``shape`` under ``base``; return ``(--out, the folder a run lands in, an earlier run or None)``."""
    run = None
    if shape in ("new", "nested", "dangling", "link-loop", "link-file", "file", "under-file", "inside-run"):
        (base / "notes.txt").write_text("not a run")
    if shape == "new":
        return base / "new", base / "new", None
    if shape == "nested":
        return base / "a" / "b" / "new", base / "a" / "b" / "new", None
    if shape == "empty":
        (base / "empty").mkdir()
        return base / "empty", base / "empty", None
    if shape in ("run", "inside-run"):
        run = previous_run(base / "run")
        return (base / "run" / "sub" if shape == "inside-run" else run), run, run
    if shape == "foreign":
        (base / "mine").mkdir()
        (base / "mine" / "thesis.tex").write_text("my thesis")
        return base / "mine", base / "mine", None
    if shape == "file":
        return base / "notes.txt", base / "notes.txt", None
    if shape == "under-file":
        return base / "notes.txt" / "run", None, None
    if shape == "link-run":
        run = previous_run(base / "real")
        (base / "link").symlink_to("real")
        return base / "link", run, run
    if shape == "link-empty":
        (base / "real").mkdir()
        (base / "link").symlink_to(base / "real")
        return base / "link", base / "real", None
    if shape == "dangling":
        (base / "link").symlink_to("x/y/run")
        return base / "link", base / "x" / "y" / "run", None
    if shape == "link-loop":
        (base / "a").symlink_to("b")
        (base / "b").symlink_to("a")
        return base / "a", None, None
    if shape == "link-file":
        (base / "link").symlink_to("notes.txt")
        return base / "link", None, None
    if shape in ("dot-empty", "dot-run"):
        folder = base / "here"
        run = previous_run(folder) if shape == "dot-run" else folder.mkdir()
        return Path("."), folder, run
    if shape.startswith("mount-"):
        mounts.append(tmpfs(base / "volume"))
        if shape == "mount-run":
            run = previous_run(base / "volume", exist_ok=True)
        if shape == "mount-lost+found":
            (base / "volume" / "lost+found").mkdir()
        return base / "volume", base / "volume", run
    if shape.startswith("bind-"):
        (base / "source").mkdir()
        (base / "volume").mkdir()
        mount("--bind", str(base / "source"), str(base / "volume"))
        mounts.append(base / "volume")
        run = previous_run(base / "volume", exist_ok=True) if shape == "bind-run" else None
        return base / "volume", base / "volume", run
    if shape == "readonly":
        mounts.append(tmpfs(base / "disk", readonly=True))
        return base / "disk" / "new", None, None
    if shape == "readonly-mount":
        mounts.append(tmpfs(base / "disk", readonly=True))
        return base / "disk", None, None
    if shape in ("full", "full-run", "fills"):
        mounts.append(tmpfs(base / "disk", size="1m"))
        run = previous_run(base / "disk" / "run") if shape == "full-run" else None
        if shape != "fills":
            fill(base / "disk", leave=32 << 10)
        return (base / "disk" / "run" if run else base / "disk" / "new"), None, run
    raise AssertionError(shape)


class Trainings(list):
    """The calls of the stand-in ``fit``; ``filling``: a folder whose disk fills up while it 'trains'."""

    filling = None


@pytest.fixture
def quick_training(monkeypatch):
    """Training replaced by one instant epoch (these tests are about places, not learning); records each call."""
    calls = Trainings()

    def fit(model, data, config, device, callbacks, progress):
        calls.append(1)
        if calls.filling is not None:
            fill(calls.filling)
        return History(records=[{"epoch": 1, "train_loss": 0.5, "train_accuracy": 0.8, "eval_loss": 0.4,
                                 "eval_accuracy": 0.9, "seconds": 0.1, "lr": 0.01}], kept_epoch=1)

    monkeypatch.setattr("mnist_lab.cli.fit", fit)
    monkeypatch.setattr("mnist_lab.cli.load_mnist", lambda root=None, val_size=0, seed=0: tiny_data(64))
    return calls


def readable_as_its_files(folder):
    """Whoever may read a file of the run (owner, group, others) may also list and enter its folder."""
    mode = folder.stat().st_mode
    for file in (p for p in folder.iterdir() if p.is_file()):
        for read, execute in ((0o400, 0o100), (0o040, 0o010), (0o004, 0o001)):
            if file.stat().st_mode & read and not (mode & read and mode & execute):
                return False
    return True


SHAPES_HERE = [s for s in SHAPES if IS_ROOT or s not in MOUNTED]


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("shape", SHAPES_HERE)
@settings(max_examples=2, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(relative=st.booleans(), umask=st.sampled_from([0o022, 0o002, 0o077]))
def test_every_output_target_gives_a_whole_run_or_one_line_before_training(tmp_path, quick_training, shape, force,
                                                                           relative, umask):
    base = Path(tempfile.mkdtemp(dir=tmp_path))
    quick_training.clear()
    mounts, cwd, old_umask = [], os.getcwd(), os.umask(0o022)
    try:
        out, lands, earlier = build(base, shape, mounts)
        before = snapshot(earlier) if earlier else None
        link = base / "link" if (base / "link").is_symlink() else None
        quick_training.filling = base / "disk" if shape == "fills" else None
        os.chdir(base / "here" if str(out) == "." else base)
        argv = ["train", "--epochs", "1", "--device", "cpu", "--out",
                out if str(out) == "." or not relative else os.path.relpath(out, base)] + (["--force"] * force)
        os.umask(umask)
        code, _, err = run_main(argv)
        os.umask(0o022)
        should_write = shape in WRITES or (shape in REPLACES and force)
        if should_write:
            assert code == 0, err
            assert is_run(lands) and json.loads((lands / "results.json").read_text())["dry_run"] is False
            assert readable_as_its_files(lands), oct(lands.stat().st_mode)
            assert all(p.stat().st_mode & 0o777 == 0o666 & ~umask for p in lands.iterdir() if p.is_file()), umask
        else:
            assert code == 2, (shape, err)
            assert_one_japanese_line(err)
            if shape != "fills":
                assert not quick_training, "the mistake was found only after training"
            if earlier:
                assert snapshot(earlier) == before, "the earlier run changed"
        if link is not None:
            assert link.is_symlink(), "the link was replaced instead of what it points to"
        assert all(is_mount_point(m) for m in mounts), "a mount point was removed"
        assert not stray_folders(base), stray_folders(base)
        if not should_write and shape in ("new", "nested", "readonly", "full", "fills"):
            assert not (base / "new").exists() and not (base / "a").exists()
    finally:
        os.umask(old_umask)
        os.chdir(cwd)
        for folder in reversed(mounts):
            subprocess.run(["umount", "-l", str(folder)], check=False)


def test_mount_points_are_really_tested():
    """The mount shapes above need root (CI is root): there they must run, never be left out quietly."""
    if not IS_ROOT:
        if IN_CI:
            pytest.fail("CI runs as root: the tmpfs and bind-mount targets must be tested there")
        pytest.skip("mounting needs root; the other targets were tested")
    assert set(SHAPES_HERE) == set(SHAPES)


def test_a_run_that_appears_at_out_while_training_is_kept_and_so_is_this_one(tmp_path, quick_training, monkeypatch):
    """Two trainings into one --out at once (two terminals): the second to finish is saved beside, never lost."""
    from mnist_lab import cli

    out, fake = tmp_path / "run", cli.fit

    def fit_while_another_finishes(*args, **kwargs):
        previous_run(out)
        return fake(*args, **kwargs)

    monkeypatch.setattr("mnist_lab.cli.fit", fit_while_another_finishes)
    code, stdout, err = run_main(["train", "--dry-run", "--device", "cpu", "--out", out])
    assert code == 0 and not problem_lines(err) and err.startswith("お知らせ: "), err
    assert is_run(out) and is_run(tmp_path / "run-2") and str(tmp_path / "run-2") in stdout
    assert not stray_folders(tmp_path)
