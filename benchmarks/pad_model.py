"""The draw pad's model side by side with quick and the pad model before it: on MNIST, on digits in other styles,
on pictures that are not digits, and in the pad's time to answer.

Three models, in one run:
- ``quick``: the quick preset, trained now (one epoch, seed 0; ~15 s on 2 cores), or ``--quick CHECKPOINT``;
- ``pad v1``: the pad model shipped before (quick's CNN, 3 epochs of pad-like augmentation; benchmarks/pad_model_v1.pt);
- ``pad``: the pad recipe's model as shipped (mnist_lab/pad_model.pt), or trained now with ``--train``.

The other-style sets (benchmarks/other_styles.py, never trained on), each in its ``report`` part (``--part select``:
the part recipes are chosen on; no writer, seed or font in both): 960 digits drawn by benchmarks/handwriting.py
(seeds 0-3, its 240 of seed 0 among them); every digit in half of the machine's font families that matplotlib does
not ship; the UCI digits of 7 of scikit-learn's 14 forms (other writers, 8x8); 200 photo-like pictures of drawn
digits on paper. Each is printed per digit. Then the share of pictures flagged 「数字ではないかもしれません」: MNIST
test digits, the other-style digits, and generated non-digits by kind (in that part's fonts). quick and pad v1 have
no threshold of their own: for them the energy threshold is set the pad recipe's way, on 5,000 MNIST training
images, to show what the energy score does for a model never taught non-digits. Last, the pad's time from a
finished stroke to the shown answer (benchmarks/drawpad.py's way; target p95 <= 20 ms on 2 CPU cores).

    python benchmarks/pad_model.py [--train] [--quick CHECKPOINT] [--runs 200] [--part report]
"""

import argparse
import collections
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from drawpad import SEVENS, latencies_ms
from handwriting import drawings, render
from other_styles import DRAWN_SEEDS, drawn_set, font_families, font_part, non_digit_set, uci_set

from mnist_lab import build_model, fit, load_checkpoint, make_config
from mnist_lab.app import PAD_MODEL
from mnist_lab.data import load_mnist
from mnist_lab.ood import calibrated_threshold, scores_and_energy, threshold_of
from mnist_lab.preprocess import preprocess_drawing
from mnist_lab.synthetic import KINDS, photo

BEFORE = Path(__file__).with_name("pad_model_v1.pt")
PHOTO_SEEDS = {"report": 7, "select": 9}
NON_DIGITS = {"report": (2000, 1), "select": (1000, 2)}  # how many, seed


