"""The training loop in the open: fit is the lesson's hand-written loop, inference never changes a model's mode,
and the package's imports flow one way (data -> model -> train -> metrics -> plots / widgets)."""

import ast
import json
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_train import tiny_data

from mnist_lab import build_model, evaluate, evaluation_mode, fit, layer_shapes, make_config, predict_proba
from mnist_lab.data import shuffled_batches
from mnist_lab.inference import activations

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "mnist_lab"
# Lowest first: a module may import only modules before it in this list (README: パッケージの中身).
LAYERS = ["errors", "paths", "console", "interrupts", "files", "inference", "device", "metrics", "data", "models", "augment",
          "recipes", "history", "checkpoint", "runs", "photo", "preprocess", "synthetic", "ood", "plots", "callbacks",
          "train", "compare", "exercises", "widgets",
          "app_server", "app", "report", "cli", "__main__"]


def notebook_train_step(model, config):
    """The notebook's own hand-written ``optimizer`` and ``train_step`` (section 5.3), taken from main.ipynb."""
    cells = json.loads((REPO / "main.ipynb").read_text())["cells"]
    source = next("".join(c["source"]) for c in cells if "def train_step" in "".join(c["source"]))
    wanted = [node for node in ast.parse(source).body
              if isinstance(node, ast.FunctionDef) or (isinstance(node, ast.Assign) and node.targets[0].id == "optimizer")]
    namespace = {"torch": torch, "F": F, "cnn": model, "model": model, "config": config}  # the lesson calls it cnn
    exec(compile(ast.Module(wanted, type_ignores=[]), "main.ipynb", "exec"), namespace)  # noqa: S102 - our notebook
    return lambda X, y: namespace["train_step"](model, namespace["optimizer"], X, y)


def test_fit_gives_the_weights_of_the_notebooks_hand_written_loop():
    """Two epochs (the batches are drawn again each epoch) of 102 images: 6 full batches and a short last one."""
    data, config = tiny_data(136), make_config("original", epochs=2, batch_size=16, schedule="constant", seed=3)
    by_fit = build_model(config.model, seed=config.seed)
    fit(by_fit, data, config, device="cpu", progress=False)
    by_hand = build_model(config.model, seed=config.seed).to(memory_format=torch.channels_last)  # as fit lays it out
    train_step = notebook_train_step(by_hand, config)
    generator, steps = torch.Generator().manual_seed(config.seed), 0  # the same batches as fit draws
    for _ in range(config.epochs):
        for X, y in shuffled_batches(data.X_train, data.y_train, config.batch_size, generator):
            train_step(X, y)
            steps += 1
    assert steps == 2 * 7 and len(data.y_train) % config.batch_size
    for (name, p), q in zip(by_fit.state_dict().items(), by_hand.state_dict().values()):
        assert torch.allclose(p, q, rtol=0, atol=1e-6), name
    assert not all(torch.equal(p, q) for p, q in zip(by_hand.state_dict().values(),
                                                   build_model(config.model, seed=config.seed).state_dict().values()))


def test_a_different_batch_order_gives_other_weights():
    """The comparison above can fail: one other seed for the batches is enough to move the weights."""
    data, config = tiny_data(136), make_config("original", epochs=1, batch_size=16, schedule="constant", seed=3)
    model = build_model(config.model, seed=3)
    fit(model, data, config, device="cpu", progress=False)
    other = build_model(config.model, seed=3)
    train_step = notebook_train_step(other, config)
    for X, y in shuffled_batches(data.X_train, data.y_train, 16, torch.Generator().manual_seed(4)):
        train_step(X, y)
    assert not all(torch.allclose(p, q, atol=1e-6) for p, q in zip(model.parameters(), other.parameters()))


def inference_paths():
    from mnist_lab.widgets import DrawPad

    X, y = tiny_data(64).X_test, tiny_data(64).y_test
    drawing = torch.zeros(280, 280)
    drawing[60:220, 130:150] = 1.0

    def draw_pad(model):
        pad = DrawPad(model)
        pad.image.paste(0, (130, 60, 150, 220))  # a stroke of black ink on the white pad
        return pad.predict()

    return {"evaluate": lambda m: evaluate(m, X, y), "predict_proba": lambda m: predict_proba(m, X),
            "layer_shapes": layer_shapes, "DrawPad": draw_pad,
            "activations": lambda m: activations(m, X, [next(name for name, _ in m.named_modules() if name)])}


