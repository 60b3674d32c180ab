"""main.ipynb: committed clean, short cells with prose before each, and every path a student takes through it works.

The path matrix runs the notebook in real kernels (nbclient) as students do: every PRESET it offers, ■ (a kernel
interrupt, as JupyterLab sends it) in the middle of the training cell and of section 12's comparison and then the
rest of the notebook, the settings changed and the notebook re-run from section 2 (what it tells a student on a
slow machine), sections 5-7 re-run after a PRESET change, a fresh kernel running everything again. It checks
behaviour only (no error output, figures shown, values in range, what ■ left), never the lesson's wording: a
teacher can reword any sentence. CI shortens the runs through the environment (MNIST_LAB_EPOCHS, read by
make_config) and, in one kernel, a hook run before the notebook that keeps the first images of MNIST: the
notebook's own cells stay exactly what a student runs.
"""

import ast
import json
import os
import re
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from invariants import assert_japanese_message
from jupyter_helpers import KEEP_FIRST_IMAGES

from mnist_lab.recipes import PRESETS as RECIPES  # every recipe, as preset_table() shows them

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "main.ipynb"
PRESETS = ["original", "quick", "best"]  # the ones the settings cell names


def cells():
    return json.loads(NOTEBOOK.read_text())["cells"]


# --- the committed file ----------------------------------------------------------------------------------------

def test_committed_without_outputs():
    dirty = [i for i, c in enumerate(cells()) if c["cell_type"] == "code" and (c["outputs"] or c["execution_count"])]
    assert not dirty, f"cells {dirty} carry outputs: clear them before committing"


def test_code_cells_are_at_most_ten_lines_and_follow_prose():
    nb = cells()
    for i, c in enumerate(nb):
        if c["cell_type"] == "code":
            assert len("".join(c["source"]).strip().splitlines()) <= 10, f"cell {i} is over 10 lines"
            assert nb[i - 1]["cell_type"] == "markdown", f"cell {i} has no markdown cell before it"


def test_no_test_plumbing_in_the_students_cells():
    """CI shortens the notebook from outside (make_config reads MNIST_LAB_*); a student reads none of it."""
    plumbing = [i for i, c in enumerate(cells()) if c["cell_type"] == "code"
                and re.search(r"with_env_overrides|os\.environ|MNIST_LAB_", "".join(c["source"]))]
    assert not plumbing, f"cells {plumbing}"


def section_numbers(markdown):
    """The numbers of the ``## N. title`` headings in ``markdown``, in order (whatever the titles say)."""
    return [int(n) for n in re.findall(r"^## (\d+)\. \S", markdown, re.MULTILINE)]


def notebook_sections():
    return [n for c in cells() if c["cell_type"] == "markdown" for n in section_numbers("".join(c["source"]))]


def test_sections_are_numbered_in_order():
    """From 0 up without a gap, and the sections the path matrix below runs by number (5-7, 13) are there."""
    numbers = notebook_sections()
    assert numbers == list(range(len(numbers))) and {5, 6, 7, 13} <= set(numbers), numbers


def test_images_it_shows_exist():
    text = "".join("".join(c["source"]) for c in cells() if c["cell_type"] == "markdown")
    images = re.findall(r"\]\((resources/[^)]+)\)", text)
    assert {"resources/accuracy.svg", "resources/recall.svg", "resources/precision.svg", "resources/f1.svg",
            "resources/release_memory.png"} <= set(images)
    assert all((REPO / image).is_file() for image in images)


def test_readme_has_a_row_for_each_section_of_the_notebook():
    """The README's outline of the lesson (rows starting ``| N. ``) follows the notebook's sections, in order."""
    rows = re.findall(r"^\| (\d+)\. \S", (REPO / "README.md").read_text(), re.MULTILINE)
    assert [int(n) for n in rows] == notebook_sections()


def preset_assignment(source, name="PRESET"):
    """The statement of a cell's code that assigns ``name`` (however it is spaced or commented), else None."""
    try:
        body = ast.parse(source).body
    except SyntaxError:  # IPython's %magic lines
        return None
    return next((node for node in body if isinstance(node, ast.Assign)
                 and any(isinstance(target, ast.Name) and target.id == name for target in node.targets)), None)


def settings_cell():
    (source,) = [s for s in ("".join(c["source"]) for c in cells() if c["cell_type"] == "code") if preset_assignment(s)]
    return source


