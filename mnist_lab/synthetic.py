"""Pictures made by program: digits typeset in fonts, and pictures that are not digits at all.

A model trained on MNIST alone has only ever seen digits, so it reads *anything* as a digit, often "confidently".
To teach it (and to measure) what is not a digit, :func:`non_digit` draws the kinds of pictures people give a
digit reader by mistake or for fun: letters and symbols in many fonts, shapes, noise, gradients, lines, dots and
scribbles. :func:`font_digit` typesets a digit, turned, slanted, stretched and with a thinner or thicker pen.

Every picture is dark ink on white paper (a PIL ``L`` image), as a pad drawing is; it reaches a model through
:func:`~mnist_lab.preprocess.preprocess_drawing`, like any picture. Fonts are files: :func:`bundled_fonts` are the
ones matplotlib ships (always present: training uses them), :func:`system_fonts` are whatever the machine has
(benchmarks and tests use other fonts than training did, so they measure fonts the model never saw).

Shapes of a digit are left out on purpose: the letters O o Q D I l S s Z z B b g q are digits' twins in many fonts,
an outlined circle or ellipse is a 0, a line within ``UPRIGHT`` (45) degrees of upright is a 1 (MNIST's own 1s
lean up to that: 13 % of them lean more than 30 degrees, 0.4 % more than 45), and so are the symbols that are
such a line with at most a tick at its ends: / \\ [ ] (a 1 with its flag and half its base). No reader could
call those "not a digit", so the model is neither taught nor judged on them.

:func:`pen_drawn` draws an MNIST digit again with a pen along its strokes, as a person would draw it on the pad: the
``pad`` recipe trains on such digits too, so that a clean pen stroke (which every generated non-digit has) says
nothing about being a digit or not.
"""

import functools
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from scipy import ndimage

from .errors import ArgumentError, checked_seed

UPRIGHT = 45  # degrees: a line leaning less than this from upright is a 1
PEN_WIDTHS = (0.03, 0.18)  # pen_drawn's pens, shares of SIDE: a fine pen to a marker (a digit is about 0.7 SIDE high)
SIDE = 112  # the canvas: big enough for smooth strokes, small enough to make thousands a second
LOOKALIKES = set("OoQDIlSsZzBbgq")
LETTERS = "".join(c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in LOOKALIKES)
SYMBOLS = "#$%&@?!+=*<>{}~^€£¥§¶©®"
KANA = "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをん"
KINDS = ("letter", "symbol", "kana", "shape", "noise", "gradient", "line", "dots", "scribble")
SKIP_FONTS = ("STIXSiz", "STIXNonUni", "cmex", "cmsy", "LastResort", "DejaVuSansDisplay", "DejaVuSerifDisplay",
              "Symbol", "D050000L", "FontAwesome", "Math",  # symbol-only fonts: no letters or digits in them
              "LinBiolinum_K", "femkeklaver")  # digits on keycaps, digits in outline


def bundled_fonts():
    """Return the font files matplotlib ships (DejaVu, STIX, Computer Modern): present wherever mnist_lab is."""
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return usable_fonts(sorted(folder.glob("*.ttf")))


def system_fonts(exclude=("DejaVu", "STIX", "cm", "Noto", "ipaex")):
    """Return the machine's font files (``/usr/share/fonts``) that can write every digit, without the families
    in ``exclude`` (by default those matplotlib ships, so the fonts are new to a model trained on those)."""
    found = sorted(p for ext in ("ttf", "otf") for p in Path("/usr/share/fonts").rglob(f"*.{ext}"))
    return usable_fonts(p for p in found if not p.name.startswith(exclude))


def usable_fonts(paths):
    """Return the fonts among ``paths`` whose ten digits are drawn and differ from each other (no empty boxes)."""
    return [p for p in paths if not any(s in p.name for s in SKIP_FONTS) and _writes_digits(str(p))]


@functools.cache
def _writes_digits(path):
    try:
        font = _font(path)
        masks = {bytes(font.getmask(d)) for d in "0123456789"}
        return len(masks) == 10 and all(font.getbbox(d)[2] > font.getbbox(d)[0] for d in "0123456789")
    except OSError:
        return False


@functools.cache
def _font(path, size=80):
    return ImageFont.truetype(str(path), size)


