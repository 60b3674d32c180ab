"""Turning any picture of a digit into what the model was trained on, the way MNIST itself was made.

MNIST's digits are white ink on black, the ink's bounding box scaled so its longer side is 20 pixels (keeping the
aspect ratio, with anti-aliasing), placed in a 28x28 field so that the ink's centre of mass sits at the centre.
:func:`preprocess_drawing` does the same for a drawing-pad canvas or a photo of any size and either polarity, and
the CLI's ``predict`` uses it too, so both see exactly what the model sees.
"""

import os
import re
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from scipy import ndimage
from skimage.morphology import skeletonize

from .data import MEAN, STD
from .errors import UserError
from .files import file_problem, os_error
from .photo import NoInkOnPaper, ink_of_photo

BOX, SIZE = 20, 28  # MNIST: ink fitted into 20x20, centred by mass in 28x28
THIN, THICK, WORK = 0.10, 0.16, 96  # stroke width / digit size kept in MNIST's middle range; working size, pixels
EDGE = 0.15  # ink that never changes by more than this between neighbouring working pixels is shading, not a pen
SPUR = 0.6  # skeleton pixels nearer the edge than this share of the typical half-width are spurs
MAX_SIDE = 1024  # larger pictures are shrunk first: a digit needs no more, and it keeps memory small


class EmptyImageError(UserError):
    """The picture holds no ink (a blank canvas or a plain image)."""

    def __init__(self):
        super().__init__("何も書かれていません（インクが見つかりません）。何か書いてください。")


class PaperWithoutInkError(EmptyImageError):
    """A photo of a sheet of paper with nothing written on it."""

    def __init__(self):
        UserError.__init__(self, "紙は見つかりましたが、インクが見つかりません。数字を濃くはっきり書いて、紙に近づいて撮ってください。")


def load_image(path):
    """Return the still PIL image stored at ``path``, upright (its EXIF orientation applied), decoded whole into
    a mode the rest of this module reads (see :func:`_readable`).

    :class:`UserError` when it is missing, a folder, unreadable, not an image, an animation, too large, or has
    pixels that are not numbers: whatever a broken or unusual file does while it is decoded, the error is one line.
    """
    if not isinstance(path, (str, Path)):  # bytes of a file, None...: load_image reads a file by its name
        raise UserError(f"load_image にはファイル名を渡してください（今は {type(path).__name__}）。例: load_image(\"seven.png\")")
    if isinstance(path, str) and path.lower().startswith(("http://", "https://", "ftp://")):
        raise UserError(f"load_image が読むのはこのマシンのファイルです（{path} は URL）。ダウンロードして保存してから、"
                        "そのファイル名を渡してください。")
    if str(path) == "-" and not os.path.lexists(path):  # the Unix habit `cat x.png | ... -`
        raise UserError("- （標準入力）からは画像を読みません。画像をファイルに保存して、そのファイル名を指定してください"
                        "（例: seven.png）。")
    path = Path(path)
    problem = file_problem(path, f"画像ファイル（この中の画像なら {path}/*.png のように）" if path.is_dir() else "画像ファイル")
    if problem:
        raise problem
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # we shrink big images at once; a broken file's warnings say nothing new
            with Image.open(path) as image:
                if getattr(image, "n_frames", 1) > 1:
                    pages = image.format in ("TIFF", "MPO")  # a multi-page scan, not a movie
                    what = f"{image.n_frames} ページある画像" if pages else f"{image.n_frames} コマの動く画像"
                    raise UserError(f"{path} は {what}です。数字 1 つの 1 枚だけの画像（PNG か JPEG）を指定してください。")
                image.draft("L", (MAX_SIDE, MAX_SIDE))  # JPEG: decode at reduced size straight away
                image.load()
                return _readable(ImageOps.exif_transpose(image), path)
    except UserError:
        raise
    except Image.DecompressionBombError as e:
        raise UserError(f"{path} は大きすぎて読めません（{_pixels(e)}）。縦横それぞれ数千ピクセル以下に縮めてください。") from e
    except PermissionError as e:
        raise os_error(e, path, "読めません") from e
    except MemoryError as e:
        raise UserError(f"{path} は大きすぎて読めません（メモリが足りません）。小さく縮めてください。") from e
    except Exception as e:  # a corrupt file can make a decoder fail in any way
        raise UserError(f"{path} は画像として読めません（壊れているか、対応していない形式です）。PNG か JPEG の画像を指定してください。") from e