def with_preset(source, preset, name="PRESET", code=None):
    """``source`` with the value assigned to ``name`` replaced by ``preset`` (or by the code ``code``), as a
    student edits it."""
    value = preset_assignment(source, name).value
    lines = source.splitlines(keepends=True)

    def offset(line, column):  # ast counts columns in UTF-8 bytes
        return sum(map(len, lines[:line - 1])) + len(lines[line - 1].encode()[:column].decode())

    start, end = offset(value.lineno, value.col_offset), offset(value.end_lineno, value.end_col_offset)
    return source[:start] + (repr(preset) if code is None else code) + source[end:]


@pytest.mark.parametrize("preset", PRESETS)
def test_changing_only_the_preset_changes_the_whole_recipe(preset, monkeypatch):
    from mnist_lab.recipes import make_config

    for name in list(os.environ):
        if name.startswith("MNIST_LAB_"):
            monkeypatch.delenv(name)
    namespace = {}
    exec(compile(with_preset(settings_cell(), preset), "main.ipynb", "exec"), namespace)  # noqa: S102 - our cell
    assert namespace["PRESET"] == preset and namespace["config"] == make_config(preset)


@pytest.mark.parametrize("preset", list(RECIPES))
def test_the_mlp_comparison_follows_every_preset(preset):
    """Section 6 trains an MLP "with the same recipe" as the CNN: it must run whatever PRESET the student chose (the
    pad preset teaches non-digits, which an MLP has no place for)."""
    from test_train import tiny_data

    from mnist_lab import build_model, fit
    from mnist_lab.recipes import make_config

    config = make_config(preset, epochs=1, batch_size=64, val_size=16)
    (source,) = [s for s in ("".join(c["source"]) for c in cells() if c["cell_type"] == "code") if '"mlp"' in s]
    namespace = {"build_model": build_model, "fit": fit, "config": config, "data": tiny_data(256), "device": "cpu",
                 "model": build_model(config.model, seed=0)}
    exec(compile(source, "main.ipynb", "exec"), namespace)  # noqa: S102 - our cell
    assert set(namespace["models"]) == {"MLP", "CNN"} and not namespace["mlp"].training


def binds(source):
    """The names a cell's code assigns or imports (IPython's %magic lines as IPython runs them)."""
    from IPython.core.inputtransformer2 import TransformerManager

    tree = ast.parse(TransformerManager().transform_cell(source))
    return ({node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)}
            | {(alias.asname or alias.name).split(".")[0] for node in ast.walk(tree)
               if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names})


