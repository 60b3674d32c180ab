"""Latency of the draw pad: from a finished stroke to the shown prediction (preprocess + model + widget update).

Target: p95 <= 20 ms on 2 CPU cores, for both models. Untrained weights cost the same time as trained ones.

    python benchmarks/drawpad.py [--runs 300]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mnist_lab.models import MODELS, build_model
from mnist_lab.widgets import DrawPad


def latencies_ms(model, runs):
    pad = DrawPad(model)
    pad.pen_down(90, 60)
    for x, y in [(190, 60), (120, 240)]:  # a seven, drawn as two strokes
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
    for name in MODELS:
        times = sorted(latencies_ms(build_model(name, seed=0).eval(), args.runs))
        p95 = times[int(0.95 * len(times)) - 1]
        ok &= p95 <= 20
        print(f"{name:8s} model: median {statistics.median(times):5.1f} ms, p95 {p95:5.1f} ms, max {times[-1]:5.1f} ms")
    print("target (p95 <= 20 ms): " + ("MET" if ok else "NOT MET"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
