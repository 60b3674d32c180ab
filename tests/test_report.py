from PIL import Image
from test_cli import assert_one_line_error

from mnist_lab.cli import main

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