def test_re_running_any_earlier_cell_leaves_the_loss_cell_one_batch(mnist_root, monkeypatch):
    """Section 5.2 sends the tensors it reads (the batch section 5.1 took) through a new CNN at once. Re-running any
    earlier cell and then 5.2 must still send that one batch: a cell that rebinds its name to all 60,000 training
    images would make the first convolution alone allocate 6 GB (the kernel dies on a laptop)."""
    import matplotlib
    import torch

    matplotlib.use("Agg")
    monkeypatch.setenv("MNIST_LAB_DATA", str(mnist_root))
    nb = cells()
    (loss,) = [i + 1 + next(j for j, c in enumerate(nb[i + 1:]) if c["cell_type"] == "code") for i, c in enumerate(nb)
               if c["cell_type"] == "markdown" and re.search(r"^### 5\.2\b", "".join(c["source"]), re.MULTILINE)]
    read = {node.id for node in ast.walk(ast.parse("".join(nb[loss]["source"])))
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
    earlier = {i: "".join(c["source"]) for i, c in enumerate(nb[:loss]) if c["cell_type"] == "code"}
    namespace = {}
    for i, source in earlier.items():
        exec(compile(source, f"cell {i}", "exec"), namespace)  # noqa: S102 - our cells, in order
    shapes = {name: namespace[name].shape for name in read if isinstance(namespace.get(name), torch.Tensor)}
    assert shapes
    for i, source in earlier.items():
        if not read & binds(source):
            continue  # leaves those names as they are
        exec(compile(source, f"cell {i}", "exec"), namespace)  # noqa: S102 - one cell run again
        assert {name: namespace[name].shape for name in shapes} == shapes, f"cell {i}"


def test_the_letter_reading_cell_runs_with_a_model_that_has_no_threshold(capsys):
    """Section 10 invites comparing models: ``pad_model = model`` (a model of any lesson recipe has no "not a digit"
    threshold), then the cell that reads the letter again. It prints its lines and raises nothing."""
    from mnist_lab import build_model
    from mnist_lab.app import PAD_MODEL
    from mnist_lab.checkpoint import load_checkpoint
    from mnist_lab.ood import threshold_of
    from mnist_lab.preprocess import preprocess_drawing
    from mnist_lab.synthetic import non_digits

    (source,) = [s for s in ("".join(c["source"]) for c in cells() if c["cell_type"] == "code")
                 if re.search(r"\bread\(pad_model\b", s)]
    letters = non_digits(3, seed=0, kinds=("letter",))
    for model in (load_checkpoint(PAD_MODEL)[0], build_model("quick_cnn", seed=0)):
        namespace = {"pad_model": model, "letters": letters, "i": 0, "preprocess_drawing": preprocess_drawing,
                     "threshold_of": threshold_of}
        exec(compile(source, "main.ipynb", "exec"), namespace)  # noqa: S102 - our cell
        printed = capsys.readouterr().out
        assert len(printed.splitlines()) >= 3
        if threshold_of(model) is not None:
            assert f"{threshold_of(model):.1f}" in printed


def test_every_name_the_prose_says_to_inspect_is_there_to_inspect():
    """``NAME??`` in the prose (IPython shows NAME's source) works where the student reads it: NAME is bound by a
    code cell above, or imported by an import statement the same prose gives (which runs)."""
    nb = cells()
    for i, cell in enumerate(nb):
        if cell["cell_type"] != "markdown":
            continue
        text = "".join(cell["source"])
        spans = re.findall(r"`([^`]+)`", text)
        imports = [span for span in spans if re.match(r"(from \S+ )?import ", span)]
        bound = set().union(*(binds("".join(c["source"])) for c in nb[:i] if c["cell_type"] == "code"),
                            *(binds(span) for span in imports))
        for span in imports:
            exec(compile(span, f"cell {i}", "exec"), {})  # noqa: S102 - the prose's own import
        for name in (span[:-2] for span in spans if re.fullmatch(r"[A-Za-z_][\w.]*\?\?", span)):
            assert name.split(".")[0] in bound, f"cell {i}: {name}?? names nothing the student has"


def test_a_digit_taken_from_the_predictions_goes_on_as_a_plain_digit():
    """``k = y_hat[0]`` in the one-vs-rest cell (a 0-d tensor, as the predictions' elements are): counted like
    ``k = 7``, and the ``digit`` it hands on reads as ``7`` (later cells look it up as ``str(digit)``)."""
    import torch

    from mnist_lab.metrics import confusion_matrix, one_vs_rest

    (source,) = [s for s in ("".join(c["source"]) for c in cells() if c["cell_type"] == "code")
                 if re.search(r"\bone_vs_rest\(C, k\)", s)]
    y_hat = torch.tensor([7, 1, 7, 2])
    C = confusion_matrix(torch.tensor([7, 1, 2, 2]), y_hat)
    namespace = {"C": C, "y_hat": y_hat}
    exec(compile(with_preset(source, None, name="k", code="y_hat[0]"), "main.ipynb", "exec"), namespace)  # noqa: S102
    assert (namespace["TP"], namespace["FP"], namespace["FN"], namespace["TN"]) == tuple(one_vs_rest(C, 7))
    assert str(namespace["digit"]) == "7"


def test_after_stop_in_the_comparison_a_model_it_did_not_train_is_one_line(monkeypatch):
    """■ during section 12's first model: ``trained`` holds that model only, and the prose's own example
    (``trained["quick"]``, a model never trained) is one Japanese line naming what it holds, not a bare KeyError."""
    import pandas as pd
    from test_train import tiny_data

    from mnist_lab import compare as compare_module
    from mnist_lab.errors import UserError
    from mnist_lab.history import History
    from mnist_lab.recipes import make_config

    monkeypatch.setattr(compare_module, "fit", lambda *args, **kwargs: History(interrupted=True))  # ■ at once
    sources = ["".join(c["source"]) for c in cells() if c["cell_type"] == "code"]
    namespace = {"make_config": make_config, "pd": pd, "data": tiny_data(), "device": "cpu"}
    for source in ([s for s in sources if "configs" in binds(s)] + [s for s in sources if "trained" in binds(s)]):
        exec(compile(source, "main.ipynb", "exec"), namespace)  # noqa: S102 - our cells
    trained, configs = namespace["trained"], namespace["configs"]
    assert list(trained) == list(configs)[:1]
    for name in list(configs)[1:]:
        with pytest.raises(KeyError) as refused:
            trained[name]
        assert isinstance(refused.value, UserError)
        assert_japanese_message(refused.value)


def test_code_lines_fit_the_notebook_width():
    """Lines over ~90 columns are cut off in JupyterLab; a Japanese character takes two columns."""
    import unicodedata

    def columns(line):
        return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line)

    long = [line for c in cells() if c["cell_type"] == "code" for line in "".join(c["source"]).splitlines()
            if columns(line) > 90]
    assert not long, long


