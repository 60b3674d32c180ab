"""main.ipynb: committed clean, short cells with prose before each, and it runs top to bottom on real MNIST."""

import json
import re
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "main.ipynb"
SECTIONS = ["はじめに", "環境の確認", "設定", "データ", "モデル", "学習", "CNN の中をのぞく", "評価", "練習問題",
            "間違えた画像", "自分で書いた数字を認識させよう", "モデルの保存と読み込み", "発展: もっと正確に",
            "GPU メモリの解放"]


def cells():
    return json.loads(NOTEBOOK.read_text())["cells"]


def test_committed_without_outputs():
    dirty = [i for i, c in enumerate(cells()) if c["cell_type"] == "code" and (c["outputs"] or c["execution_count"])]
    assert not dirty, f"cells {dirty} carry outputs: clear them before committing"


def test_code_cells_are_at_most_ten_lines_and_follow_prose():
    nb = cells()
    for i, c in enumerate(nb):
        if c["cell_type"] == "code":
            assert len("".join(c["source"]).strip().splitlines()) <= 10, f"cell {i} is over 10 lines"
            assert nb[i - 1]["cell_type"] == "markdown", f"cell {i} has no markdown cell before it"


def test_sections_in_order():
    headings = [m for c in cells() if c["cell_type"] == "markdown"
                for m in re.findall(r"^## (\d+)\. (.+)$", "".join(c["source"]), re.MULTILINE)]
    assert [int(n) for n, _ in headings] == list(range(len(SECTIONS)))
    assert [title for _, title in headings] == SECTIONS


def test_images_it_shows_exist():
    text = "".join("".join(c["source"]) for c in cells() if c["cell_type"] == "markdown")
    images = re.findall(r"\]\((resources/[^)]+)\)", text)
    assert {"resources/accuracy.svg", "resources/recall.svg", "resources/precision.svg", "resources/f1.svg",
            "resources/release_memory.png"} <= set(images)
    assert all((REPO / image).is_file() for image in images)


@pytest.mark.slow
def test_runs_top_to_bottom_on_real_mnist(mnist_root, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("MNIST_LAB_DATA", str(mnist_root))
    monkeypatch.setenv("MNIST_LAB_EPOCHS", "1")  # fast settings, as CI runs it
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    errors = [o for o in outputs if o.output_type == "error" or "Traceback" in o.get("text", "")]
    assert not errors, errors[0]
    text = "\n".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs)
    assert "表の値が scikit-learn と一致: True" in text and "の値が一致: True" in text
    assert "予測が全部同じ: True" in text and "まだ書かれていません" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 5
    accuracy = float(re.search(r"テスト正解率: ([\d.]+)%", text).group(1))
    assert accuracy > 95
    assert (tmp_path / "runs" / "notebook" / "model.pt").is_file()


def test_readme_lists_the_notebooks_sections():
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("## 授業の流れ"):readme.index("評価指標（")]
    rows = re.findall(r"^\| (\d+)\. ([^|]+?) \|", table, re.MULTILINE)
    assert [(int(n), title) for n, title in rows] == list(enumerate(SECTIONS))


def settings_cell():
    return next("".join(c["source"]) for c in cells() if c["cell_type"] == "code" and "PRESET = " in "".join(c["source"]))


@pytest.mark.parametrize("preset", ["quick", "best", "original"])
def test_changing_only_the_preset_changes_the_whole_recipe(preset, monkeypatch):
    from mnist_lab.recipes import make_config

    for name in list(__import__("os").environ):
        if name.startswith("MNIST_LAB_"):
            monkeypatch.delenv(name)
    source = re.sub(r'^PRESET = "\w+"', f'PRESET = "{preset}"', settings_cell(), flags=re.MULTILINE)
    namespace = {}
    exec(compile(source, "main.ipynb", "exec"), namespace)  # noqa: S102 - our own notebook's cell
    expected = make_config(preset, epochs=3) if preset == "original" else make_config(preset)
    assert namespace["config"] == expected
    assert namespace["RECIPES"]["original"].epochs == 3 and make_config("original").epochs == 10


def test_code_lines_fit_the_notebook_width():
    """Lines over ~90 columns are cut off in JupyterLab; a Japanese character takes two columns."""
    import unicodedata

    def columns(line):
        return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line)

    long = [line for c in cells() if c["cell_type"] == "code" for line in "".join(c["source"]).splitlines()
            if columns(line) > 90]
    assert not long, long