def photo_set(n=200, seed=7):
    rng = np.random.default_rng(seed)
    items = drawings(n // 10, seed)
    pictures = [photo(render(strokes, width), rng, desk=i % 4 != 3) for i, (_, _, strokes, width) in enumerate(items)]
    return torch.cat([preprocess_drawing(p) for p in pictures]), torch.tensor([d for d, *_ in items])


def trained(preset, data):
    config = make_config(preset)
    model = build_model(config.model, seed=config.seed)
    start = time.perf_counter()
    fit(model, data, config, device="cpu", progress=False)
    print(f"  ({preset}: trained in {time.perf_counter() - start:.0f} s)", flush=True)
    return model.eval()


def per_digit(model, X, y):
    probs, _ = scores_and_energy(model, X)
    right = (probs.argmax(1) == y).float()
    return right.mean().item(), [right[y == d].mean().item() for d in range(10)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", action="store_true", help="train the pad recipe now (default: the shipped model)")
    parser.add_argument("--quick", default=None, help="a quick model's checkpoint (default: train one now)")
    parser.add_argument("--runs", type=int, default=200, help="pad answers timed per model (default: 200)")
    parser.add_argument("--part", choices=("report", "select"), default="report",
                        help="which part of the other-style sets (default: report; recipes are chosen on select)")
    parser.add_argument("--mnist-dir", "--data", dest="mnist_dir", default=None,
                        help="MNIST folder (default: $MNIST_LAB_DATA, else ./mnist_data)")
    args = parser.parse_args()
    data = load_mnist(args.mnist_dir)
    val = load_mnist(args.mnist_dir, val_size=5000, seed=0).X_val  # the pad recipe's validation images
    print("models:", flush=True)
    models = {"quick": load_checkpoint(args.quick)[0] if args.quick else trained("quick", data),
              "pad v1": load_checkpoint(BEFORE)[0],
              "pad": trained("pad", load_mnist(args.mnist_dir, val_size=5000)) if args.train else load_checkpoint(PAD_MODEL)[0]}
    limits = {name: threshold_of(m) or calibrated_threshold(scores_and_energy(m, val)[1]) for name, m in models.items()}
    first, *rest = DRAWN_SEEDS[args.part]
    sets = {f"drawn (240, seed {first})": drawn_set(first),
            f"drawn (720, seeds {rest[0]}-{rest[-1]})": _joined([drawn_set(s) for s in rest]),
            "fonts": font_part(args.part), "UCI (7 forms)": uci_set(args.part),
            "photos": photo_set(seed=PHOTO_SEEDS[args.part])}
    n_non, seed_non = NON_DIGITS[args.part]
    X_non, kinds, empty = non_digit_set(n_non, seed=seed_non, fonts=font_families()[args.part])
    print(f"other-style sets and non-digits: the {args.part} part")
    print(f"\n{'':24s}" + "".join(f"{name:>12s}" for name in models))
    print(f"{'MNIST test':24s}" + "".join(f"{per_digit(m, data.X_test, data.y_test)[0]:12.2%}" for m in models.values()))
    table = {name: {s: per_digit(m, *xy) for s, xy in sets.items()} for name, m in models.items()}
    for s, (X, y) in sets.items():
        print(f"{s + f' ({len(y)})' if 'drawn' not in s else s:24s}" + "".join(f"{table[n][s][0]:12.1%}" for n in models))
    print("\nper digit (0-9):")
    for s in sets:
        for name in models:
            print(f"  {s[:22]:22s} {name:7s} " + " ".join(f"{v:4.0%}" for v in table[name][s][1]))
    print("\nflagged 「数字ではないかもしれません」 (energy above the threshold):")
    flag_sets = {"MNIST test": data.X_test, "drawn (960)": torch.cat([sets[s][0] for s in sets if "drawn" in s]),
                 "fonts": sets["fonts"][0], "UCI": sets["UCI (7 forms)"][0], "photos": sets["photos"][0],
                 "non-digits (all)": X_non}
    print(f"{'':24s}" + "".join(f"{name:>12s}" for name in models))
    flags = {name: {s: scores_and_energy(m, X)[1] > limits[name] for s, X in flag_sets.items()} for name, m in models.items()}
    for s in flag_sets:
        print(f"{s:24s}" + "".join(f"{flags[n][s].float().mean():12.2%}" for n in models))
    for kind in KINDS:
        mask = torch.tensor([k == kind for k in kinds])
        print(f"  {kind:22s}" + "".join(f"{flags[n]['non-digits (all)'][mask].float().mean():12.1%}" for n in models)
              + f"   ({int(mask.sum())} pictures)")
    print(f"  ({len(empty)} more generated non-digits had no ink to read: {dict(collections.Counter(empty))})")
    print("  (quick and pad v1: threshold set now on 5,000 MNIST training images, which they trained on)")
    print(f"\npad: time from a finished stroke to the answer shown ({args.runs} runs each, ms)")
    for name, model in models.items():
        for seven, (points, width) in SEVENS.items():
            times = sorted(latencies_ms(model, args.runs, points, width))
            print(f"  {name:7s} {seven:13s} median {statistics.median(times):5.1f}  p95 "
                  f"{times[int(0.95 * len(times)) - 1]:5.1f}")
    return 0


def _joined(parts):
    return torch.cat([X for X, _ in parts]), torch.cat([y for _, y in parts])


if __name__ == "__main__":
    sys.exit(main())