# --- the path matrix: real kernels ----------------------------------------------------------------------------



def code_index(nb, pattern):
    """The index of the only code cell whose source matches ``pattern`` (code, never the prose)."""
    found = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and re.search(pattern, c.source, re.MULTILINE)]
    assert len(found) == 1, (pattern, found)
    return found[0]


def section_of(nb, index):
    """The number of the ``## N.`` section that cell ``index`` is in."""
    number = -1
    for cell in nb.cells[: index + 1]:
        found = re.search(r"^## (\d+)\.", cell.source, re.MULTILINE) if cell.cell_type == "markdown" else None
        number = int(found.group(1)) if found else number
    return number


class Lesson:
    """One kernel running main.ipynb's cells, as a student runs them in JupyterLab."""

    def __init__(self, client, nb):
        self.client, self.nb, self.seconds = client, nb, {}
        (self.settings,) = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and preset_assignment(c.source)]
        self.training = code_index(nb, r"fit\(model, data, config")
        self.comparison = code_index(nb, r"compare\(data, configs")
        self.release = code_index(nb, r"%reset")

    def run(self, start, stop=None, interrupt_at=()):
        """Run code cells ``start`` .. ``stop`` (the last cell by default); press ■ during those in ``interrupt_at``
        as soon as their progress bar has moved. Return the indices run."""
        stop = len(self.nb.cells) - 1 if stop is None else stop
        ran = []
        for i in range(start, stop + 1):
            cell = self.nb.cells[i]
            if cell.cell_type != "code":
                continue
            with self.interrupt_when_training(i in interrupt_at) as pressed:
                start = time.perf_counter()
                self.client.execute_cell(cell, i)
                self.seconds[i] = self.seconds.get(i, 0.0) + time.perf_counter() - start
            assert pressed() == (i in interrupt_at), f"■ was never pressed during cell {i}: it ended first"
            ran.append(i)
        return ran

    def section(self, number):
        return [i for i, c in enumerate(self.nb.cells) if c.cell_type == "code" and section_of(self.nb, i) == number]

    def set_preset(self, preset):
        self.nb.cells[self.settings].source = with_preset(self.nb.cells[self.settings].source, preset)

    @contextmanager
    def interrupt_when_training(self, wanted):
        """Send SIGINT to the kernel (JupyterLab's ■) once a progress bar made during the cell has moved."""
        before, pressed, done = set(self.client.widget_state), [], threading.Event()

        def watch():
            while not done.wait(0.02):
                try:
                    states = [s for comm, s in list(self.client.widget_state.items()) if comm not in before]
                except RuntimeError:  # the dict changed while we copied it
                    continue
                if any(s.get("_model_name", "").endswith("ProgressModel") and 0 < s.get("value", 0) < s.get("max", 0)
                       for s in states):
                    os.kill(self.client.km.provisioner.pid, signal.SIGINT)
                    pressed.append(time.monotonic())
                    return

        watcher = threading.Thread(target=watch, daemon=True)
        if wanted:
            watcher.start()
        try:
            yield lambda: bool(pressed)
        finally:
            done.set()
            if wanted:
                watcher.join()

    def probe(self, expression):
        """Evaluate ``expression`` in the kernel (a cell that is not part of the notebook); return its value."""
        cell = run_extra_cell(self.client, self.nb, f"import json as _json\nprint(_json.dumps({expression}))")
        return json.loads("".join(o.text for o in cell.outputs if o.output_type == "stream"))

    def problems(self, indices):
        """Error outputs and tracebacks in cells ``indices``."""
        found = []
        for i in indices:
            for out in self.nb.cells[i].outputs:
                if out.output_type == "error" or "Traceback" in out.get("text", ""):
                    found.append((i, out.get("ename"), out.get("evalue"), out.get("text", "")[-500:]))
        return found

    def figures_missing(self, indices):
        """Cells in ``indices`` that call a plotting function yet show no image."""
        return [i for i in indices if re.search(r"\bplot_\w+\(", self.nb.cells[i].source)
                and not any("image/png" in out.get("data", {}) for out in self.nb.cells[i].outputs)]

    def check(self, indices):
        assert not self.problems(indices), self.problems(indices)
        assert not self.figures_missing(indices), self.figures_missing(indices)

    def values(self):
        """What the lesson computed, read before section 13 frees it all."""
        return self.probe("""{
            "preset": PRESET, "hand_losses": losses, "fit_same_as_hand": diff,
            "interrupted": history.interrupted, "epochs": len(history),
            "accuracy": float(C.trace() / C.sum()), "agrees_with_sklearn": bool(same and same_digit),
            "statuses": comparison["status"].tolist(), "errors": comparison["errors"].astype(float).tolist(),
            "loaded_predicts_the_same": bool((predict_proba(loaded, data.X_test).argmax(1) == y_hat).all()),
            "checkpoint": str(path),
        }""")


