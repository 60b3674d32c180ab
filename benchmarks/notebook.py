"""Run main.ipynb top to bottom with its default settings and print the time of each section.

Target: the whole notebook within 150 s on 2 CPU cores (and no slower on a GPU).

    python benchmarks/notebook.py
"""

import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]


def section_times(path):
    """Execute the notebook; return ``[(section heading, seconds), ...]`` and the total wall time."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(REPO)}})
    times, section = {}, "(before the first section)"
    start = time.perf_counter()
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            heading = re.search(r"^## (.+)$", cell.source, re.MULTILINE) if cell.cell_type == "markdown" else None
            if heading:
                section = heading.group(1)
            if cell.cell_type == "code":
                t = time.perf_counter()
                client.execute_cell(cell, index)
                times[section] = times.get(section, 0.0) + time.perf_counter() - t
    return list(times.items()), time.perf_counter() - start


def main():
    sys.path.insert(0, str(REPO))
    from mnist_lab.device import describe_device, try_gpu

    print(f"device: {describe_device(try_gpu())}")
    rows, total = section_times(REPO / "main.ipynb")
    for name, seconds in rows:
        print(f"{seconds:7.1f} s  {name}")
    print(f"{total:7.1f} s  total (kernel start included); target <= 150 s on 2 CPU cores: "
          + ("MET" if total <= 150 else "NOT MET"))
    return 0 if total <= 150 else 1


if __name__ == "__main__":
    sys.exit(main())
