"""Finding the paper and the ink in a photo: a sheet on a darker desk, shadows and uneven light, ink of any colour.

A drawing from the pad, a scan or a screenshot has a plain background: its ink is whatever differs from the
border (:func:`mnist_lab.preprocess.ink_from_gray`). A photo of a digit written on paper does not: the desk around
the sheet is darker than the paper (and would be taken for ink), a shadow or a lamp makes one side darker, and a
red or yellow pen is hardly darker than the paper at all. :func:`ink_of_photo` sees those cases and returns the
ink of the paper alone; for a plain picture it returns ``None`` and the plain way is taken.

How (all on a copy at most 160 pixels a side, so it costs a few milliseconds):

0. **A drawing**: light on most of the picture and a perfectly even dark (no photo's grain) is ink drawn on a
   light picture, read as it is, however far the ink runs along the edge (a big 0, a square along the border).
1. **The paper**: the bright pixels (Otsu's threshold) of the largest bright region, its holes filled. It is a
   sheet on a desk when the region is large and holds nearly all the light, most of the image's edge is dark
   desk (light beyond the sheet on the edge means a stroke runs off a white picture), the sheet's edge is sharp (a
   shadow's is soft), and the dark marks inside it (the ink) are thin next to the sheet (so a white 0 on black is
   not taken for a sheet with a dark blob on it).
2. **The light**: the paper's own brightness at every pixel is estimated by closing over the ink (a maximum then
   a minimum filter wider than the strokes): a shadow or a lamp changes it slowly, ink does not.
3. **The ink**: how much darker than its paper each pixel is, in the channel where it is darkest (a red pen is
   dark in green and blue, a yellow one in blue), as a share of the paper's brightness there: a shadow darkens
   paper and ink alike and changes no share.
"""

import numpy as np
from scipy import ndimage

WORK_SIDE = 160  # the analysis runs on a copy at most this big
PAPER_AREA = 0.15  # a sheet covers at least this share of the picture...
DESK_EDGE = 0.25  # ... and the desk at least this share of the picture's edge
INK_THIN = 0.12  # the ink's widest stroke is at most this share of the sheet's inscribed size
UNEVEN = 0.12  # paper this much brighter in one place than in another has uneven light
FLOOR = 0.12  # darker than the paper by less than this share: paper grain, not ink
LIGHT_EDGE = 0.2  # light beyond the sheet on more than this share of the picture's edge: no desk around it
FLAT = 0.004  # a dark region this even (standard deviation) is drawn, not photographed (noise is >= 0.015)


class NoInkOnPaper(Exception):
    """A sheet of paper was found, with no ink on it."""


