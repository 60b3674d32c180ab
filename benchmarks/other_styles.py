"""Digits in other styles than MNIST's, and pictures that are not digits, to judge a reader by (never to train it).

- ``drawn``: benchmarks/handwriting.py's drawings on the pad's 280x280 canvas (seed 0: the 240 of the set).
- ``fonts``: each digit typeset in every font of the machine that matplotlib does not ship (Debian's fonts-*
  packages: handwriting-like ones such as fonts-dkg-handwriting, fonts-humor-sans, fonts-kristi, fonts-bwht,
  and ordinary ones such as fonts-liberation, fonts-urw-base35), turned, slanted, stretched, thinner or thicker.
  Training only ever uses the fonts matplotlib ships, so these are fonts the model never saw.
- ``uci``: scikit-learn's copy of the UCI optical digits: the test part of that collection, 1,797 digits on 14
  forms filled in by 13 people (the whole collection had 43; 8x8 pixels of 0-16): real writers, other than
  MNIST's, at a resolution far below the pad's.
- ``non_digits``: :func:`mnist_lab.synthetic.non_digit` pictures in the machine's fonts (kana in Klee One when
  fonts-klee is there).

Every set has two parts that share no writer, seed or font: ``select`` to choose a recipe by (its options, its
threshold's share), ``report`` for the figures printed (benchmarks/pad_model.py); nothing is chosen on those.
- drawn: seeds 0-3 report, seeds 10-13 select (benchmarks/pad_model.py's photos: seed 7 report, 9 select);
- fonts: by family (the font's folder), every other one in alphabetical order (see :func:`font_families`);
- UCI: by form (the forms are the file's runs of the same printed sequence of digits, see :func:`uci_forms`):
  the first 7 forms select, the last 7 report;
- non-digits: in the select or the report fonts, from different seeds.

Every picture is read through :func:`mnist_lab.preprocess.preprocess_drawing`, as the pad, the app and
``predict`` read one.
"""

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from handwriting import drawings, render

from mnist_lab import synthetic
from mnist_lab.preprocess import EmptyImageError, preprocess_drawing


def drawn_set(seed=0, per_digit=24):
    """Return ``(X, y)`` of benchmarks/handwriting.py's drawings of ``seed``."""
    items = drawings(per_digit, seed)
    X = torch.cat([preprocess_drawing(render(strokes, width)) for _, _, strokes, width in items])
    return X, torch.tensor([digit for digit, *_ in items])


PARTS = ("select", "report")
DRAWN_SEEDS = {"select": (10, 11, 12, 13), "report": (0, 1, 2, 3)}


def drawn_part(part):
    """Return ``(X, y)`` of the drawn digits of ``part`` (4 seeds, 960 digits)."""
    return _joined([drawn_set(seed) for seed in DRAWN_SEEDS[part]])


def font_families(fonts=None):
    """Return ``{"select": [...], "report": [...]}``: the fonts (default: the machine's, matplotlib's left out)
    parted by family (the folder they are in), the families taken in alphabetical order and dealt in turn:
    the first to report, the second to select, and so on."""
    fonts = fonts or synthetic.system_fonts()
    families = sorted({_family(p) for p in fonts})
    parted = {family: PARTS[(i + 1) % 2] for i, family in enumerate(families)}
    return {part: [p for p in fonts if parted[_family(p)] == part] for part in PARTS}


def _family(path):
    """The font's family: its folder below fonts/truetype or fonts/opentype (Roboto's sub-folders are one)."""
    parts = path.parts
    for kind in ("truetype", "opentype"):
        if kind in parts:
            return parts[parts.index(kind) + 1]
    return path.parent.name


def font_set(seed=0, fonts=None):
    """Return ``(X, y)``: every digit once in every font of ``fonts`` (default: the machine's, matplotlib's left
    out), posed at random."""
    rng, fonts = np.random.default_rng(seed), fonts or synthetic.system_fonts()
    pictures = [(d, synthetic.font_digit(d, font, rng)) for font in fonts for d in range(10)]
    return torch.cat([preprocess_drawing(p) for _, p in pictures]), torch.tensor([d for d, _ in pictures])


def font_part(part, seed=0):
    """Return ``(X, y)``: every digit in every font of ``part``'s families (see :func:`font_families`)."""
    return font_set(seed, font_families()[part])


def uci_forms(labels):
    """Return the form number of each of the UCI digits ``labels`` (in the file's order).

    Each form asked its writer for the same printed sequence of digits (0-9 three times, then a fixed shuffle of
    100), and the file keeps them in that order: a form begins where "0123" (or "1234", its 0 not kept) starts
    anew after a digit that is not the 9 (or 0) of the runs before it."""
    text = "".join(str(int(d)) for d in labels)
    starts = [p for p in range(len(text)) if p == 0 or (text.startswith("0123", p) and text[p - 1] != "9")
              or (text.startswith("1234", p) and text[p - 1] not in "90")]
    return np.searchsorted(np.array(starts), np.arange(len(text)), side="right") - 1


def uci_set(part=None):
    """Return ``(X, y)`` of scikit-learn's UCI optical digits (white ink on black, 8x8, values 0-16): all 1,797,
    or those of ``part`` (``select``: the first 7 forms, ``report``: the last 7; no form in both)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    forms = uci_forms(digits.target)
    keep = np.ones(len(forms), bool) if part is None else (forms < UCI_SELECT_FORMS) == (part == "select")
    X = torch.cat([preprocess_drawing(image / 16) for image in digits.images[keep]])
    return X, torch.from_numpy(digits.target[keep])


UCI_SELECT_FORMS = 7


def kana_eval_font():
    found = sorted(Path("/usr/share/fonts").rglob("KleeOne-Regular.ttf"))
    return found[0] if found else synthetic.kana_font()


def _joined(parts):
    return torch.cat([X for X, _ in parts]), torch.cat([y for _, y in parts])


def non_digit_set(n=2000, seed=1, fonts=None):
    """Return ``(X, kinds, empty)``: ``n`` generated non-digits in ``fonts`` (default: the machine's), and the
    kinds of those preprocessing already found nothing in (they are never read as a digit: "no ink")."""
    rng, fonts, kana = np.random.default_rng(seed), fonts or synthetic.system_fonts(), kana_eval_font()
    X, kinds, empty = [], [], []
    for _ in range(n):
        kind, picture = synthetic.non_digit(rng, fonts, kana_font=kana)
        try:
            X.append(preprocess_drawing(picture))
            kinds.append(kind)
        except EmptyImageError:
            empty.append(kind)
    return torch.cat(X), kinds, empty