@functools.cache
def _writes(path, char):
    """Whether the font at ``path`` has a glyph of its own for ``char`` (not the empty box of a missing one)."""
    font = _font(path)
    box = font.getbbox(char)
    if box[2] <= box[0]:
        return False
    missing = font.getmask("\uffff")
    return bytes(font.getmask(char)) != bytes(missing)


def typeset(char, font, rng):
    """Return ``char`` in the font file ``font``, dark on white, posed like a hand would write it (turned up to
    12 degrees, slanted, stretched, anywhere and of any size on the canvas, its pen thinner or thicker)."""
    glyph = Image.new("L", (2 * SIDE, 2 * SIDE), 0)
    pen = int(rng.integers(0, 4))  # extra stroke width, in pixels at size 80
    ImageDraw.Draw(glyph).text((SIDE, SIDE), char, fill=255, font=_font(str(font)), anchor="mm",
                               stroke_width=pen, stroke_fill=255)
    if rng.uniform() < 0.25:  # a thinner pen, unless the strokes would wear away
        thinner = glyph.filter(ImageFilter.MinFilter(3))
        if np.asarray(thinner).sum() > 0.5 * np.asarray(glyph).sum():
            glyph = thinner
    return _posed(glyph, rng)


def _posed(ink, rng, degrees=12.0, slant=0.3, stretch=0.2):
    """Return white-on-black ``ink`` (``2 SIDE`` square) turned, slanted, stretched and placed on a ``SIDE`` canvas,
    as dark ink on white."""
    box = ink.getbbox()
    if box is None:
        return Image.new("L", (SIDE, SIDE), 255)
    angle = math.radians(rng.uniform(-degrees, degrees))
    shear, aspect = rng.uniform(-slant, slant), 1 + rng.uniform(-stretch, stretch)
    size = rng.uniform(0.35, 0.9) * SIDE / max(box[2] - box[0], box[3] - box[1])
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    # output -> input: the inverse of scale, then shear, then turn; the centre lands anywhere it fits
    a, b = math.cos(angle), math.sin(angle)
    M = np.linalg.inv(np.array([[a, -b], [b, a]]) @ np.array([[1, shear], [0, 1]]) @ np.diag([size * aspect, size]))
    tx, ty = rng.uniform(0.4, 0.6, 2) * SIDE
    offset = np.array([cx, cy]) - M @ np.array([tx, ty])
    out = ink.transform((SIDE, SIDE), Image.AFFINE, (*M[0], offset[0], *M[1], offset[1]), Image.BILINEAR)
    return Image.eval(out, lambda v: 255 - v)


def font_digit(digit, font, rng):
    """Return ``digit`` (0-9) typeset in the font file ``font`` and posed at random (see :func:`typeset`)."""
    return typeset(str(digit), font, rng)


def non_digit(rng, fonts, kind=None, kana_font=None):
    """Return ``(kind, picture)``: one picture that is not a digit, of the named ``kind`` or of one drawn at random
    (see ``KINDS``). Letters and symbols use the font files ``fonts``; kana need a Japanese font (``kana_font``),
    without one a letter is drawn instead."""
    kind = kind or KINDS[rng.integers(len(KINDS))]
    if kind == "kana" and kana_font is None:
        kind = "letter"
    if kind in ("letter", "symbol", "kana"):
        chars = {"letter": LETTERS, "symbol": SYMBOLS, "kana": KANA}[kind]
        for _ in range(20):  # a font without this glyph: try another pair
            char = chars[rng.integers(len(chars))]
            font = kana_font if kind == "kana" else fonts[rng.integers(len(fonts))]
            if _writes(str(font), char):
                return kind, typeset(char, font, rng)
        kind = "scribble"
    return kind, DRAWN[kind](rng)


def non_digits(n, seed=0, kinds=KINDS, fonts=None):
    """Return ``n`` pictures that are not digits, of the ``kinds`` named (e.g. ``("letter",)``), in ``fonts``
    (default: the fonts matplotlib ships), drawn from ``seed``.

    Introduced in the lesson: main.ipynb §10.
    """
    kinds = checked_kinds(kinds)
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or not 0 <= n <= 10_000:  # 10,000: a minute
        raise ArgumentError(f"non_digits の n は作る枚数（0〜10000 の整数。1 万枚で 1 分ほどかかります）にしてください（今は {repr(n)[:20]}）。例: non_digits(100)")
    rng, fonts, kana = np.random.default_rng(checked_seed(seed)), checked_fonts(fonts) or bundled_fonts(), kana_font()
    return [non_digit(rng, fonts, kinds[rng.integers(len(kinds))], kana_font=kana)[1] for _ in range(n)]


