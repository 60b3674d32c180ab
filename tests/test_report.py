import subprocess
import sys
from pathlib import Path

from PIL import Image

from mnist_lab.cli import main

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


def test_report_of_a_folder_that_is_no_run(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mnist_lab", "report", str(tmp_path)], cwd=REPO,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("エラー: ") and "results.json" in result.stderr


def test_report_of_a_broken_metrics_file(tmp_path, mnist_root, capsys):
    run = tmp_path / "run"
    main(["train", "--dry-run", "--data", str(mnist_root), "--device", "cpu", "--out", str(run)])
    (run / "results.json").write_text("{broken")
    assert main(["report", str(run), "--data", str(mnist_root)]) == 2
    assert "壊れています" in capsys.readouterr().err
