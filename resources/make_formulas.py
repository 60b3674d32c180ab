"""Regenerate the metric formula images resources/{accuracy,recall,precision,f1}.svg (matplotlib mathtext).

    python resources/make_formulas.py

Glyphs are stored as paths, so the SVGs look the same on every machine, with or without the fonts.
"""

from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

FORMULAS = {
    "accuracy": r"$\mathrm{Accuracy} = \dfrac{TP + TN}{TP + TN + FP + FN}$",
    "recall": r"$\mathrm{Recall} = \dfrac{TP}{TP + FN}$",
    "precision": r"$\mathrm{Precision} = \dfrac{TP}{TP + FP}$",
    "f1": r"$F_1 = \dfrac{2 \cdot \mathrm{Precision} \cdot \mathrm{Recall}}{\mathrm{Precision} + \mathrm{Recall}}"
          r" = \dfrac{2\,TP}{2\,TP + FP + FN}$",
}


def write_formula(tex, path):
    fig = Figure(figsize=(0.1, 0.1))
    fig.text(0, 0, tex, fontsize=18)
    fig.savefig(path, format="svg", bbox_inches="tight", pad_inches=0.05, transparent=True,
                metadata={"Date": None})  # no timestamp: regenerating gives the same file


def main():
    matplotlib.rcParams["svg.fonttype"] = "path"
    matplotlib.rcParams["svg.hashsalt"] = "mnist-lab"
    here = Path(__file__).resolve().parent
    for name, tex in FORMULAS.items():
        write_formula(tex, here / f"{name}.svg")
        print(f"wrote {here / name}.svg")


if __name__ == "__main__":
    main()
