import os
import subprocess
import sys
from pathlib import Path

import pytest
from invariants import JAPANESE, assert_one_japanese_line
from PIL import Image
from test_cli import assert_one_line_error

from mnist_lab import UserError
from mnist_lab.cli import main
from mnist_lab.report import check_same_run

REPO = Path(__file__).resolve().parents[1]
FIGURES = ["training_curves.png", "predictions.png", "confusion_matrix.png", "misclassified.png"]


def test_report_writes_the_four_figures(tmp_path, mnist_root, capsys):
    run = tmp_path / "run"
    assert main(["train", "--dry-run", "--data", str(mnist_root), "--device", "cpu", "--out", str(run)]) == 0
    assert main(["report", str(run), "--data", str(mnist_root), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    for name in FIGURES:
        with Image.open(run / name) as image:
            assert image.format == "PNG" and image.width > 300
        assert name in out


def test_report_of_a_folder_that_is_no_run(tmp_path, capsys):
    code = main(["report", str(tmp_path)])
    assert_one_line_error(code, capsys.readouterr().err, "results.json")


def test_report_of_a_broken_metrics_file(tmp_path, mnist_root, capsys):
    run = tmp_path / "run"
    main(["train", "--dry-run", "--data", str(mnist_root), "--device", "cpu", "--out", str(run)])
    (run / "results.json").write_text("{broken")
    capsys.readouterr()
    code = main(["report", str(run), "--data", str(mnist_root)])
    assert_one_line_error(code, capsys.readouterr().err, "results.json")
    assert not any((run / name).exists() for name in FIGURES)


def test_the_users_matplotlib_backend_changes_nothing(tmp_path):
    """The CLI writes PNG files and never shows a window: a backend set for the user's own scripts (here one that
    does not exist) changes nothing; a folder that is no run is still the user's mistake (status 2, one line)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "no-such-backend"}
    result = subprocess.run([sys.executable, "-m", "mnist_lab", "report", tmp_path], capture_output=True, env=env,
                            timeout=300, check=False)
    assert result.returncode == 2, result.stderr.decode()
    assert_one_japanese_line(result.stderr.decode())


def test_a_model_copied_in_from_another_run_is_refused_before_any_figure(tmp_path, mnist_root, capsys):
    """model.pt from one run beside results.json of another: the figures would mix two runs, so none is drawn."""
    for preset in ("quick", "original"):
        main(["train", "--dry-run", "--preset", preset, "--data", str(mnist_root), "--device", "cpu",
              "--out", str(tmp_path / preset)])
    (tmp_path / "quick" / "model.pt").write_bytes((tmp_path / "original" / "model.pt").read_bytes())
    capsys.readouterr()
    code = main(["report", str(tmp_path / "quick"), "--data", str(mnist_root), "--device", "cpu"])
    assert code == 2
    assert_one_japanese_line(capsys.readouterr().err)
    assert not any((tmp_path / "quick" / name).exists() for name in FIGURES)


def test_a_home_folder_nothing_can_be_written_in_adds_no_line(tmp_path, mnist_root):
    """HOME read-only, missing or "inside" a file (which stops root too): matplotlib's folders go elsewhere, and
    the terminal shows report's own lines only, as with a usable home folder."""
    run = tmp_path / "run"
    assert main(["train", "--dry-run", "--data", str(mnist_root), "--device", "cpu", "--out", str(run)]) == 0
    (tmp_path / "file").write_text("")
    env = {name: value for name, value in os.environ.items()
           if name not in ("MPLCONFIGDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME")}
    env.update(HOME=str(tmp_path / "file" / "home"), PYTHONPATH=str(REPO), MNIST_LAB_DATA=str(mnist_root))
    result = subprocess.run([sys.executable, "-m", "mnist_lab", "report", run, "--device", "cpu"],
                            capture_output=True, text=True, env=env, timeout=300, check=False)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) >= len(FIGURES) and all(JAPANESE.search(line) for line in lines), result.stdout
    for name in FIGURES:
        with Image.open(run / name) as image:
            assert image.format == "PNG"


def test_a_model_from_another_run_is_told_by_what_differs(tmp_path):
    """The line gives the two values that tell the runs apart (the same model trained twice: the training times)."""
    for kept, recorded in ((("quick_cnn", 231.5), ("quick_cnn", 1.25)), (("quick_cnn", 2.0), ("mlp", 2.0))):
        ckpt = {"model": kept[0], "results": {"model": kept[0], "train_seconds": kept[1]}}
        with pytest.raises(UserError) as refused:
            check_same_run(tmp_path, {"model": recorded[0], "train_seconds": recorded[1]}, ckpt)
        said = str(refused.value).replace(str(tmp_path), "")
        differing = [str(value) for pair in zip(kept, recorded) if pair[0] != pair[1] for value in pair]
        assert all(value in said for value in differing) and JAPANESE.search(said), said
