"""Run main.ipynb top to bottom as it is committed (or with another PRESET) and print the time of each section and
of the cells the lesson quotes a time for: the training (5.7) and section 12's comparison.

Target: the whole notebook with its default settings within 150 s on 2 CPU cores (and no slower on a GPU).
On a busy machine, ``--baseline REF`` also runs the notebook and package of a git commit (e.g. ``main``), the two
alternately, and prints the ratio of their totals: measured in one run, it holds where the seconds do not.

    python benchmarks/notebook.py [--preset quick] [--baseline main]
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
TARGET = 150
QUOTED = {"training (5.7)": r"fit\(model, data, config", "comparison (12)": r"compare\(data, configs"}


def section_times(nb, folder=REPO):
    """Execute ``nb`` in ``folder`` (its package first on the path); return ``({section heading: seconds}, {cell
    index: seconds}, total wall time)``."""
    os.environ["PYTHONPATH"] = str(folder)  # the kernel inherits it
    client = NotebookClient(nb, timeout=3600, kernel_name="python3", resources={"metadata": {"path": str(folder)}})
    sections, cells, section = {}, {}, "(before the first section)"
    start = time.perf_counter()
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            heading = re.search(r"^## (.+)$", cell.source, re.MULTILINE) if cell.cell_type == "markdown" else None
            if heading:
                section = heading.group(1)
            if cell.cell_type == "code":
                t = time.perf_counter()
                client.execute_cell(cell, index)
                cells[index] = time.perf_counter() - t
                sections[section] = sections.get(section, 0.0) + cells[index]
    return sections, cells, time.perf_counter() - start


def notebook(folder, preset=None):
    """``folder``'s main.ipynb, with ``PRESET = preset`` when given; and the PRESET it runs with."""
    nb = nbformat.read(Path(folder) / "main.ipynb", as_version=4)
    settings = next(c for c in nb.cells if c.cell_type == "code" and re.search(r"^PRESET = ", c.source, re.MULTILINE))
    if preset:
        settings.source = re.sub(r'^PRESET = "\w+"', f'PRESET = "{preset}"', settings.source, flags=re.MULTILINE)
    return nb, re.search(r'^PRESET = "(\w+)"', settings.source, re.MULTILINE).group(1)


def compare_with(ref, preset, rounds=2):
    """Run ``ref``'s notebook and this one alternately, ``rounds`` times each; print each section's seconds side by
    side, the totals and their ratio."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "archive", ref], cwd=REPO, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        totals, sections = {ref: [], "this": []}, {ref: {}, "this": {}}
        for _ in range(rounds):
            for name, folder in ((ref, Path(tmp)), ("this", REPO)):
                by_section, _, total = section_times(notebook(folder, preset)[0], folder)
                totals[name].append(total)
                for heading, seconds in by_section.items():
                    sections[name][heading] = sections[name].get(heading, 0.0) + seconds
                print(f"{total:7.1f} s  total, {name}", flush=True)
    print(f"{ref:>9} {'this':>9}  section (seconds summed over {rounds} runs each)")
    for heading in dict.fromkeys([*sections[ref], *sections["this"]]):
        old, new = (sections[side].get(heading) for side in (ref, "this"))
        print(" ".join(f"{s:9.1f}" if s is not None else f"{'-':>9}" for s in (old, new)) + f"  {heading}")
    ratio = sum(totals["this"]) / sum(totals[ref])
    print(f"ratio this / {ref}: {ratio:.2f} (same machine, alternating runs)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=None, help="run with PRESET = this (default: as committed)")
    parser.add_argument("--baseline", default=None, metavar="REF",
                        help="also time the notebook of this git commit, alternately, and print the ratio (default: no)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each notebook with --baseline (default: 2)")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from mnist_lab.device import best_device, describe_device

    if args.baseline:
        compare_with(args.baseline, args.preset, args.rounds)
        return 0
    nb, preset = notebook(REPO, args.preset)
    print(f"device: {describe_device(best_device())}, PRESET = {preset!r}")
    sections, cells, total = section_times(nb)
    for name, seconds in sections.items():
        print(f"{seconds:7.1f} s  {name}")
    for name, pattern in QUOTED.items():
        index = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and re.search(pattern, c.source))
        print(f"{cells[index]:7.1f} s  cell: {name}")
    met = total <= TARGET
    print(f"{total:7.1f} s  total (kernel start included); target <= {TARGET} s on 2 CPU cores with the default "
          f"PRESET: " + ("MET" if met else "NOT MET"))
    return 0 if met or args.preset else 1


if __name__ == "__main__":
    sys.exit(main())
