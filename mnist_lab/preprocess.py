"""Turning any picture of a digit into what the model was trained on, the way MNIST itself was made.

MNIST's digits are white ink on black, the ink's bounding box scaled so its longer side is 20 pixels (keeping the
aspect ratio, with anti-aliasing), placed in a 28x28 field so that the ink's centre of mass sits at the centre.
:func:`preprocess_drawing` does the same for a drawing-pad canvas or a photo of any size and either polarity, and
the CLI's ``predict`` uses it too, so both see exactly what the model sees.
"""

import re
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage
from skimage.morphology import skeletonize

from .data import MEAN, STD
from .errors import UserError
from .files import os_error

BOX, SIZE = 20, 28  # MNIST: ink fitted into 20x20, centred by mass in 28x28
THIN, THICK, WORK = 0.10, 0.16, 96  # stroke width / digit size kept in MNIST's middle range; working size, pixels
SPUR = 0.6  # skeleton pixels nearer the edge than this share of the typical half-width are spurs
MAX_SIDE = 1024  # larger pictures are shrunk first: a digit needs no more, and it keeps memory small


class EmptyImageError(UserError):
    """The picture holds no ink (a blank canvas or a plain image)."""

    def __init__(self):
        super().__init__("何も書かれていません（インクが見つかりません）。何か書いてください。")