def ink_of_photo(pixels, gray):
    """Return the ink of a photo of paper (values in [0, 1] on 0, the size of ``gray``), or ``None`` when
    ``pixels`` is a plain picture (a uniform background: read it the plain way). :class:`NoInkOnPaper` when a
    sheet is found with nothing written on it.

    ``pixels`` is ``H x W`` or ``H x W x 3`` in [0, 1], ``gray`` its brightness ``H x W``.
    """
    if min(gray.shape) < 32:
        return None  # a thumbnail or an MNIST-sized picture is no photo of paper
    step = max(1, int(np.ceil(max(gray.shape) / WORK_SIDE)))
    small = gray[::step, ::step]
    bright = small > _otsu(small)
    value = _paper_value(pixels, bright, step)
    small_value = value[::step, ::step]
    marks = small_value < 0.7 * ndimage.maximum_filter(small_value, max(3, min(small.shape) // 3))
    if _drawn_on_white(small, bright):  # even a big 0 or a square drawn along the picture's edge: no desk
        ink = np.clip(float(np.percentile(gray, 90)) - gray, 0, None)
        return ink / ink.max()
    paper = _sheet(small, bright, marks)
    if paper is None:
        if _plain(small, marks, pixels[::step, ::step]):
            return None
        paper = np.ones_like(bright)
    light = _paper_light(small_value, marks & paper, paper)
    ink = _ink(value, light, paper, step)
    if ink.max() < 0.3:
        if paper.all():
            return None  # no clear ink once the light is evened out (a gradient): read it the plain way
        raise NoInkOnPaper()
    return ink / ink.max()


def _otsu(values, bins=64):
    """Return Otsu's threshold of ``values`` in [0, 1]: the level that best splits them into two groups."""
    counts = np.bincount(np.clip((values * bins).astype(np.int32), 0, bins - 1).ravel(), minlength=bins)
    p = counts / max(counts.sum(), 1)
    w = np.cumsum(p)
    mu = np.cumsum(p * (np.arange(bins) + 0.5) / bins)
    between = (mu[-1] * w - mu) ** 2 / np.clip(w * (1 - w), 1e-12, None)
    return float((np.argmax(between[:-1]) + 1) / bins)


def _paper_value(pixels, bright, step):
    """Return, for every pixel, its brightness in its darkest channel, each channel divided by the paper's own
    level in it (the 90th percentile of the bright pixels): 1 on paper of any tint, low on ink of any colour."""
    if pixels.ndim == 2:
        return pixels
    paper = pixels[::step, ::step][bright]
    level = np.percentile(paper, 90, axis=0) if len(paper) else np.ones(3)
    return (pixels / np.clip(level, 1e-3, None)).min(axis=2).clip(0, 1).astype(np.float32)


def _sheet(small, bright, marks):
    """Return the mask of a sheet of paper on a darker desk in ``small``, or ``None`` if it is not such a photo."""
    labels, n = ndimage.label(bright)
    if n == 0:
        return None
    sizes = ndimage.sum_labels(bright, labels, range(1, n + 1))
    if sizes.max() < 0.8 * sizes.sum():
        return None  # light spread over several regions (a big letter cut by the frame): not one sheet
    paper = ndimage.binary_fill_holes(labels == 1 + int(np.argmax(sizes)))
    edge = np.concatenate([paper[0], paper[-1], paper[:, 0], paper[:, -1]])
    if paper.mean() < PAPER_AREA or 1 - edge.mean() < DESK_EDGE:
        return None
    light_edge = np.concatenate([bright[0], bright[-1], bright[:, 0], bright[:, -1]]) & ~edge
    if light_edge.mean() > LIGHT_EDGE:
        return None  # the dark does not surround it: a stroke running to the edge of a white picture, not a desk
    contrast = small[paper].mean() - small[~paper].mean()
    if contrast < 0.15:
        return None  # no darker desk around it
    rim = paper & ~ndimage.binary_erosion(paper)
    rim[[0, -1]], rim[:, [0, -1]] = False, False  # the picture's own edge is no edge of the sheet
    steepness = ndimage.maximum_filter(np.hypot(*np.gradient(ndimage.uniform_filter(small, 3))), 3)
    if rim.any() and np.median(steepness[rim]) < 0.15 * contrast:
        return None  # its darker side fades in slowly: a shadow on the paper, not a desk
    on_paper = marks & ndimage.binary_erosion(paper, iterations=2)
    inscribed = ndimage.distance_transform_edt(paper).max()
    if on_paper.sum() < 0.0005 * paper.sum():  # nothing on it: a blank sheet lying in the picture, or else a
        lies_inside = edge.mean() <= 0.25  # white shape on black, or the white around a big black letter
        return paper if lies_inside and inscribed >= 0.15 * min(small.shape) else None
    widest = ndimage.distance_transform_edt(on_paper).max()
    return paper if widest <= INK_THIN * inscribed else None


def _drawn_on_white(small, bright):
    """Whether ``small`` is dark ink drawn on a light picture (a pad's drawing, a digital image): light on most of
    it, and its dark perfectly even (no grain, no sensor noise: no desk of a photo), however far the ink runs
    along the picture's edge."""
    dark = ndimage.binary_erosion(~bright, iterations=2)
    return bright.mean() > 0.5 and bool(dark.any()) and float(small[dark].std()) < FLAT


def _plain(small, marks, small_pixels):
    """Whether ``small`` (no desk around it) is a plain picture: a dark ground (chalk, a screen, MNIST itself), or
    a light one lit evenly with grey ink (a pad drawing, a scan); not one with uneven light or coloured ink."""
    if np.median(small) < 0.4 or marks.all():
        return True
    low, high = np.percentile(small[~marks], [10, 90])
    colourful = small_pixels.ndim == 3 and float(np.percentile(np.ptp(small_pixels, axis=2), 99.5)) > 0.15
    uneven = float(high - low) > UNEVEN
    return not (uneven or colourful)


def _paper_light(value, marks, paper):
    """Return the paper's level at every pixel of ``value``: closed over the ink (maximum filter, then minimum
    filter, wider than the widest stroke), then smoothed."""
    width = 2 * ndimage.distance_transform_edt(marks).max() if marks.any() else 2
    size = int(2 * width + 3)
    filled = np.where(paper, value, np.percentile(value[paper], 90))
    light = ndimage.minimum_filter(ndimage.maximum_filter(filled, size), size)
    return ndimage.uniform_filter(light, size)


def _ink(value, light_small, paper_small, step):
    """Return how much darker than its paper each pixel is, as a share of the paper's level there; nothing off
    the paper (the mask eroded a little: a sheet's edge casts a thin shadow)."""
    shape = value.shape
    light = ndimage.zoom(light_small, step, order=1)[:shape[0], :shape[1]]
    light = np.pad(light, [(0, shape[0] - light.shape[0]), (0, shape[1] - light.shape[1])], mode="edge")
    if not paper_small.all():  # keep off the sheet's edge: 1.5 % of its size
        inscribed = ndimage.distance_transform_edt(paper_small).max()
        paper_small = ndimage.binary_erosion(paper_small, iterations=max(2, int(0.03 * inscribed)))
    paper = np.repeat(np.repeat(paper_small, step, 0), step, 1)[:shape[0], :shape[1]]
    ink = np.clip(1 - value / np.clip(light, 1e-3, None), 0, 1) * paper
    edge = None if paper.all() else paper & ~ndimage.binary_erosion(paper)
    return _specks_removed(np.where(ink > max(FLOOR, 0.2 * ink.max()), ink, 0).astype(np.float32), edge)


def _specks_removed(ink, edge=None, share=0.05):
    """Return ``ink`` without its specks: bits of ink smaller than ``share`` of the biggest one (grain, dust),
    and any but the biggest that touch the sheet's ``edge`` (its shadow)."""
    labels, n = ndimage.label(ink > 0)
    if n < 2:
        return ink
    sizes = ndimage.sum_labels(np.ones_like(ink), labels, range(1, n + 1))
    keep = np.concatenate([[False], sizes >= share * sizes.max()])
    if edge is not None:
        keep[np.unique(labels[edge & (labels > 0)])] = False
        keep[1 + int(np.argmax(sizes))] = True
    return ink * keep[labels]