@pytest.mark.parametrize("path", ["evaluate", "predict_proba", "layer_shapes", "DrawPad", "activations"])
@pytest.mark.parametrize("training", [True, False])
def test_every_inference_path_leaves_the_mode_as_it_found_it(path, training):
    for name in ("original", "deep"):  # deep has dropout: eval mode matters for its answers
        model = build_model(name, seed=0).train(training)
        inference_paths()[path](model)
        assert model.training is training and all(m.training is training for m in model.modules())


def test_evaluation_mode_restores_the_mode_after_an_error():
    model = build_model("deep", seed=0).train()
    with pytest.raises(ZeroDivisionError), evaluation_mode(model):
        assert not model.training and not torch.is_grad_enabled()
        raise ZeroDivisionError
    assert model.training and torch.is_grad_enabled()


def imports_of(path):
    """The ``mnist_lab`` modules that the file at ``path`` imports, anywhere in it (functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found |= {node.module} if node.module else {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mnist_lab."):
            found.add(node.module.split(".")[1])
    return found


def test_imports_only_flow_downwards_and_every_module_has_a_layer():
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert modules == set(LAYERS), f"put new modules into LAYERS: {modules ^ set(LAYERS)}"
    for module in LAYERS:
        for imported in imports_of(PACKAGE / f"{module}.py"):
            assert LAYERS.index(imported) < LAYERS.index(module), f"{module} imports {imported}, a higher module"


SERVERS = {"voila", "jupyter_server", "tornado", "nbclient", "playwright"}
SERVER_MODULES = {"app_server"}  # ours, built on Voilà: imported only by the command that serves


def imported_when_loaded(path):
    """The top-level names of the modules that the file at ``path`` imports when it is loaded (outside functions)."""
    found, todo = set(), list(ast.parse(path.read_text()).body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):  # also ours (``from .app_server import``)
            found |= {node.module.split(".")[0]} if node.module else {alias.name for alias in node.names}
        elif not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            todo.extend(ast.iter_child_nodes(node))
    return found


def test_no_module_loads_a_server_when_imported():
    """Voilà and Jupyter's servers are imported by the command that starts one, so importing the package (the
    lesson's first cell, ``pytest --doctest-modules``) never waits for them (Voilà alone took about 35 s)."""
    loaded = {path.name: imported_when_loaded(path) & (SERVERS | SERVER_MODULES) for path in PACKAGE.glob("*.py")
              if path.stem not in SERVER_MODULES}
    assert not any(loaded.values()), loaded
    assert "voila" in imports_of_anything(PACKAGE / "app_server.py")  # the command that serves still has it
    assert "app_server" in imports_of(PACKAGE / "app.py")


def imports_of_anything(path):
    return {alias.name.split(".")[0] for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Import)
            for alias in node.names} | {node.module.split(".")[0] for node in ast.walk(ast.parse(path.read_text()))
                                        if isinstance(node, ast.ImportFrom) and node.level == 0}


def test_no_function_is_over_forty_lines():
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert node.end_lineno - node.lineno < 40, f"{path.name}: {node.name} is over 40 lines"


def test_y_hat_always_means_predicted_labels():
    """``y_hat`` is a predicted digit everywhere (class scores are ``scores``), in the package and the lesson."""
    texts = [p.read_text() for p in PACKAGE.glob("*.py")]
    texts += ["".join(c["source"]) for c in json.loads((REPO / "main.ipynb").read_text())["cells"]]
    assignment = re.compile(r"^\s*(?:self\.)?y_hat\s*=\s*(.+)$", re.MULTILINE)
    assignments = [m.group(1) for text in texts for m in assignment.finditer(text)]
    assert len(assignments) >= 4
    # an argmax of scores, or predicted labels a student passed in (checked as labels 0-9)
    assert all(".argmax(" in value or value.startswith("_labels(") for value in assignments), assignments