def run_extra_cell(client, nb, source):
    """Run ``source`` in the kernel as a cell that is not part of the notebook (and is gone afterwards)."""
    import nbformat

    cell = nbformat.v4.new_code_cell(source)
    nb.cells.append(cell)
    try:
        client.execute_cell(cell, len(nb.cells) - 1)
    finally:
        nb.cells.pop()
    errors = [o for o in cell.outputs if o.output_type == "error"]
    assert not errors, errors
    return cell


@contextmanager
def lesson(tmp_path, env, hook=None):
    """A kernel in ``tmp_path`` (the student's folder) with ``env``, running main.ipynb; ``hook`` runs first."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    saved = dict(os.environ)
    os.environ.update({"PYTHONPATH": str(REPO), **env})  # the kernel inherits it
    try:
        client = NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
        with client.setup_kernel():
            if hook:
                run_extra_cell(client, nb, hook)
            run = Lesson(client, nb)
            try:
                yield run
            finally:  # where the time went (pytest shows it with -s or on failure)
                slowest = sorted(run.seconds.items(), key=lambda item: -item[1])[:6]
                print("slowest cells:", ", ".join(f"{i} (section {section_of(nb, i)}): {s:.1f} s" for i, s in slowest))
    finally:
        os.environ.clear()
        os.environ.update(saved)


def assert_falling(losses):
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert len(losses) == 50 and last < first, losses


def going_back(run, accuracy):
    """A student goes back to the cells written by hand (section 5) and to the letters of section 10, then runs
    sections 7 and 11 again: the trained model, its scores and the digit of section 7 are still theirs, and the
    checkpoint holds that model with its own accuracy."""
    nb = run.nb
    back = [code_index(nb, pattern) for pattern in (r"^cnn = build_model", r"y_hat_part =", r"most_confident\(model")]
    again = [i for i in run.section(7) if i >= code_index(nb, r"^k = 3")] + run.section(11)
    for i in back + again:
        run.run(i, i)
    run.check(back + again)
    got = run.values()
    assert got["accuracy"] == accuracy and got["agrees_with_sklearn"] and got["loaded_predicts_the_same"]
    assert run.probe("load_checkpoint(path)[1]['results']['test_accuracy'] == evaluate(model, data.X_test, "
                     "data.y_test)[1] and bool(same_digit)")
    typo = code_index(nb, r"^k = 3")  # a digit that is none: refused, and the cells after go on with digit 3
    original = nb.cells[typo].source
    nb.cells[typo].source = original.replace("k = 3", "k = 12", 1)
    with pytest.raises(__import__("nbclient.exceptions").exceptions.CellExecutionError):
        run.run(typo, typo)
    nb.cells[typo].source = original
    later = [code_index(nb, pattern) for pattern in (r"1 対他の正解率", r"^lazy = Counts", r"^same_digit = ")]
    for i in later:
        run.run(i, i)
    run.check(later)
    assert run.probe("digit") == 3 and run.probe("bool(same_digit)")


def test_a_student_on_a_slow_machine_presses_stop_and_follows_the_advice(mnist_root, tmp_path):
    """Full MNIST, the default PRESET: ■ during the training and on through the lesson with that model, ■ during
    section 12's comparison; then, as the notebook advises, PRESET = "quick" and everything again from section 2 (on
    the first images: the path is what is tested, and a full run's time is the notebook benchmark's); then section 13."""
    with lesson(tmp_path, {"MNIST_LAB_DATA": str(mnist_root), "MNIST_LAB_EPOCHS": "1"}) as run:
        run.set_preset("original")
        ran = run.run(0, run.release - 1, interrupt_at=(run.training, run.comparison))
        run.check(ran)
        got = run.values()
        assert got["interrupted"] and got["statuses"][0] == "interrupted" and got["statuses"][-1] == "not trained"
        assert 0 <= got["accuracy"] <= 1 and got["agrees_with_sklearn"] and got["loaded_predicts_the_same"]
        assert got["fit_same_as_hand"] <= 1e-6
        assert_falling(got["hand_losses"])

        run_extra_cell(run.client, run.nb, KEEP_FIRST_IMAGES)  # the same path again, on the first images only
        run.set_preset("quick")
        ran = run.run(run.settings, run.release - 1)
        run.check(ran)
        got = run.values()
        assert got["preset"] == "quick" and not got["interrupted"] and got["epochs"] >= 1
        assert got["accuracy"] > 0.9 and got["statuses"] == ["trained", "trained"]
        assert got["agrees_with_sklearn"] and got["loaded_predicts_the_same"]
        assert_falling(got["hand_losses"])
        run.check(run.run(run.release))
        assert run.probe("'model' in globals()") is False  # section 13 let go of everything


def test_every_preset_re_runs_and_a_fresh_kernel_runs_it_all_again(mnist_root, tmp_path):
    """The first MNIST images only (a hook before the notebook): "best" top to bottom; sections 5-7 again after
    PRESET = "original"; then a new kernel runs every cell of the notebook as it now stands (Restart and Run All)."""
    env = {"MNIST_LAB_DATA": str(mnist_root), "MNIST_LAB_EPOCHS": "1"}
    with lesson(tmp_path, env, KEEP_FIRST_IMAGES) as run:
        run.set_preset("best")
        ran = run.run(0, run.release - 1)
        run.check(ran)
        got = run.values()
        assert got["preset"] == "best" and got["epochs"] >= 1 and not got["interrupted"]
        assert got["accuracy"] > 0.5 and got["statuses"] == ["trained", "trained"]
        assert got["agrees_with_sklearn"] and got["loaded_predicts_the_same"] and got["fit_same_as_hand"] <= 1e-6
        assert_falling(got["hand_losses"])

        run.set_preset("original")
        ran = run.run(run.settings, run.settings) + [i for n in (5, 6, 7) for i in run.section(n)]
        for i in ran[1:]:
            run.run(i, i)
        run.check(ran)
        got = run.values()
        assert got["preset"] == "original" and got["accuracy"] > 0.9 and got["agrees_with_sklearn"]
        assert_falling(got["hand_losses"])
        going_back(run, got["accuracy"])
        run.check(run.run(run.release))
        nb = run.nb  # as JupyterLab autosaved it: PRESET = "original", the outputs of this session

    with lesson(tmp_path, env, KEEP_FIRST_IMAGES) as again:
        again.nb = nb
        again.client.nb = nb
        ran = again.run(0)
        again.check(ran)
        assert again.probe("'model' in globals()") is False
        assert (tmp_path / "runs" / "notebook" / "model.pt").is_file()


def test_missing_mnist_is_one_line_in_the_notebook_and_leaves_no_empty_folder(tmp_path):
    """No MNIST and no network: the data cell shows one line (no traceback, no command-line flag), and no empty
    mnist_data/MNIST/raw/ is left to look as if the data were there."""
    closed = "http://127.0.0.1:9"  # nothing listens: every download fails at once
    env = {"http_proxy": closed, "https_proxy": closed, "HTTP_PROXY": closed, "HTTPS_PROXY": closed,
           "MNIST_LAB_DATA": ""}
    with lesson(tmp_path, env) as run:
        data_cell = code_index(run.nb, r"load_mnist\(\)")
        run.client.allow_errors = True  # the error is what this test looks at
        run.client.execute_cell(run.nb.cells[data_cell], data_cell)
        errors = [o for o in run.nb.cells[data_cell].outputs if o.output_type == "error"]
        assert len(errors) == 1 and errors[0].ename == "UserError"
        (line,) = errors[0].traceback
        assert "MNIST" in line and "--mnist-dir" not in line and "\n" not in line
    assert not (tmp_path / "mnist_data").exists()
