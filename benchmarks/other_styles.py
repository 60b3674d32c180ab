"""Digits in other styles than MNIST's, and pictures that are not digits, to judge a reader by (never to train it).

- ``drawn``: benchmarks/handwriting.py's drawings on the pad's 280x280 canvas (seed 0: the 240 of the set).
- ``fonts``: each digit typeset in every font of the machine that matplotlib does not ship (Debian's fonts-*
  packages: handwriting-like ones such as fonts-dkg-handwriting, fonts-humor-sans, fonts-kristi, fonts-bwht,
  and ordinary ones such as fonts-liberation, fonts-urw-base35), turned, slanted, stretched, thinner or thicker.
  Training only ever uses the fonts matplotlib ships, so these are fonts the model never saw.
- ``uci``: scikit-learn's copy of the UCI optical digits (1,797 digits by 43 people, 8x8 pixels of 0-16): real
  writers, other than MNIST's, at a resolution far below the pad's.
- ``non_digits``: :func:`mnist_lab.synthetic.non_digit` pictures in the machine's fonts (kana in Klee One when
  fonts-klee is there).

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


def font_set(seed=0, fonts=None):
    """Return ``(X, y)``: every digit once in every font of ``fonts`` (default: the machine's, matplotlib's left
    out), posed at random."""
    rng, fonts = np.random.default_rng(seed), fonts or synthetic.system_fonts()
    pictures = [(d, synthetic.font_digit(d, font, rng)) for font in fonts for d in range(10)]
    return torch.cat([preprocess_drawing(p) for _, p in pictures]), torch.tensor([d for d, _ in pictures])


def uci_set():
    """Return ``(X, y)`` of scikit-learn's 1,797 UCI optical digits (white ink on black, 8x8, values 0-16)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return torch.cat([preprocess_drawing(image / 16) for image in digits.images]), torch.from_numpy(digits.target)


def kana_eval_font():
    found = sorted(Path("/usr/share/fonts").rglob("KleeOne-Regular.ttf"))
    return found[0] if found else synthetic.kana_font()


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