PLAIN_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "I", "F")


def _readable(image, path):
    """Return ``image`` in one of PLAIN_MODES: 16-bit integers as ``I``, CIELAB as its lightness, any other colour
    space (CMYK, YCbCr, HSV...) as RGBA; :class:`UserError` for pixels that are NaN or infinite."""
    if image.mode.startswith("I;16"):
        image = Image.fromarray(np.asarray(image, dtype=np.int32), "I")
    elif image.mode == "LAB":
        image = image.getchannel("L")
    elif image.mode not in PLAIN_MODES:
        image = image.convert("RGBA")
    if image.mode == "F" and not np.isfinite(np.asarray(image)).all():
        raise UserError(f"{path} には NaN か無限大の画素があります。普通の画像（PNG か JPEG）として保存し直してください。")
    return image


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
    """Scale an array of any range to [0, 1] (float32) by its own minimum and maximum; halved first, in float64, so
    that no difference of two huge values overflows."""
    array = array.astype(np.float64) / 2
    low, high = float(array.min()), float(array.max())
    return ((array - low) / (high - low) if high > low else np.zeros_like(array)).astype(np.float32)


def to_pixels(image):
    """Return ``image`` as a float array in [0, 1]: ``H x W`` (grey) or ``H x W x 3`` (colour), at most
    ``MAX_SIDE`` pixels a side, transparency flattened onto white or black (whichever leaves the drawing visible).

    Takes a PIL image, or an array/tensor of any number type as plt.imread, OpenCV, PIL or a browser canvas give
    them: ``H x W``, ``H x W x 1/2/3/4`` (grey, grey + alpha, RGB or BGR, RGBA), ``C x H x W`` tensors; uint8 is
    divided by 255, uint16 by 65535, bool is 0/1; other numbers in [0, 1] are kept, in [0, 255] divided by 255,
    any other range stretched.
    """
    if isinstance(image, Image.Image):
        if image.mode in ("RGB", "RGBA", "P", "CMYK", "YCbCr", "LAB", "HSV", "RGBX", "RGBa", "PA"):
            image = image.copy()
            image.thumbnail((MAX_SIDE, MAX_SIDE))
            rgba = image.convert("RGBA") if image.mode in ("RGBA", "P", "PA", "RGBa") else image.convert("RGB")
            return _pixels_of(np.asarray(rgba))
        return _gray_from_pil(image.copy())
    if image is None:
        raise UserError("画像が None です。描いた絵（PIL の画像や配列）を渡してください（load_image の結果など）。")
    if isinstance(image, (str, Path, bytes)):
        raise UserError(f"画像のファイル名（{str(image)[:60]}）ではなく、画像そのものを渡してください。"
                        "ファイルなら from mnist_lab.preprocess import load_image のあと、load_image(ファイル名) で"
                        "読み込んでから渡します。")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    except Exception as e:  # rows of different lengths, a tensor with no data, an object that is no array
        raise UserError(f"{type(image).__name__} を画像として読めません（行の長さがそろっていないか、数でない値があります）。"
                        "縦×横にそろった数の配列（NumPy の配列やテンソル）か PIL の画像を渡してください。") from e
    return _pixels_of(array)


