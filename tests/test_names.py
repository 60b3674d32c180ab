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
        thing = getattr(importlib.import_module(module), name)
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
