import importlib.util
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_formula_svgs_are_what_the_script_makes(tmp_path):
    script = tmp_path / "make_formulas.py"
    shutil.copy(REPO / "resources" / "make_formulas.py", script)
    spec = importlib.util.spec_from_file_location("make_formulas", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main()
    for name in module.FORMULAS:
        made = (tmp_path / f"{name}.svg").read_text()
        assert "<svg" in made and "<path" in made
        assert made == (REPO / "resources" / f"{name}.svg").read_text(), f"regenerate resources/{name}.svg"