def checked_fonts(fonts):
    """``fonts`` as a list of font files PIL can draw with (``None``: none given); else :class:`ArgumentError`."""
    if fonts is None:
        return None
    listed = [fonts] if isinstance(fonts, (str, Path)) else fonts
    for font in listed:
        try:
            ImageFont.truetype(str(font), 10)
        except (OSError, TypeError, ValueError) as e:
            raise ArgumentError(f"non_digits の fonts には書体のファイル（.ttf や .otf）のリストを渡してください（読めないもの: "
                                f"{repr(font)[:60]}）。例: fonts=bundled_fonts()") from e
    return [Path(font) for font in listed]


def checked_kinds(kinds):
    """``kinds`` as a tuple of names of ``KINDS`` (one name alone, ``"letter"``, is one kind: ``("letter")`` without
    its comma is a string); else :class:`ArgumentError` naming the kinds there are."""
    kinds = (kinds,) if isinstance(kinds, str) else kinds
    try:
        kinds = tuple(kinds)
    except TypeError:
        kinds = (kinds,)
    unknown = [k for k in kinds if not isinstance(k, str) or k not in KINDS]
    if unknown or not kinds:
        raise ArgumentError(f"non_digits の kinds にない種類です（{repr(unknown[0])[:20] if unknown else '空'}）。"
                            f"種類は {', '.join(KINDS)} から選んでください。例: kinds=(\"letter\",)")
    return kinds


def _canvas():
    image = Image.new("L", (SIDE, SIDE), 255)
    return image, ImageDraw.Draw(image)


def _pen(rng):
    return int(rng.integers(2, 12))


def shape(rng):
    """A polygon (triangle, square, star, arrow, cross...) outlined or filled, or a filled blob."""
    image, draw = _canvas()
    c, r = rng.uniform(0.35, 0.65, 2) * SIDE, rng.uniform(0.2, 0.45) * SIDE
    turn = rng.uniform(0, 2 * math.pi)
    name = ("triangle", "square", "star", "cross", "arrow", "pentagon", "disk", "heart")[rng.integers(8)]
    if name == "disk":  # filled: a ring would be a 0
        rx, ry = r, r * rng.uniform(0.5, 1)
        draw.ellipse([c[0] - rx, c[1] - ry, c[0] + rx, c[1] + ry], fill=0)
        return image
    corners = {"triangle": [(1, a) for a in (0, 120, 240)], "square": [(1, a) for a in (45, 135, 225, 315)],
               "pentagon": [(1, a) for a in range(0, 360, 72)],
               "star": [(1 if i % 2 == 0 else 0.4, i * 36) for i in range(10)],
               "cross": [(1, a) for a in (15, 75, 105, 165, 195, 255, 285, 345)],
               "arrow": [(1, 0), (0.5, 120), (0.25, 150), (0.8, 170), (0.8, 190), (0.25, 210), (0.5, 240)],
               "heart": [(0.6, 20), (0.9, 60), (0.75, 90), (0.2, 90), (0.75, 90), (0.9, 120), (0.6, 160),
                         (1, 270)]}[name]
    points = [(c[0] + r * k * math.cos(turn + math.radians(a)), c[1] + r * k * math.sin(turn + math.radians(a)))
              for k, a in corners]
    if name == "cross":  # two bars through the centre
        for i in (0, 2):
            draw.line([points[i], points[i + 4]], fill=0, width=_pen(rng) + 4)
    elif rng.uniform() < 0.5:
        draw.polygon(points, fill=0)
    else:
        draw.line(points + points[:1], fill=0, width=_pen(rng), joint="curve")
    return image


