"""How well the draw pad's model reads hand-drawn digits, next to the quick model.

The drawings are benchmarks/handwriting.py's: 24 of each digit in several writing styles (continental 1 and 7, open
and closed 4, ...), slanted, turned, at any size and pen width. Seed 0 is the set; more seeds give more drawings of
the same kinds. Both models read through the same preprocessing as the pad, the app and ``predict``.

    python benchmarks/pad_model.py [--seeds 4] [--quick CHECKPOINT]

Without --quick, a quick model is trained first (one epoch, seed 0, as ``mnist-lab train``; ~15 s on 2 cores).
"""

import argparse
import collections
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from handwriting import drawings, render

from mnist_lab import build_model, fit, load_checkpoint, make_config
from mnist_lab.app import PAD_MODEL
from mnist_lab.data import load_mnist
from mnist_lab.inference import predict_proba
from mnist_lab.preprocess import preprocess_drawing


def drawn_set(seed):
    items = drawings(24, seed)
    X = torch.cat([preprocess_drawing(render(strokes, width)) for _, _, strokes, width in items])
    return X, torch.tensor([digit for digit, *_ in items]), [f"{digit} {style}" for digit, style, *_ in items]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4, help="sets of 240 drawings (default: 4; seed 0 is the set)")
    parser.add_argument("--quick", default=None, help="a quick model's checkpoint (default: train one now)")
    parser.add_argument("--data", default=None, help="MNIST folder (default: $MNIST_LAB_DATA, else ./data)")
    args = parser.parse_args()
    data = load_mnist(args.data)
    if args.quick:
        quick, _ = load_checkpoint(args.quick)
    else:
        quick = build_model("quick", seed=0)
        fit(quick, data, make_config("quick"), device="cpu", progress=False)
    models = {"pad (mnist_lab/pad_model.pt)": load_checkpoint(PAD_MODEL)[0], "quick": quick.eval()}
    sets = [drawn_set(seed) for seed in range(args.seeds)]
    print(f"{'model':30s} {'set (seed 0)':>13s} {'all seeds':>10s} {'MNIST test':>11s}  most frequent mistakes")
    for name, model in models.items():
        right, wrong = [], collections.Counter()
        for X, y, labels in sets:
            y_hat = predict_proba(model, X).argmax(1)
            right.append((y_hat == y).float())
            wrong.update(f"{label}→{int(p)}" for label, p, ok in zip(labels, y_hat, y_hat == y) if not ok)
        test = (predict_proba(model, data.X_test).argmax(1).cpu() == data.y_test.cpu()).float().mean()
        share = torch.cat(right).mean()
        print(f"{name:30s} {right[0].mean():13.1%} {share:10.1%} {test:11.2%}  "
              + ", ".join(f"{k} ×{n}" for k, n in wrong.most_common(4)))
    print(f"({len(sets[0][1])} drawings per seed, {args.seeds} seeds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