def _pixels_of(array):
    if array.dtype.kind not in "biuf":
        raise UserError(f"画像の値の型 {array.dtype} は扱えません。数の配列を渡してください。")
    while array.ndim > 3 and array.shape[0] == 1:  # a batch of one
        array = array[0]
    if array.ndim == 3 and array.shape[0] in (1, 2, 3, 4) and array.shape[2] not in (1, 2, 3, 4):
        array = np.moveaxis(array, 0, 2)  # channels first (a tensor) -> channels last
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.size == 0 or not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (2, 3, 4))):
        raise UserError(f"画像の形 {array.shape} は扱えません。2次元の白黒画像かカラー画像を渡してください。")
    if not np.isfinite(array).all():
        raise UserError("画像に NaN か無限大の値が入っています。0〜255 か 0〜1 の数だけの画像を渡してください。")
    array = _shrunk(_scaled(array))
    if array.ndim == 3 and array.shape[2] in (2, 4):  # grey or colour with alpha
        colour, alpha = array[..., :-1], array[..., -1:]
        flat = [colour * alpha + background * (1 - alpha) for background in (1.0, 0.0)]
        flat = [a[..., 0] if a.shape[2] == 1 else a for a in flat]  # grey + alpha: grey
        array = max(flat, key=lambda a: float(np.std(_luminance(a))))
    return array[..., 0] if array.ndim == 3 and array.shape[2] == 1 else array


def _scaled(array):
    """Return ``array`` as float32 in [0, 1], by its number type (see :func:`to_pixels`)."""
    if array.dtype == np.uint8 or array.dtype == bool:
        return array.astype(np.float32) / (255 if array.dtype == np.uint8 else 1)
    if array.dtype == np.uint16 and array.max() > 255:
        return array.astype(np.float32) / 65535
    if array.min() >= 0 and array.max() <= 1:
        return array.astype(np.float32)
    return array.astype(np.float32) / 255 if array.min() >= 0 and array.max() <= 255 else _stretched(array)


def _shrunk(array):
    """Return ``array`` (``H x W`` or ``H x W x C``) shrunk so its longer side is at most ``MAX_SIDE``."""
    h, w = array.shape[:2]
    if max(h, w) <= MAX_SIDE:
        return array
    size = (max(1, round(h * MAX_SIDE / max(h, w))), max(1, round(w * MAX_SIDE / max(h, w))))
    t = torch.from_numpy(np.ascontiguousarray(array.reshape(h, w, -1))).permute(2, 0, 1)[None]
    return F.interpolate(t, size=size, mode="area")[0].permute(1, 2, 0).numpy().reshape(*size, *array.shape[2:])


def _luminance(array):
    return array if array.ndim == 2 else array[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def to_gray(image):
    """Return ``image`` (anything :func:`to_pixels` takes) as a 2-D float array in [0, 1] (0 = black)."""
    return _luminance(to_pixels(image)).astype(np.float32)


def ink_from_gray(gray, background=None):
    """Return the ink as values in [0, 1] on a 0 background, whatever the polarity; EmptyImageError if none.

    The background, unless given, is the median of the border pixels: a light border means dark ink on paper, so
    it is inverted.
    """
    if background is None:
        background = float(np.median(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])))
    ink = gray - background if background < 0.5 else background - gray
    ink = np.clip(ink, 0, None)
    if ink.max() < 0.1:
        raise EmptyImageError()
    return ink / ink.max()


