"""Hand-drawn-style digits, as people draw them on a pad: several writing styles per digit (continental 1 and 7,
open and closed 4, ...), each drawn as pen strokes with a shaky hand, slanted, rotated, stretched, at any size and
place on the 280x280 canvas, with a pen of any width. Seeded: the same set every time.

    python benchmarks/handwriting.py --out drawn        # writes drawn/NNN_<digit>_<style>.png and drawn/sheet.png

Used by benchmarks/pad_model.py (accuracy of the pad model and the quick model on this set) and by the browser tests,
which draw the same strokes with the mouse and with touch.
"""

import argparse
import itertools
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CANVAS = 280
PAD_PEN = 22  # the draw pad's default pen width


def arc(cx, cy, rx, ry, a0, a1, n=24):
    """Points on an ellipse from angle ``a0`` to ``a1`` (degrees; 0 = right, 90 = down, as on a screen)."""
    return [(cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
            for a in np.linspace(a0, a1, n)]


def figure_eight(n=48):
    t = np.linspace(0, 2 * math.pi, n)
    return list(zip(0.3 + 0.28 * np.sin(2 * t), 0.5 - 0.48 * np.cos(t)))


# Each style: a list of strokes; each stroke a list of (x, y) in a box about 0.6 wide and 1 high (y down).
STYLES = {
    0: {"oval": [arc(0.3, 0.5, 0.28, 0.48, -90, 275)],
        "round_ccw": [arc(0.3, 0.5, 0.33, 0.45, -80, -445)],
        "open_top": [arc(0.3, 0.5, 0.27, 0.48, -65, 245)]},
    1: {"stick": [[(0.3, 0.0), (0.3, 1.0)]],
        "flag": [[(0.1, 0.25), (0.34, 0.0), (0.34, 1.0)]],
        "flag_base": [[(0.12, 0.22), (0.32, 0.0), (0.32, 1.0)], [(0.1, 1.0), (0.55, 1.0)]]},
    2: {"curve": [arc(0.3, 0.27, 0.27, 0.25, 190, 385) + [(0.03, 1.0), (0.62, 0.98)]],
        "angular": [[(0.04, 0.16), (0.3, 0.0), (0.56, 0.15), (0.5, 0.36), (0.02, 1.0), (0.6, 1.0)]],
        "loop": [arc(0.3, 0.27, 0.27, 0.25, 190, 380) + [(0.16, 0.8), (0.06, 0.95), (0.14, 1.0), (0.24, 0.9),
                                                           (0.4, 0.97), (0.62, 0.97)]]},
    3: {"round": [arc(0.3, 0.25, 0.25, 0.23, 200, 450) + arc(0.3, 0.73, 0.28, 0.26, -90, 160)],
        "flat_top": [[(0.05, 0.0), (0.55, 0.0), (0.25, 0.4)] + arc(0.3, 0.7, 0.28, 0.28, -100, 160)]},
    4: {"open": [[(0.35, 0.0), (0.02, 0.65), (0.62, 0.65)], [(0.45, 0.3), (0.45, 1.0)]],
        "closed": [[(0.45, 1.0), (0.45, 0.0), (0.0, 0.65), (0.62, 0.65)]],
        "right_angle": [[(0.08, 0.0), (0.08, 0.6), (0.6, 0.6)], [(0.45, 0.1), (0.45, 1.0)]]},
    5: {"two_strokes": [[(0.08, 0.02), (0.05, 0.45)] + arc(0.28, 0.68, 0.27, 0.27, -125, 150),
                        [(0.08, 0.02), (0.58, 0.0)]],
        "one_stroke": [[(0.58, 0.0), (0.08, 0.0), (0.05, 0.45)] + arc(0.28, 0.68, 0.27, 0.27, -125, 150)]},
    6: {"loop": [arc(0.62, 0.62, 0.57, 0.62, -100, -180) + arc(0.3, 0.72, 0.26, 0.27, 180, -150)],
        "straight": [[(0.5, 0.0), (0.07, 0.68)] + arc(0.3, 0.73, 0.25, 0.26, 180, -160)]},
    7: {"plain": [[(0.02, 0.05), (0.6, 0.05), (0.22, 1.0)]],
        "crossbar": [[(0.02, 0.05), (0.6, 0.05), (0.22, 1.0)], [(0.15, 0.52), (0.55, 0.5)]],
        "hook": [[(0.02, 0.18), (0.02, 0.05), (0.6, 0.05), (0.28, 1.0)]]},
    8: {"figure": [figure_eight()],
        "two_loops": [arc(0.3, 0.25, 0.22, 0.24, 90, 455), arc(0.3, 0.72, 0.28, 0.27, -90, 275)]},
    9: {"straight": [arc(0.3, 0.27, 0.26, 0.26, 0, 360) + [(0.55, 0.3), (0.5, 1.0)]],
        "curved": [arc(0.3, 0.27, 0.26, 0.26, 0, 360) + [(0.56, 0.32), (0.52, 0.8), (0.32, 1.0)]],
        "ccw": [arc(0.3, 0.27, 0.26, 0.26, 10, -350) + [(0.54, 0.25), (0.56, 1.0)]]},
}


def _resampled(stroke, step=0.02):
    """The stroke's polyline with points about ``step`` apart (a hand gives many points, evenly in time)."""
    points = [np.asarray(stroke[0], float)]
    for p, q in itertools.pairwise(stroke):
        p, q = np.asarray(p, float), np.asarray(q, float)
        n = max(1, int(np.linalg.norm(q - p) / step))
        points += [p + (q - p) * (i / n) for i in range(1, n + 1)]
    return np.array(points)


def _shaky(points, rng, amplitude):
    """Add a slow wobble along the stroke, as a hand does."""
    t = np.linspace(0, 1, len(points))[:, None]
    phase, freq = rng.uniform(0, 2 * math.pi, (1, 2)), rng.uniform(1, 3, (1, 2))
    return points + amplitude * np.sin(2 * math.pi * freq * t + phase)


def sample(digit, style, rng):
    """Return ``(strokes, pen_width)``: one drawing of ``digit`` in ``style``, in canvas pixels."""
    strokes = [_shaky(_resampled(s), rng, rng.uniform(0.0, 0.03)) for s in STYLES[digit][style]]
    slant, angle = rng.uniform(-0.15, 0.4), math.radians(rng.uniform(-12, 12))  # slant > 0: leaning right
    stretch = rng.uniform(0.8, 1.25)
    transformed = []
    for s in strokes:
        x, y = (s[:, 0] - 0.3) * stretch + slant * (0.5 - s[:, 1]), s[:, 1] - 0.5
        transformed.append(np.stack([x * math.cos(angle) - y * math.sin(angle),
                                     x * math.sin(angle) + y * math.cos(angle)], 1))
    height = math.exp(rng.uniform(math.log(36), math.log(250)))
    width = PAD_PEN if rng.uniform() < 0.5 else rng.uniform(4, 32)  # half keep the pad's default pen
    width = min(width, 0.3 * height)  # thicker, and the loops of a small digit close up: a blob to anyone
    allp = np.concatenate(transformed) * height
    low, high = allp.min(0) - width / 2, allp.max(0) + width / 2
    margin = np.maximum(CANVAS - (high - low), 0)
    offset = -low + rng.uniform(0, 1, 2) * margin
    return [[tuple(p) for p in s * height + offset] for s in transformed], round(width)


def upright(digit, style, height=200, pen=PAD_PEN, centre=(CANVAS / 2, CANVAS / 2)):
    """Return ``(strokes, pen)``: ``digit`` in ``style`` drawn plainly (no wobble, slant or turn), ``height`` pixels
    high around ``centre``: the drawings the browser tests make with the mouse and with a finger."""
    return [[(centre[0] + (x - 0.3) * height, centre[1] + (y - 0.5) * height) for x, y in _resampled(s, 0.05)]
            for s in STYLES[digit][style]], pen


def render(strokes, width, size=CANVAS):
    """Draw ``strokes`` in black on white as the draw pad does: round-capped segments of ``width`` pixels."""
    image = Image.new("L", (size, size), 255)
    pen, r = ImageDraw.Draw(image), width / 2
    for stroke in strokes:
        for p, q in zip(stroke[:1] + stroke[:-1], stroke):
            pen.line([p, q], fill=0, width=width)
            pen.ellipse([q[0] - r, q[1] - r, q[0] + r, q[1] + r], fill=0)
    return image


def drawings(per_digit=24, seed=0):
    """Return ``[(digit, style, strokes, pen_width), ...]``: ``per_digit`` drawings of each digit, its styles taken
    in turn."""
    rng = np.random.default_rng(seed)
    out = []
    for digit, styles in STYLES.items():
        names = list(styles)
        for i in range(per_digit):
            strokes, width = sample(digit, names[i % len(names)], rng)
            out.append((digit, names[i % len(names)], strokes, width))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNG files (required)")
    parser.add_argument("--per-digit", type=int, default=24, help="drawings of each digit (default: 24)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    images = []
    for i, (digit, style, strokes, width) in enumerate(drawings(args.per_digit, args.seed)):
        image = render(strokes, width)
        image.save(args.out / f"{i:03d}_{digit}_{style}.png")
        images.append(image.resize((70, 70)))
    sheet = Image.new("L", (70 * args.per_digit, 70 * 10), 128)
    for i, image in enumerate(images):
        sheet.paste(image, (70 * (i % args.per_digit), 70 * (i // args.per_digit)))
    sheet.save(args.out / "sheet.png")
    print(f"{len(images)} drawings in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
