"""Names that mean one thing, and documents that name only what exists.

- every ``ex.NAME.METHOD`` the README or the lesson writes is a real exercise and method;
- every function or class the lesson (``main.ipynb``) imports from ``mnist_lab`` says in its docstring which
  section of the lesson introduces it (``main.ipynb §N``, like d2l's "Defined in" back-links), and it is the section
  where the lesson first imports it.
"""

import ast
import importlib
import json
import re
from pathlib import Path

import pytest

from mnist_lab import exercises

ROOT = Path(__file__).resolve().parent.parent
SECTION = re.compile(r"^##\s+(\d+)\.", re.MULTILINE)  # a top-level section heading of the lesson: "## 7. ..."
BACK_LINK = re.compile(r"main\.ipynb §(\d+)")


def lesson_cells():
    """Yield ``(section number, cell)`` for every cell of main.ipynb (0 before the first numbered section)."""
    section = 0
    for cell in json.loads((ROOT / "main.ipynb").read_text(encoding="utf-8"))["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            section = int(next(iter(SECTION.findall(source)), section))
        yield section, cell["cell_type"], source


def python_of(source):
    """A code cell's source without IPython's magics (``%reset -f``), so that ``ast`` can parse it."""
    return "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))


def lesson_imports():
    """Return ``{(module, name): section}``: what the lesson imports from mnist_lab, and where it does so first."""
    first = {}
    for section, kind, source in lesson_cells():
        if kind != "code":
            continue
        for node in ast.walk(ast.parse(python_of(source))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "mnist_lab":
                for alias in node.names:
                    first.setdefault((node.module, alias.name), section)
    return first


def test_the_lesson_imports_from_the_package():
    imports = lesson_imports()
    assert len(imports) > 20 and set(imports.values()) > {1, 5, 7, 13}


def test_every_function_the_lesson_calls_names_its_section():
    missing = []
    for (module, name), section in lesson_imports().items():
        thing = getattr(importlib.import_module(module), name, None) or importlib.import_module(f"{module}.{name}")
        if not callable(thing) and not hasattr(thing, "__file__"):
            continue  # a constant (MEAN, PAD_MODEL) has no docstring of its own
        linked = BACK_LINK.findall(thing.__doc__ or "")
        if linked != [str(section)]:
            missing.append(f"{module}.{name}: lesson section {section}, docstring says {linked or 'nothing'}")
    assert not missing, "\n".join(missing)


def exercise_calls(text):
    """Return every ``ex.NAME.METHOD`` written in ``text``."""
    return set(re.findall(r"\bex\.(\w+)\.(\w+)", text))


def test_the_exercise_calls_documented_exist():
    texts = [(ROOT / "README.md").read_text(encoding="utf-8")]
    texts += [source for _, kind, source in lesson_cells()]
    calls = set().union(*map(exercise_calls, texts))
    assert {("counts", "check"), ("explorer_fp", "check")} <= calls
    absent = [f"ex.{name}.{method}" for name, method in sorted(calls)
              if not callable(getattr(getattr(exercises, name, None), method, None))]
    assert not absent, f"documented but not in mnist_lab.exercises: {absent}"


def older_run(folder):
    """A run folder as older versions wrote it: ``metrics.json``, and ``"metrics"`` and ``"quick"`` in model.pt."""
    import torch

    from mnist_lab.history import History
    from mnist_lab.models import build_model
    from mnist_lab.recipes import make_config
    from mnist_lab.runs import write_run

    history = History(records=[{"epoch": 1, "train_loss": 0.3, "train_accuracy": 0.9, "eval_loss": 0.2,
                                "eval_accuracy": 0.99, "seconds": 1.0, "lr": 0.01}], kept_epoch=1)
    folder.mkdir()
    write_run(folder, build_model("quick_cnn", seed=0), vars(make_config("quick")),
              {"test_accuracy": 0.9907, "dry_run": True}, history)
    (folder / "results.json").rename(folder / "metrics.json")
    ckpt = torch.load(folder / "model.pt", weights_only=True)
    ckpt["metrics"] = ckpt.pop("results")
    ckpt["model"] = ckpt["config"]["model"] = "quick"
    torch.save(ckpt, folder / "model.pt")
    return folder


def test_a_run_folder_written_by_an_older_version_still_loads(tmp_path):
    from mnist_lab.checkpoint import load_checkpoint
    from mnist_lab.report import run_notes
    from mnist_lab.runs import is_run, read_run

    run = older_run(tmp_path / "run")
    assert is_run(run)
    results, history = read_run(run)
    assert results["test_accuracy"] == 0.9907 and len(history) == 1 and len(run_notes(results, history)) == 1
    model, info = load_checkpoint(run / "model.pt")
    assert info["results"]["test_accuracy"] == 0.9907 and "metrics" not in info
    assert info["model"] == info["config"]["model"] == "quick_cnn" and type(model).__name__ == "QuickCNN"


@pytest.mark.parametrize("where", ["beside", "into"])  # a folder renamed into place, or files moved into it
def test_a_new_run_replaces_an_older_run_whole(tmp_path, monkeypatch, where):
    from mnist_lab.errors import UserError
    from mnist_lab.history import History
    from mnist_lab.models import build_model
    from mnist_lab.runs import new_run, read_run, write_run

    run = older_run(tmp_path / "run")
    if where == "into":
        monkeypatch.chdir(run)  # the current folder is written into, never renamed
    with pytest.raises(UserError), new_run(run):
        pass  # an older run is a run: kept unless replacing it is asked for
    with new_run(run, force=True) as new:
        write_run(new.staging, build_model("mlp", seed=0), {"model": "mlp"}, {"test_accuracy": 0.5}, History())
    assert sorted(p.name for p in run.iterdir()) == ["model.pt", "results.json"]
    assert read_run(run)[0]["test_accuracy"] == 0.5


# --- preset facts: written once, in mnist_lab/recipes.py --------------------------------------------------------

def readme_presets_block():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("\n", readme.index("<!-- presets:")) + 1
    return readme[start:readme.index("<!-- /presets -->")].strip()


def test_the_readme_shows_the_presets_as_recipes_py_has_them():
    from mnist_lab.recipes import preset_markdown

    assert readme_presets_block() == preset_markdown(), (
        "README's preset table differs from mnist_lab/recipes.py: edit FACTS/PRESETS there and paste the output of "
        "python -c 'from mnist_lab.recipes import preset_markdown; print(preset_markdown())' between the markers")


def test_every_preset_and_its_measured_figures_are_in_the_tables():
    from mnist_lab.recipes import FACTS, PRESETS, preset_markdown, preset_table

    table, markdown = preset_table(), preset_markdown()
    assert list(table.index) == list(PRESETS) == list(FACTS)
    for name, config in PRESETS.items():
        row = " ".join(table.loc[name])
        assert config.model in row and f"{FACTS[name].accuracy:.2%}" in row and FACTS[name].time in row
        assert f"| `{name}` | {config.model}" in markdown


def test_the_cli_help_is_made_from_the_recipes(monkeypatch, capsys):
    from dataclasses import replace

    from mnist_lab import cli, recipes

    monkeypatch.setitem(recipes.PRESETS, "quick", replace(recipes.PRESETS["quick"], epochs=7, batch_size=96))
    monkeypatch.setitem(recipes.FACTS, "quick", replace(recipes.FACTS["quick"], accuracy=0.1234, time="42 分"))
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "12.34%" in text and "42 分" in text and "quick: 7" in text and "quick: 96" in text


def test_the_lesson_does_not_repeat_the_measured_figures():
    """The lesson shows preset_table(); its prose would go stale if it wrote the figures again."""
    from mnist_lab.recipes import FACTS

    prose = "".join(source for _, kind, source in lesson_cells() if kind == "markdown")
    repeated = [f"{name}: {figure}" for name, facts in FACTS.items()
                for figure in (f"{facts.accuracy:.2%}", facts.time) if figure in prose]
    assert not repeated, repeated


# --- the MNIST folder is not `data` (the lesson's tensors) ------------------------------------------------------

def test_the_mnist_folder_older_versions_downloaded_into_is_still_read(tmp_path, monkeypatch):
    from mnist_lab import data as D

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(D.ENV_ROOT, raising=False)
    assert str(D.mnist_folder()) == "mnist_data"  # nothing downloaded yet: the new name
    D.raw_dir("data").mkdir(parents=True)  # what an older version downloaded
    assert str(D.mnist_folder()) == "data" and D.data_root is D.mnist_folder
    (tmp_path / "mnist_data").mkdir()
    assert str(D.mnist_folder()) == "mnist_data"


def test_the_cli_takes_the_mnist_folder_by_its_new_and_its_old_flag():
    from mnist_lab.cli import build_parser

    for flag in ("--mnist-dir", "--data"):
        args = build_parser().parse_args(["evaluate", "m.pt", flag, "somewhere"])
        assert str(args.mnist_dir) == "somewhere" and not hasattr(args, "data")


def test_a_lesson_saved_before_the_renames_still_runs(tmp_path, monkeypatch):
    """A student's own copy of main.ipynb is kept when the image updates the package: its older spellings work."""
    import torch

    from mnist_lab.checkpoint import load_checkpoint, save_checkpoint
    from mnist_lab.data import data_root
    from mnist_lab.device import best_device, try_gpu
    from mnist_lab.metrics import Counts, accuracy, one_vs_rest_accuracy
    from mnist_lab.models import build_model

    assert try_gpu() == best_device() and try_gpu("cpu") == torch.device("cpu")
    lazy = Counts(TP=0, FP=0, FN=3, TN=7)
    assert accuracy(lazy) == one_vs_rest_accuracy(lazy) == 0.7
    monkeypatch.setenv("MNIST_LAB_DATA", str(tmp_path))
    assert data_root() == tmp_path
    path = save_checkpoint(tmp_path / "model.pt", build_model("original", seed=0), {}, {"test_accuracy": 0.98})
    _, info = load_checkpoint(path)
    assert info["metrics"]["test_accuracy"] == info["results"]["test_accuracy"] == 0.98
    assert info["model"] == "original_cnn"
