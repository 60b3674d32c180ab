"""Data augmentation on whole batches, on the batch's own device: small random rotations, shifts and scalings
(:func:`random_affine`), and the larger changes of digits drawn on a pad (:func:`like_drawings`).

One ``affine_grid`` + ``grid_sample`` call warps a whole batch at once, so augmentation costs one cheap kernel per
step instead of a PIL transform per image.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

from .data import MEAN, STD
from .errors import ArgumentError, explained_arguments

BACKGROUND, INK = -MEAN / STD, (1 - MEAN) / STD  # a black and a white pixel after normalisation
LOW_RES, THICK_LOW_RES = 0.35, 1.0  # share of pictures seen at a low resolution, and of those drawn thicker first


def random_affine(X, generator=None, degrees=10.0, shift=2.0, scale=(0.9, 1.1), shear=0.0, stretch=0.0):
    """Return ``X`` (normalised ``N x 1 x 28 x 28``) with each image rotated by up to ``degrees``, shifted by up
    to ``shift`` pixels, scaled by a factor in ``scale``, slanted by up to ``shear`` (x moves by shear * y) and
    made up to ``stretch`` (a fraction) wider or narrower; new pixels are black, like MNIST's background.

    The random numbers are drawn on the CPU from ``generator`` (the same augmentation on every device).
    """
    n, _, h, w = X.shape
    u = 2 * torch.rand(n, 6, generator=generator).to(X.device) - 1  # uniform in [-1, 1]
    angle = u[:, 0] * math.radians(degrees)
    factor = scale[0] + (scale[1] - scale[0]) * (u[:, 1] + 1) / 2
    tx, ty = u[:, 2] * shift * 2 / w, u[:, 3] * shift * 2 / h
    cos, sin = torch.cos(angle) / factor, torch.sin(angle) / factor
    slant, narrow = u[:, 4] * shear, 1 / (1 + u[:, 5] * stretch)  # output -> input: the inverse map
    theta = torch.stack([torch.stack([cos * narrow, -sin * narrow + slant, tx], 1),
                         torch.stack([sin, cos, ty], 1)], 1).to(X.dtype)
    grid = F.affine_grid(theta, list(X.shape), align_corners=False)
    return _sampled(X, grid)


def _sampled(X, grid):
    """``grid_sample`` with black coming in: it pads with 0, so shift 0 to the background and back."""
    return F.grid_sample(X - BACKGROUND, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + BACKGROUND


def like_drawings(X, y, generator=None):
    """Return ``X`` (normalised ``N x 1 x 28 x 28``, labels ``y``) changed the ways digits drawn on a pad, or
    written by people other than MNIST's, differ from MNIST's: half the ones given a flag and some of those a base
    too, a third of the sevens a crossbar (MNIST's writers were American: the continental 1 and 7 are rare in it),
    rotated up to 15 degrees, slanted, stretched, scaled 0.75-1.1, strokes made thinner or thicker, a slow wobble
    of the whole shape (an elastic distortion of up to about one pixel), and a third of them seen at a lower
    resolution (a small or blurred picture, enlarged; drawn with a wider pen first). Half the images are left as
    they are: every change above resamples the picture, and a model that only ever saw resampled digits takes
    MNIST's own sharper ones for strangers once it is also taught non-digits (it read them at 65 %)."""
    original, kept = X, torch.rand(len(X), generator=generator).to(X.device) < 0.5
    X = with_crossbars(with_flags(X, y, generator), y, generator)
    X = random_affine(X, generator, degrees=15.0, shift=2.0, scale=(0.75, 1.1), shear=0.3, stretch=0.2)
    X = _low_resolution(_wobbled(_rethickened(X, generator), generator), generator)
    return torch.where(kept[:, None, None, None], original, X)


def _extent(ink):
    """Return the rows ``(top, bottom)`` of the ink in each of ``k x h x w`` boolean images, as floats."""
    h = ink.shape[1]
    rows = torch.arange(h, device=ink.device, dtype=torch.float32)
    has = ink.any(2)
    top = torch.where(has, rows, torch.full_like(rows, h)).amin(1)
    bottom = torch.where(has, rows, torch.full_like(rows, -1)).amax(1)
    return top, bottom


def _row_centre(ink, row):
    """Return the mean column of the ink on row ``row`` (one per image) of ``k x h x w`` boolean images."""
    k, h, w = ink.shape
    line = ink[torch.arange(k, device=ink.device), row.long().clamp(0, h - 1)].float()
    return (line * torch.arange(w, device=ink.device, dtype=torch.float32)).sum(1) / line.sum(1).clamp_min(1)


def _drawn_on(X, chosen, flag):
    out = X.clone()
    out[chosen, 0] = torch.maximum(X[chosen, 0], BACKGROUND + flag.to(X.dtype) * (INK - BACKGROUND))
    return out


def with_flags(X, y, generator=None, share=0.5, bases=0.4):
    """Return ``X`` with a flag drawn on a ``share`` of its ones: a stroke from the top of the 1 down to the
    left, 20-45 % of the digit's height long, 30-60 degrees below the horizontal, about as wide as MNIST's pen;
    ``bases`` of those also get a base, a level stroke 40-70 % of the height long under the 1's foot."""
    u = torch.rand(len(X), 7, generator=generator).to(X.device)
    chosen = (y == 1) & (u[:, 0] < share)
    if not chosen.any():
        return X
    u, ink = u[chosen].float(), X[chosen, 0] > 0  # about half-way between background and full ink
    top, bottom = _extent(ink)
    height = bottom - top + 1
    start = torch.stack([_row_centre(ink, top), top], 1)
    angle = torch.deg2rad(30 + 30 * u[:, 2])
    end = start + ((0.2 + 0.25 * u[:, 1]) * height)[:, None] * torch.stack([-torch.cos(angle), torch.sin(angle)], 1)
    flag = _segment(start, end, 1.0 + 0.5 * u[:, 3], *X.shape[2:])
    foot = torch.stack([_row_centre(ink, bottom), bottom], 1)
    half = ((0.2 + 0.15 * u[:, 4]) * height)[:, None] * torch.tensor([1.0, 0.0], device=X.device)
    base = _segment(foot - half, foot + half, 1.0 + 0.5 * u[:, 3], *X.shape[2:]) * (u[:, 5] < bases)[:, None, None]
    return _drawn_on(X, chosen, torch.maximum(flag, base))


def with_crossbars(X, y, generator=None, share=0.33):
    """Return ``X`` with a crossbar drawn through the middle of the stem on a ``share`` of its sevens (a level
    stroke 30-50 % of the digit's height long), as many people outside America write a 7."""
    u = torch.rand(len(X), 4, generator=generator).to(X.device)
    chosen = (y == 7) & (u[:, 0] < share)
    if not chosen.any():
        return X
    u, ink = u[chosen].float(), X[chosen, 0] > 0
    top, bottom = _extent(ink)
    height = bottom - top + 1
    row = top + (0.45 + 0.15 * u[:, 1]) * height
    middle = torch.stack([_row_centre(ink, row), row], 1)
    half = ((0.15 + 0.1 * u[:, 2]) * height)[:, None] * torch.tensor([1.0, 0.0], device=X.device)
    return _drawn_on(X, chosen, _segment(middle - half, middle + half, 1.0 + 0.5 * u[:, 3], *X.shape[2:]))


def _low_resolution(X, generator, share=LOW_RES, thick=THICK_LOW_RES):
    """A ``share`` of the images shrunk to 11-18 pixels and enlarged back (a small or blurred picture), their
    brightest ink kept as bright as before; a ``thick`` share of those first drawn with a pen two pixels wider
    (a small picture of a digit written with a thick pen: UCI's 8x8 digits have strokes a quarter as wide as
    they are high, MNIST's an eighth)."""
    u = torch.rand(len(X), generator=generator)
    chosen = torch.nonzero(u < share).flatten().to(X.device)
    if not len(chosen):
        return X
    side = 11 + int(torch.randint(0, 8, (1,), generator=generator))  # one size per batch: one resize call
    ink = X[chosen] - BACKGROUND
    wider = (torch.rand(len(chosen), generator=generator) < thick).to(X.device)[:, None, None, None]
    ink = torch.where(wider, F.max_pool2d(ink, 3, stride=1, padding=1), ink)
    blurred = F.interpolate(F.interpolate(ink, size=(side, side), mode="area"), size=X.shape[2:], mode="bilinear",
                            align_corners=False)
    out = X.clone()
    out[chosen] = blurred * _brightest(ink) / _brightest(blurred) + BACKGROUND
    return out


def _segment(start, end, radius, h, w):
    """``k x h x w`` images of anti-aliased line segments from ``start`` to ``end`` (``k x 2``, x then y)."""
    ys, xs = torch.meshgrid(torch.arange(h, device=start.device, dtype=start.dtype),
                            torch.arange(w, device=start.device, dtype=start.dtype), indexing="ij")
    p = torch.stack([xs, ys], -1)[None]  # 1 x h x w x 2
    a, d = start[:, None, None], (end - start)[:, None, None]
    t = (((p - a) * d).sum(-1) / (d * d).sum(-1).clamp_min(1e-6)).clamp(0, 1)
    distance = (p - a - t[..., None] * d).norm(dim=-1)
    return (radius[:, None, None] + 0.5 - distance).clamp(0, 1)


def _rethickened(X, generator):
    """Each image's strokes grown or shrunk by up to about half a pixel (a blend with its dilation or erosion),
    its brightest ink kept as bright as before (a pad's strokes are never faint)."""
    u = 2 * torch.rand(len(X), 1, 1, 1, generator=generator).to(X.device) - 1
    grown = F.max_pool2d(X, 3, stride=1, padding=1)
    shrunk = -F.max_pool2d(-X, 3, stride=1, padding=1)
    ink = torch.where(u > 0, X + u * (grown - X), X - u * (shrunk - X)) - BACKGROUND
    return ink * _brightest(X - BACKGROUND) / _brightest(ink) + BACKGROUND


def _brightest(ink):
    return ink.amax((1, 2, 3), keepdim=True).clamp_min(1e-6)


def _wobbled(X, generator, pixels=1.0):
    """Each image warped by a smooth random field (4x4 displacements, smoothly enlarged)."""
    n, _, h, w = X.shape
    field = (2 * torch.rand(n, 2, 4, 4, generator=generator) - 1).to(X.device, X.dtype) * (pixels * 2 / w)
    field = F.interpolate(field, size=(h, w), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
    identity = F.affine_grid(torch.eye(2, 3, dtype=X.dtype, device=X.device).expand(n, 2, 3), list(X.shape),
                             align_corners=False)
    return _sampled(X, identity + field)


@explained_arguments("画像 X と、ずらすピクセル数 right=・down=（負なら左・上）")
def shifted(X, right=0, down=0):
    """Return ``X`` (normalised ``N x 1 x 28 x 28``) moved ``right`` and ``down`` pixels (negative: left, up); the
    pixels that come in are black, like MNIST's background.

    Introduced in the lesson: main.ipynb §6.
    """
    X = _shiftable(X)
    right, down = (_pixels("right", right, X.shape[-1]), _pixels("down", down, X.shape[-2]))
    out = torch.full_like(X, BACKGROUND)
    h, w = X.shape[-2:]
    rows_to, rows_from = slice(max(down, 0), h + min(down, 0)), slice(max(-down, 0), h - max(down, 0))
    cols_to, cols_from = slice(max(right, 0), w + min(right, 0)), slice(max(-right, 0), w - max(right, 0))
    out[..., rows_to, cols_to] = X[..., rows_from, cols_from]
    return out


SHIFTED_TAKES = "例: shifted(data.X_test[:8], right=2)（右へ 2 ピクセル、負なら左へ）"


def _shiftable(X):
    """``X`` as a float tensor with at least 2 dimensions (a NumPy array becomes one); else one Japanese line."""
    if hasattr(X, "__array__") and not isinstance(X, torch.Tensor):
        try:
            array = np.asarray(X)
        except Exception:  # noqa: BLE001 - an object that only claims to be an array may fail in any way
            array = np.asarray(None)
        X = torch.from_numpy(array.astype(np.float32)) if array.dtype.kind in "biuf" else X
    if not isinstance(X, torch.Tensor) or X.ndim < 2 or X.device.type == "meta" or not X.is_floating_point():
        what = f"形 {tuple(X.shape)}、{X.dtype}" if isinstance(X, torch.Tensor) else type(X).__name__
        raise ArgumentError(f"shifted の画像 X は正規化した小数の画像（N×1×28×28 のテンソル）にしてください（今は {what}）。{SHIFTED_TAKES}")
    return X


def _pixels(name, value, side):
    """``value`` as an int if it is a whole number of pixels (not a bool); else one Japanese line."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ArgumentError(f"shifted の {name} はずらすピクセル数（整数）にしてください（今は {repr(value)[:20]}）。{SHIFTED_TAKES}")
    return max(-side, min(side, int(value)))