def load_image(path):
    """Return the still PIL image stored at ``path``, upright (its EXIF orientation applied).

    :class:`UserError` when it is missing, a folder, unreadable, not an image, an animation, or too large.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} はフォルダです。画像ファイルを指定してください。")
    if not path.is_file():
        raise UserError(f"画像 {path} が見つかりません。パスを確かめてください。")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we shrink big images at once
            with Image.open(path) as image:
                if getattr(image, "n_frames", 1) > 1:
                    raise UserError(f"{path} は {image.n_frames} コマの動く画像です。数字 1 つの静止画（PNG か JPEG）を指定してください。")
                image.draft("L", (MAX_SIDE, MAX_SIDE))  # JPEG: decode at reduced size straight away
                image.load()
                return ImageOps.exif_transpose(image)
    except Image.DecompressionBombError as e:
        raise UserError(f"{path} は大きすぎて読めません（{_pixels(e)}）。縦横それぞれ数千ピクセル以下に縮めてください。") from e
    except PermissionError as e:
        raise os_error(e, path, "読めません") from e
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise UserError(f"{path} は画像として読めません。PNG か JPEG の画像を指定してください。") from e


def _pixels(error):
    found = re.search(r"\((\d+) pixels\)", str(error))
    return f"{int(found.group(1)):,} ピクセル" if found else "画素が多すぎます"


def _gray_from_pil(image):
    """Return a float array in [0, 1] (0 = black). Transparency is flattened onto white or black, whichever
    leaves the drawing visible (black strokes on a transparent canvas need white behind them, and vice versa).
    16-bit and floating-point images are scaled by their own range."""
    image.thumbnail((MAX_SIDE, MAX_SIDE))
    if image.mode.startswith(("I", "F")):
        return _stretched(np.asarray(image, dtype=np.float32))
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        candidates = []
        for background in ((255, 255, 255, 255), (0, 0, 0, 255)):
            flat = Image.alpha_composite(Image.new("RGBA", rgba.size, background), rgba).convert("L")
            candidates.append(np.asarray(flat, dtype=np.float32) / 255)
        return max(candidates, key=np.std)
    return np.asarray(image.convert("L"), dtype=np.float32) / 255


def _stretched(array):
    """Scale an array of any range to [0, 1] by its own minimum and maximum."""
    low, high = float(array.min()), float(array.max())
    return (array - low) / (high - low) if high > low else np.zeros_like(array)


def to_gray(image):
    """Return ``image`` (PIL image, 2-D array/tensor, or H x W x 3/4 uint8 array) as a 2-D float array in [0, 1].

    A 2-D array in [0, 1] is taken as it is, one in [0, 255] is divided by 255, any other range is stretched.
    """
    if isinstance(image, Image.Image):
        return _gray_from_pil(image.copy())
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.dtype.kind not in "biuf":
        raise UserError(f"画像の値の型 {array.dtype} は扱えません。数の配列を渡してください。")
    if array.size and not np.isfinite(array).all():
        raise UserError("画像に NaN か無限大の値が入っています。0〜255 か 0〜1 の数だけの画像を渡してください。")
    if array.ndim == 3 and array.shape[2] in (3, 4) and array.min() >= 0 and array.max() <= 255:
        return _gray_from_pil(Image.fromarray(array.astype(np.uint8)))
    if array.ndim != 2 or array.size == 0:
        raise UserError(f"画像の形 {array.shape} は扱えません。2次元の白黒画像かカラー画像を渡してください。")
    array = array.astype(np.float32)
    if array.min() >= 0 and array.max() <= 1:
        return array
    return array / 255 if array.min() >= 0 and array.max() <= 255 else _stretched(array)


def ink_from_gray(gray):
    """Return the ink as values in [0, 1] on a 0 background, whatever the polarity; EmptyImageError if none.

    The background is the median of the border pixels: a light border means dark ink on paper, so it is inverted.
    """
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    background = float(np.median(border))
    ink = gray - background if background < 0.5 else background - gray
    ink = np.clip(ink, 0, None)
    if ink.max() < 0.1:
        raise EmptyImageError()
    return ink / ink.max()


def _cropped(ink):
    """Return ``ink`` cut to its bounding box, as a tensor."""
    rows, cols = np.nonzero(ink > 0.05)
    return torch.from_numpy(np.ascontiguousarray(ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]))


def _resized(crop, longer):
    """Return ``crop`` scaled so that its longer side is ``longer`` pixels: shrunk by taking each new pixel's
    brightest ink (so a thin stroke never fades away), enlarged smoothly."""
    h, w = crop.shape
    size = (max(1, round(h * longer / max(h, w))), max(1, round(w * longer / max(h, w))))
    if max(h, w) > longer:
        return F.adaptive_max_pool2d(crop[None, None], size)[0, 0]
    return F.interpolate(crop[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]


def stroke_width(ink):
    """Return ``(width, skeleton)`` of the strokes in a binary image ``ink``: the skeleton is the strokes'
    one-pixel middle line (the pen's path), the width twice the median distance from it to the background, less one.
    """
    skeleton = skeletonize(ink)
    if not skeleton.any():
        return 0.0, skeleton
    distance = ndimage.distance_transform_edt(np.pad(ink, 1))[1:-1, 1:-1]
    middle = float(np.median(distance[skeleton]))
    # A thick stroke's skeleton also runs out into its corners, ever closer to the edge: drawn again thin, such a
    # spur would be a stroke the writer never drew (a tiny 1 would grow a crossbar and read as 7). Keep the middle.
    return 2 * middle - 1, skeleton & (distance >= SPUR * middle)


def _even_strokes(crop):
    """Return ``crop`` with its strokes redrawn at an MNIST-like width when they are far thinner or thicker than
    MNIST's for a digit of that size (a thin pen on a big digit, a thick pen on a tiny one); else ``crop``.

    Measured through this same function, MNIST's strokes are 7.5-18 % of the digit's longer side (5th to 95th
    percentile; median 11.6 %). Strokes outside 10-16 % are redrawn: their middle lines (the pen's path) are found
    at a working size of 96 pixels and drawn again with the nearest width in that range.
    """
    work = _resized(crop, WORK).numpy() > 0.5
    width, skeleton = stroke_width(work)
    target = min(max(width / WORK, THIN), THICK)
    if target == width / WORK or not skeleton.any():
        return crop
    redrawn = np.clip(target * WORK / 2 + 0.5 - ndimage.distance_transform_edt(~skeleton), 0, 1)
    return torch.from_numpy(redrawn.astype(np.float32))


def _fit_box(crop):
    """Scale ``crop`` so its longer side is 20 pixels, with anti-aliasing."""
    h, w = crop.shape
    scale = BOX / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    box = F.interpolate(crop[None, None], size=size, mode="bilinear", antialias=True, align_corners=False)[0, 0]
    return box.clamp(0, 1)


def _centred(box):
    """Place ``box`` in a 28x28 field with its centre of mass at pixel (14, 14), as MNIST did."""
    h, w = box.shape
    mass = box.sum()
    cy = (box.sum(1) * torch.arange(h)).sum() / mass
    cx = (box.sum(0) * torch.arange(w)).sum() / mass
    top = min(max(round(SIZE / 2 - cy.item()), 0), SIZE - h)
    left = min(max(round(SIZE / 2 - cx.item()), 0), SIZE - w)
    field = torch.zeros(SIZE, SIZE)
    field[top:top + h, left:left + w] = box
    return field


def mnist_like(image):
    """Return the 28x28 MNIST-like picture (float tensor in [0, 1], white ink on black) of any digit image."""
    return _centred(_fit_box(_even_strokes(_cropped(ink_from_gray(to_gray(image))))))


def preprocess_drawing(image):
    """Return the ``1 x 1 x 28 x 28`` normalised tensor a model reads, from any picture of one digit.

    Crops to the ink, scales its longer side to 20 px, centres it by mass in 28x28, then normalises like the
    training data. Raises :class:`EmptyImageError` ("何か書いてください") when there is no ink.
    """
    return model_input(mnist_like(image))


def model_input(picture):
    """Return the normalised ``1 x 1 x 28 x 28`` tensor a model reads, from a 28x28 picture of :func:`mnist_like`."""
    return ((picture - MEAN) / STD).view(1, 1, SIZE, SIZE)
