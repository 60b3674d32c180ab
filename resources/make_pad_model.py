"""Re-make the shipped draw-pad model, mnist_lab/pad_model.pt: the ``pad`` recipe, seed 0, on the CPU.

    python resources/make_pad_model.py [--mnist-dir DIR] [--out mnist_lab/pad_model.pt]

The recipe (mnist_lab.recipes.PRESETS["pad"]) chooses everything, its kept epoch and its "not a digit" threshold
included, on 5,000 held-out training images; the MNIST test accuracy is measured once, at the end, and stored with
the weights (the app shows it). The same CPU gives the same weights.
"""

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mnist_lab import build_model, evaluate, fit, make_config
from mnist_lab.app import PAD_MODEL
from mnist_lab.checkpoint import write_checkpoint
from mnist_lab.data import load_mnist
from mnist_lab.ood import threshold_of


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist-dir", "--data", dest="mnist_dir", default=None,
                        help="MNIST folder (default: $MNIST_LAB_DATA, else ./mnist_data)")
    parser.add_argument("--out", default=str(PAD_MODEL), help=f"where to write it (default: {PAD_MODEL})")
    args = parser.parse_args()
    config = make_config("pad")
    data = load_mnist(args.mnist_dir, val_size=config.val_size, seed=config.seed)
    model = build_model(config.model, seed=config.seed)
    start = time.perf_counter()
    history = fit(model, data, config, device="cpu", progress=sys.stderr.isatty())
    seconds = time.perf_counter() - start
    _, test_accuracy = evaluate(model, data.X_test, data.y_test)
    results = {"test_accuracy": test_accuracy, "train_seconds": seconds, "kept_epoch": history.kept_epoch,
               "energy_threshold": threshold_of(model), "preset": "pad", "device": "cpu"}
    write_checkpoint(args.out, model, asdict(config), results)  # save_checkpoint refuses the package's own files
    print(f"{args.out}: MNIST test {test_accuracy:.2%}, threshold {threshold_of(model):.2f}, {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