def find_ink(image, background=None):
    """Return the ink of ``image`` as values in [0, 1] on a 0 background (see :mod:`mnist_lab.photo`): a sheet of
    paper on a darker desk is found and only its ink kept, shadows and uneven light are evened out, ink of any
    colour counts; a plain drawing or scan is read by the median of its border (:func:`ink_from_gray`).

    ``background``: the brightness of the picture's background when it is known (the drawing pad's white, 1.0):
    the ink is then whatever differs from it, and no paper is looked for (a big 0 drawn to the pad's edge is no
    sheet of paper on a desk)."""
    pixels = to_pixels(image)
    gray = _luminance(pixels).astype(np.float32)
    if background is not None:
        return ink_from_gray(gray, background)
    try:
        ink = ink_of_photo(pixels, gray)
    except NoInkOnPaper:
        raise PaperWithoutInkError() from None
    return ink_from_gray(gray) if ink is None else ink


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
    at a working size of 96 pixels and drawn again with the nearest width in that range. A picture already at
    MNIST's scale (ink less than 40 pixels across: a scan, a small image) has no pen to even out: kept as it is, and
    so is shading without one sharp edge (a grey gradient: its middle line would be a stroke nobody drew, often a 1).
    """
    if max(crop.shape) < 2 * BOX:
        return crop
    work = _resized(crop, WORK).numpy()
    if _sharpest_step(work) < EDGE:
        return crop
    work = work > 0.5
    width, skeleton = stroke_width(work)
    target = min(max(width / WORK, THIN), THICK)
    if target == width / WORK or not skeleton.any():
        return crop
    redrawn = np.clip(target * WORK / 2 + 0.5 - ndimage.distance_transform_edt(~skeleton), 0, 1)
    return torch.from_numpy(redrawn.astype(np.float32))


def _sharpest_step(image):
    """Return the largest change of ink between two neighbouring pixels of ``image`` (ink in [0, 1])."""
    return float(max(np.abs(np.diff(image, axis=0)).max(initial=0), np.abs(np.diff(image, axis=1)).max(initial=0)))


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
    if not mass > 0:  # the ink of a sliver of a picture (a 1-pixel-wide noise strip) can vanish on the way here
        raise EmptyImageError()
    cy = (box.sum(1) * torch.arange(h)).sum() / mass
    cx = (box.sum(0) * torch.arange(w)).sum() / mass
    top = min(max(round(SIZE / 2 - cy.item()), 0), SIZE - h)
    left = min(max(round(SIZE / 2 - cx.item()), 0), SIZE - w)
    field = torch.zeros(SIZE, SIZE)
    field[top:top + h, left:left + w] = box
    return field


def mnist_like(image, background=None):
    """Return the 28x28 MNIST-like picture (float tensor in [0, 1], white ink on black) of any digit image;
    ``background`` as :func:`find_ink` takes it."""
    return _centred(_fit_box(_even_strokes(_cropped(find_ink(image, background)))))


def preprocess_drawing(image):
    """Return the ``1 x 1 x 28 x 28`` normalised tensor a model reads, from any picture of one digit.

    Crops to the ink, scales its longer side to 20 px, centres it by mass in 28x28, then normalises like the
    training data. Raises :class:`EmptyImageError` ("何か書いてください") when there is no ink.

    Introduced in the lesson: main.ipynb §10.
    """
    return model_input(mnist_like(image))


def model_input(picture):
    """Return the normalised ``1 x 1 x 28 x 28`` tensor a model reads, from a 28x28 picture of :func:`mnist_like`."""
    if not isinstance(picture, torch.Tensor) or picture.numel() != SIZE * SIZE or not picture.is_floating_point():
        raise UserError("model_input に渡すのは mnist_like(画像) の結果（0〜1 の 28×28 のテンソル）です。"
                        "画像からなら preprocess_drawing(画像) を使ってください。")
    return ((picture - MEAN) / STD).view(1, 1, SIZE, SIZE)


def preprocess_all(images):
    """Return one ``N x 1 x 28 x 28`` batch of those ``images`` that have ink (blank ones, such as a faint
    gradient, are left out: there is nothing to read).

    Introduced in the lesson: main.ipynb §10.
    """
    if isinstance(images, Image.Image) or (isinstance(images, np.ndarray) and images.ndim == 2):
        images = [images]  # one picture: a batch of one
    if (images is None or isinstance(images, (str, bytes)) or not hasattr(images, "__iter__")
            or getattr(images, "ndim", 1) == 0):  # a number, also as a 0-d tensor or array
        raise UserError(f"preprocess_all には絵（PIL の画像や配列）のリストを渡してください（今は {type(images).__name__}）。"
                        "例: preprocess_all(non_digits(10))")
    X = []
    for image in images:
        try:
            X.append(preprocess_drawing(image))
        except EmptyImageError:
            continue
    return torch.cat(X) if X else torch.empty(0, 1, SIZE, SIZE)
