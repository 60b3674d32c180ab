"""Latency of the draw pad (and so of the app, which is the same pad): from a finished stroke to the shown
prediction (preprocess + model + widget update), for every model and the shipped pad model, for a big seven drawn
with the pad's pen and for a tiny seven drawn with a thick one (its strokes are redrawn thinner: the slow path).

Target: p95 <= 20 ms on 2 CPU cores. Untrained weights cost the same time as trained ones.

    python benchmarks/drawpad.py [--runs 300]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mnist_lab.app import PAD_MODEL
from mnist_lab.checkpoint import load_checkpoint
from mnist_lab.models import MODELS, build_model
from mnist_lab.widgets import DrawPad

SEVENS = {"big, pen 22": ([(90, 60), (190, 60), (120, 240)], 22),
          "tiny, pen 30": ([(120, 120), (150, 120), (130, 165)], 30)}


def latencies_ms(model, runs, points, width):
    pad = DrawPad(model, line_width=width)
    pad.pen_down(*points[0])
    for x, y in points[1:]:
        pad.pen_move(x, y)
    pad.pen_up(0, 0)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        pad.predict()
        times.append((time.perf_counter() - start) * 1000)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="predictions timed per model (default: 300)")
    args = parser.parse_args()
    ok = True
    models = {name: build_model(name, seed=0).eval() for name in MODELS}
    models["pad_model.pt"] = load_checkpoint(PAD_MODEL)[0]
    for name, model in models.items():
        for seven, (points, width) in SEVENS.items():
            times = sorted(latencies_ms(model, args.runs, points, width))
            p95 = times[int(0.95 * len(times)) - 1]
            ok &= p95 <= 20
            print(f"{name:12s} {seven:13s}: median {statistics.median(times):5.1f} ms, p95 {p95:5.1f} ms, "
                  f"max {times[-1]:5.1f} ms")
    print("target (p95 <= 20 ms): " + ("MET" if ok else "NOT MET"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