def noise(rng):
    """Random pixels: fine or blotchy, sparse or dense."""
    grain = int(rng.choice([1, 2, 4, 8]))
    values = rng.uniform(0, 1, (SIDE // grain + 1, SIDE // grain + 1))
    if rng.uniform() < 0.5:
        values = (values < rng.uniform(0.05, 0.5)).astype(float)  # specks
    big = np.kron(values, np.ones((grain, grain)))[:SIDE, :SIDE]
    return Image.fromarray((255 * (1 - big)).astype(np.uint8))


def gradient(rng):
    """A grey ramp in any direction, or a round one."""
    y, x = np.mgrid[0:SIDE, 0:SIDE] / SIDE
    if rng.uniform() < 0.7:
        angle = rng.uniform(0, 2 * math.pi)
        ramp = x * math.cos(angle) + y * math.sin(angle)
    else:
        cx, cy = rng.uniform(0, 1, 2)
        ramp = np.hypot(x - cx, y - cy)
    ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-6)
    low, high = sorted(rng.uniform(0, 1, 2))
    return Image.fromarray((255 * (low + (high + 0.2 - low) * ramp).clip(0, 1)).astype(np.uint8))


def line(rng):
    """A straight line at least ``UPRIGHT`` degrees from upright (a more upright one is a 1), of any length and
    pen."""
    image, draw = _canvas()
    angle = math.radians(rng.uniform(UPRIGHT, 180 - UPRIGHT))  # from upright: 90 is level
    length, c = rng.uniform(0.3, 0.9) * SIDE, rng.uniform(0.35, 0.65, 2) * SIDE
    d = 0.5 * length * np.array([math.sin(angle), math.cos(angle)])
    draw.line([tuple(c - d), tuple(c + d)], fill=0, width=_pen(rng))
    return image


def dots(rng):
    """One dot, or a few scattered."""
    image, draw = _canvas()
    for _ in range(int(rng.choice([1, 1, 2, 3, 5, 8]))):
        c, r = rng.uniform(0.15, 0.85, 2) * SIDE, rng.uniform(2, 10)
        draw.ellipse([c[0] - r, c[1] - r, c[0] + r, c[1] + r], fill=0)
    return image


def scribble(rng):
    """A smooth random scrawl through many points: tangles, zigzags, spirals."""
    image, draw = _canvas()
    style = rng.integers(3)
    if style == 0:  # a tangle through 6-12 random points
        points = rng.uniform(0.15, 0.85, (int(rng.integers(6, 13)), 2)) * SIDE
        t = np.linspace(0, len(points) - 1, 40 * len(points))
        path = np.stack([np.interp(t, np.arange(len(points)), points[:, k]) for k in (0, 1)], 1)
        path = np.stack([np.convolve(np.pad(path[:, k], 20, mode="edge"), np.ones(21) / 21, "valid")
                         for k in (0, 1)], 1)
    elif style == 1:  # a zigzag, as when crossing something out
        n = int(rng.integers(4, 10))
        xs = np.linspace(0.15, 0.85, n) * SIDE
        ys = np.where(np.arange(n) % 2, 0.2, 0.8) * SIDE + rng.uniform(-8, 8, n)
        path = np.stack([xs, ys], 1) if rng.uniform() < 0.5 else np.stack([ys, xs], 1)
    else:  # a spiral of 2-4 turns
        t = np.linspace(0, rng.uniform(4, 8) * math.pi, 200)
        r = (0.05 + 0.4 * t / t[-1]) * SIDE
        path = np.stack([SIDE / 2 + r * np.cos(t), SIDE / 2 + r * np.sin(t)], 1)
    draw.line([tuple(p) for p in path], fill=0, width=_pen(rng), joint="curve")
    return image


DRAWN = {"shape": shape, "noise": noise, "gradient": gradient, "line": line, "dots": dots, "scribble": scribble}


def kana_font():
    """Return the Japanese font matplotlib-fontja installs (IPAexGothic), or ``None`` without it."""
    try:
        import matplotlib_fontja
    except ImportError:
        return None
    path = Path(matplotlib_fontja.__file__).with_name("fonts") / "ipaexg.ttf"
    return path if path.is_file() else None


def pen_drawn(ink, rng):
    """Return the digit of ``ink`` (a 2-D array of white ink in [0, 1] on black, e.g. an MNIST image) drawn again
    as on the pad: a round pen of any width along the middle line of its strokes, dark on white, at any size from
    a small picture's to the pad's."""
    from skimage.morphology import skeletonize

    big = np.asarray(Image.fromarray((255 * np.clip(ink, 0, 1)).astype(np.uint8)).resize((SIDE, SIDE),
                                                                                        Image.BILINEAR)) > 127
    middle = skeletonize(big)
    if not middle.any():
        return Image.new("L", (SIDE, SIDE), 255)
    pen = rng.uniform(*PEN_WIDTHS) * SIDE
    drawn = np.clip(pen / 2 + 0.5 - ndimage.distance_transform_edt(~middle), 0, 1)
    picture = Image.fromarray((255 * (1 - drawn)).astype(np.uint8))
    return picture.resize((int(rng.integers(32, SIDE + 1)),) * 2, Image.BILINEAR)


def training_pictures(n_non_digits, n_digits, seed=0, digits=None):
    """Return ``(X, y)``: ``n_non_digits`` generated non-digits (label -1) and ``n_digits`` typeset digits (their
    own labels), in the matplotlib fonts only, and the digits of ``digits`` (``(X, y)``, MNIST images, or
    ``None``) drawn again with a pen (:func:`pen_drawn`), all read through
    :func:`~mnist_lab.preprocess.preprocess_drawing` as a model reads any picture: what the ``pad`` recipe adds
    to MNIST while it trains."""
    from .data import MEAN, STD
    from .preprocess import EmptyImageError, preprocess_drawing

    rng, fonts, kana = np.random.default_rng(seed), bundled_fonts(), kana_font()
    pictures = [(-1, non_digit(rng, fonts, kana_font=kana)[1]) for _ in range(n_non_digits)]
    pictures += [(d % 10, font_digit(d % 10, fonts[rng.integers(len(fonts))], rng)) for d in range(n_digits)]
    if digits is not None:
        pictures += [(int(label), pen_drawn((x[0] * STD + MEAN).numpy(), rng)) for x, label in zip(*digits)]
    X, y = [], []
    for label, picture in pictures:
        try:
            X.append(preprocess_drawing(picture))
        except EmptyImageError:  # a faint gradient, a dot too small: nothing a pad would read
            continue
        y.append(label)
    return torch.cat(X), torch.tensor(y)


def photo(picture, rng, ink=None, desk=True, shadow=True, side=400):
    """Return an RGB photo-like image of ``picture`` (dark ink on white, any size) written on a sheet of paper:
    the sheet turned a little on a darker desk (``desk``; without it the sheet fills the photo), lit unevenly
    with a soft shadow (``shadow``), the ink in colour ``ink`` (RGB 0-255; default: a random pen's), with a
    little blur and sensor noise."""
    pens = [(20, 30, 140), (30, 30, 30), (170, 20, 30), (20, 110, 40), (230, 190, 0)]
    ink = np.array(ink if ink is not None else pens[rng.integers(len(pens))], dtype=np.float32) / 255
    paper_colour = np.array([rng.uniform(0.88, 1), rng.uniform(0.85, 0.97), rng.uniform(0.78, 0.95)], np.float32)
    desk_colour = np.array([rng.uniform(0.15, 0.4), rng.uniform(0.1, 0.3), rng.uniform(0.05, 0.25)], np.float32)
    sheet = int(side * (rng.uniform(0.6, 0.8) if desk else 1.5))
    written = Image.new("L", (sheet, sheet), 255)
    digit = picture.convert("L").resize((int(sheet * (0.6 if desk else 0.4)),) * 2)
    written.paste(digit, ((sheet - digit.width) // 2, (sheet - digit.height) // 2))
    angle = rng.uniform(-10, 10)
    written = written.rotate(angle, Image.BILINEAR, expand=True, fillcolor=255)
    on_sheet = Image.new("L", (sheet, sheet), 255).rotate(angle, Image.BILINEAR, expand=True, fillcolor=0)
    corner = ((side - written.width) // 2 + int(rng.integers(-20, 21)),
              (side - written.height) // 2 + int(rng.integers(-20, 21)))
    layers = []
    for layer, empty in ((written, 255), (on_sheet, 0)):
        full = Image.new("L", (side, side), empty)
        full.paste(layer, corner)
        layers.append(np.asarray(full, dtype=np.float32)[..., None] / 255)
    written, on_sheet = layers
    out = (paper_colour * written + ink * (1 - written)) * on_sheet + desk_colour * (1 - on_sheet)
    if shadow:
        y, x = np.mgrid[0:side, 0:side] / side
        turn = rng.uniform(0, 2 * math.pi)
        ramp = np.clip((x - 0.5) * math.cos(turn) + (y - 0.5) * math.sin(turn) + rng.uniform(-0.1, 0.2), 0, 1)
        out = out * (1 - rng.uniform(0.3, 0.55) * ramp[..., None])
    out = Image.fromarray((out.clip(0, 1) * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1))
    noisy = np.asarray(out, dtype=np.float32) / 255 + rng.normal(0, 0.015, (side, side, 3))
    return Image.fromarray((noisy.clip(0, 1) * 255).astype(np.uint8))
