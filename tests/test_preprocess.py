import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from mnist_lab import UserError, preprocess_drawing
from mnist_lab.data import MEAN, STD, denormalize
from mnist_lab.preprocess import EmptyImageError, load_image, mnist_like

HALF_PIXEL = 0.5 + 1e-6  # placing a box on whole pixels moves its centre of mass by up to half a pixel


def centre_of_mass(img):
    img = torch.as_tensor(img, dtype=torch.float64)
    i = torch.arange(img.shape[0], dtype=torch.float64)
    return ((img.sum(1) * i).sum() / img.sum()).item(), ((img.sum(0) * i).sum() / img.sum()).item()


def stroke_image(size=(280, 280), box=(40, 30, 90, 200), ink=255, paper=0, mode="L"):
    image = Image.new(mode, size, paper)
    ImageDraw.Draw(image).rectangle(box, fill=ink)
    return image


def test_output_is_a_normalised_batch_of_one():
    X = preprocess_drawing(stroke_image())
    assert X.shape == (1, 1, 28, 28) and X.dtype == torch.float32
    assert X.min().item() == pytest.approx(-MEAN / STD, abs=1e-5)
    assert X.max().item() == pytest.approx((1 - MEAN) / STD, abs=1e-5)


def test_ink_is_centred_by_mass_whatever_its_position():
    for box in [(0, 0, 40, 120), (200, 150, 279, 279), (100, 10, 110, 60)]:
        cy, cx = centre_of_mass(mnist_like(stroke_image(box=box)))
        assert abs(cy - 14) <= HALF_PIXEL and abs(cx - 14) <= HALF_PIXEL, box


def test_longer_side_becomes_20_pixels_keeping_the_aspect_ratio():
    tall = mnist_like(stroke_image(box=(100, 20, 149, 219)))  # 50 x 200 -> 5 x 20
    rows, cols = np.nonzero(tall.numpy() > 0.05)
    assert rows.max() - rows.min() + 1 == 20 and cols.max() - cols.min() + 1 in (5, 6)
    wide = mnist_like(stroke_image(box=(20, 100, 219, 149)))
    rows, cols = np.nonzero(wide.numpy() > 0.05)
    assert cols.max() - cols.min() + 1 == 20 and rows.max() - rows.min() + 1 in (5, 6)


def test_polarity_and_colour_do_not_matter():
    white_on_black = mnist_like(stroke_image())
    black_on_white = mnist_like(stroke_image(ink=0, paper=255))
    blue_on_cream = mnist_like(stroke_image(ink=(20, 20, 160), paper=(250, 240, 220), mode="RGB"))
    assert torch.allclose(white_on_black, black_on_white, atol=1e-6)
    assert torch.allclose(white_on_black, blue_on_cream, atol=0.05)


def test_transparent_canvas_with_dark_strokes():
    canvas = stroke_image(ink=(0, 0, 0, 255), paper=(0, 0, 0, 0), mode="RGBA")
    assert torch.allclose(mnist_like(canvas), mnist_like(stroke_image()), atol=1e-6)
    rgba_array = np.asarray(canvas)  # what a browser canvas hands over: H x W x 4 uint8
    assert torch.allclose(mnist_like(rgba_array), mnist_like(stroke_image()), atol=1e-6)


def test_arrays_and_tensors_of_any_scale():
    a = np.zeros((50, 80))
    a[10:40, 30:40] = 1.0
    assert torch.allclose(mnist_like(a), mnist_like(a * 255), atol=1e-6)
    assert torch.allclose(mnist_like(torch.from_numpy(a)), mnist_like(a), atol=1e-6)


@pytest.mark.parametrize("blank", [np.zeros((280, 280)), np.full((10, 10), 255), Image.new("RGBA", (50, 50))])
def test_empty_input_asks_for_a_drawing(blank):
    with pytest.raises(EmptyImageError, match="何か書いてください"):
        preprocess_drawing(blank)


def test_huge_input_is_handled():
    huge = Image.new("L", (6000, 4000), 255)
    ImageDraw.Draw(huge).ellipse((2000, 500, 3500, 3500), outline=0, width=150)
    field = mnist_like(huge)
    cy, cx = centre_of_mass(field)
    assert abs(cy - 14) <= HALF_PIXEL and abs(cx - 14) <= HALF_PIXEL
    rows, _ = np.nonzero(field.numpy() > 0.05)
    assert rows.max() - rows.min() + 1 == 20


def test_bad_shapes_are_user_errors():
    with pytest.raises(UserError, match="形"):
        preprocess_drawing(np.zeros((2, 3, 4, 5)))


def test_load_image_errors(tmp_path):
    with pytest.raises(UserError, match="見つかりません"):
        load_image(tmp_path / "none.png")
    (tmp_path / "text.png").write_text("hello")
    with pytest.raises(UserError, match="画像として読めません"):
        load_image(tmp_path / "text.png")


def test_an_upscaled_mnist_digit_survives_the_roundtrip(mnist, trained):
    model, _, _ = trained
    agree = 0
    for i in range(20):
        digit = denormalize(mnist.X_test[i:i + 1])[0].numpy()
        photo = Image.fromarray((255 - digit * 255).astype(np.uint8)).resize((280, 280), Image.BICUBIC)
        X = preprocess_drawing(photo)  # dark ink on light paper, ten times the size
        agree += int(model(X).argmax().item() == mnist.y_test[i].item())
    assert agree >= 19


def drawn_seven(height, pen, left=40, top=40):
    """A seven as the draw pad draws it: round-capped strokes ``pen`` pixels wide, ``height`` pixels high."""
    image = Image.new("L", (280, 280), 255)
    points = [(left, top), (left + 0.6 * height, top), (left + 0.2 * height, top + height)]
    draw, r = ImageDraw.Draw(image), pen / 2
    draw.line(points, fill=0, width=pen, joint="curve")
    for x, y in points:
        draw.ellipse([x - r, y - r, x + r, y + r], fill=0)
    return image


@pytest.mark.parametrize("width", [3, 8, 15])
def test_stroke_width_is_measured(width):
    from mnist_lab.preprocess import stroke_width

    ink = np.zeros((96, 96), bool)
    ink[10:86, 40:40 + width] = True
    measured, skeleton = stroke_width(ink)
    assert measured == pytest.approx(width, abs=1) and skeleton.sum() > 50


def ink_share(image):
    return (mnist_like(image) > 0.5).float().mean().item()


def test_pen_width_hardly_changes_what_the_model_sees():
    """A big seven drawn with a hairline, the pad's pen and a marker: strokes redrawn at MNIST's width."""
    seen = [mnist_like(drawn_seven(200, pen)) for pen in (2, 22, 60)]
    mnist_share = 0.116  # an MNIST seven's ink covers 11.6 % of the field on average (image > 0.5; 7-17 %)
    for image in seen:
        assert 0.5 * mnist_share < (image > 0.5).float().mean().item() < 1.5 * mnist_share
    assert (seen[0] - seen[2]).abs().mean() < 0.15


def test_a_tiny_digit_is_not_a_blob():
    """A seven 40 pixels high drawn with the pad's 22-pixel pen covers about as much of the field as a big one."""
    tiny, big = ink_share(drawn_seven(40, 22)), ink_share(drawn_seven(200, 22))
    assert tiny < 1.5 * big


def test_strokes_of_mnist_width_are_left_alone():
    image = drawn_seven(200, 24)  # 12 % of the digit's size: inside MNIST's range
    from mnist_lab.preprocess import _cropped, _even_strokes, ink_from_gray, to_gray

    crop = _cropped(ink_from_gray(to_gray(image)))
    assert _even_strokes(crop) is crop


def test_shading_without_an_edge_is_not_redrawn_as_a_stroke():
    """A grey ramp has no pen: its middle line drawn again would be a stroke nobody drew (often a 1)."""
    from mnist_lab.preprocess import _cropped, _even_strokes, ink_from_gray, to_gray

    ramp = np.tile(np.linspace(40, 255, 112, dtype=np.float32), (112, 1)).astype(np.uint8)
    crop = _cropped(ink_from_gray(to_gray(Image.fromarray(ramp))))
    assert max(crop.shape) >= 40 and _even_strokes(crop) is crop
    thin = _cropped(ink_from_gray(to_gray(drawn_seven(200, 6))))  # a sharp pen stroke far too thin: redrawn
    assert _even_strokes(thin) is not thin


def seven(size=(120, 100)):
    image = Image.new("L", size, 255)
    ImageDraw.Draw(image).line([(30, 20), (90, 20), (50, 85)], fill=0, width=9)
    return image


def transparent(image):
    rgba = np.array(image.convert("RGBA"))
    rgba[..., 3] = np.where(np.asarray(image) < 128, 255, 0)
    return Image.fromarray(rgba)


@pytest.mark.parametrize(("mode", "ext"), [(m, e) for m in ("L", "RGB", "RGBA", "LA", "P", "1", "I;16")
                                           for e in ("png", "tif", "jpg") if e != "jpg" or m in ("L", "RGB")])
def test_every_array_plt_imread_returns_is_read(tmp_path, mode, ext):
    """plt.imread gives float32 in [0, 1] for PNG (grey, RGB, RGBA; 16-bit too) and uint8/uint16 for the rest."""
    import matplotlib.pyplot as plt

    image = {"RGBA": transparent(seven()), "LA": transparent(seven()).convert("LA"),
             "I;16": Image.fromarray(np.asarray(seven()).astype(np.uint16) * 257)}.get(mode) or seven().convert(mode)
    image.save(tmp_path / f"seven.{ext}")
    array = plt.imread(tmp_path / f"seven.{ext}")
    difference = (mnist_like(array) - mnist_like(seven())).abs()
    assert difference.mean() < (0.03 if ext == "jpg" else 1e-3), (array.dtype, array.shape)


@pytest.mark.parametrize("convert", [
    lambda a: np.repeat(a[..., None], 3, 2).astype(np.uint16)[..., ::-1] * 257,  # OpenCV: BGR, 16 bits
    lambda a: a[..., None].astype(np.float32) / 255,  # H x W x 1 float
    lambda a: a.astype(np.float64),  # float in 0-255
    lambda a: a > 128,  # bool
    lambda a: a.astype(np.int32) - 128,  # signed, any range
    lambda a: torch.from_numpy(np.repeat(a[None], 3, 0) / 255.0),  # C x H x W tensor
    lambda a: torch.from_numpy(a / 255.0)[None, None],  # a batch of one
])
def test_arrays_of_any_type_and_layout(convert):
    a = np.asarray(seven())
    assert (mnist_like(convert(a)) - mnist_like(seven())).abs().max() < 0.02


def drawn_photos(n, seed, **kwargs):
    """``n`` photo-like RGB pictures of drawn digits on paper (mnist_lab.synthetic.photo), with their digits."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from handwriting import drawings, render

    from mnist_lab.synthetic import photo

    rng = np.random.default_rng(seed)
    items = drawings(-(-n // 10), seed)[:: max(1, 10 * -(-n // 10) // n)][:n]
    return [(digit, render(strokes, width), photo(render(strokes, width), rng, **kwargs))
            for digit, _, strokes, width in items]


def test_a_photo_of_paper_on_a_dark_desk_is_read_as_the_paper_alone():
    """The sheet is found: what the model sees is the drawing, not the sheet (which the border rule would take for
    ink), whatever the pen's colour, the paper's tint and the shadow."""
    for digit, drawing, picture in drawn_photos(10, seed=3, desk=True, shadow=True):
        seen, clean = mnist_like(picture), mnist_like(drawing)
        overlap = (seen * clean).sum() / (seen.norm() * clean.norm())
        assert overlap > 0.75, digit
        assert (mnist_like(np.asarray(picture)[..., ::-1].copy()) - seen).abs().max() < 0.1  # BGR too


def test_photos_with_a_dark_border_read_right():
    from mnist_lab import load_checkpoint
    from mnist_lab.app import PAD_MODEL

    model, _ = load_checkpoint(PAD_MODEL)
    photos = drawn_photos(30, seed=5, desk=True, shadow=True) + drawn_photos(10, seed=6, desk=False, shadow=True)
    right = sum(int(model(preprocess_drawing(picture)).argmax()) == digit for digit, _, picture in photos)
    assert right >= 36, right  # 40 photos; the plain border rule reads the sheet as a 0 or a 1


def test_blank_paper_says_what_it_could_not_find():
    from mnist_lab.preprocess import PaperWithoutInkError
    from mnist_lab.synthetic import photo

    blank = photo(Image.new("L", (100, 100), 255), np.random.default_rng(0))
    with pytest.raises(PaperWithoutInkError):
        preprocess_drawing(blank)


@pytest.mark.parametrize("kind", ["gradient", "noise", "line", "dots", "shape"])
def test_pictures_that_are_not_digits_still_reach_the_model(kind):
    """A gradient or noise is no photo of paper: it is read (and the model may say "not a digit")."""
    from mnist_lab.synthetic import DRAWN

    rng = np.random.default_rng(1)
    for _ in range(5):
        assert preprocess_drawing(DRAWN[kind](rng)).shape == (1, 1, 28, 28)


def test_a_big_letter_cut_by_the_frame_is_no_blank_sheet():
    """The white around a black shape that runs off the picture is not a sheet of paper on a black desk."""
    from PIL import ImageFont

    from mnist_lab.synthetic import bundled_fonts

    font = ImageFont.truetype(str(next(p for p in bundled_fonts() if p.name == "DejaVuSerif-Bold.ttf")), 150)
    image = Image.new("L", (112, 112), 255)
    ImageDraw.Draw(image).text((40, 70), "u", font=font, fill=0, anchor="mm")
    assert mnist_like(image).sum() > 10


def test_a_tiny_white_digit_on_black_is_no_sheet_of_paper():
    """scikit-learn's 8x8 digits: white on black, the size of a thumbnail."""
    from sklearn.datasets import load_digits

    for image in load_digits().images[:50]:
        assert preprocess_drawing(image / 16).shape == (1, 1, 28, 28)


@pytest.mark.parametrize("call", ["load_image(None)", "load_image(b'PNG')", "model_input(None)",
                                  "model_input(np.zeros((28, 28), np.uint8))", "preprocess_drawing('seven.png')"])
def test_the_wrong_kind_of_argument_is_one_line_saying_what_to_pass(call):
    from mnist_lab.errors import UserError
    from mnist_lab.preprocess import load_image, model_input, preprocess_drawing

    with pytest.raises(UserError) as refused:
        eval(call, {"np": np, "load_image": load_image, "model_input": model_input,
                    "preprocess_drawing": preprocess_drawing})
    assert "\n" not in str(refused.value)


def ring(rx, ry, n=60):
    return [(140 + rx * np.cos(2 * np.pi * i / n), 140 + ry * np.sin(2 * np.pi * i / n)) for i in range(n + 1)]


@pytest.mark.parametrize("draw, grain", [
    (lambda d: d.rectangle([0, 0, 279, 279], outline=0, width=35), 0),  # a square 0 along the picture's edge
    (lambda d: d.line(ring(130, 135), fill=0, width=40, joint="curve"), 0.02),  # a round 0 touching the edge
    (lambda d: d.line(ring(135, 138), fill=0, width=30, joint="curve"), 0.02),  # one running off it
])
def test_a_big_zero_drawn_to_the_edge_of_a_white_picture_is_ink_not_an_empty_sheet(draw, grain):
    """Drawn, or scanned with a photo's grain where white remains on the picture's edge (a noisy dark frame all
    around the edge looks exactly like a blank sheet on a desk)."""
    image = Image.new("L", (280, 280), 255)
    draw(ImageDraw.Draw(image))
    noisy = np.asarray(image, np.float32) / 255 + np.random.default_rng(0).normal(0, grain, (280, 280))
    for seen in mnist_like(image), mnist_like(noisy.clip(0, 1)):
        assert seen[14, 14] < 0.1 and seen[14, 4:8].max() > 0.5 and seen[4:8, 14].max() > 0.5  # a ring, hollow


def test_a_file_name_given_as_the_image_is_told_an_import_that_works():
    """``preprocess_drawing("7.png")`` names the function that reads the file with the import that brings it (the
    lesson never imports it): that import runs."""
    import re

    from invariants import assert_japanese_message

    with pytest.raises(UserError) as refused:
        preprocess_drawing("7.png")
    assert_japanese_message(refused.value)
    imports = re.findall(r"from [\w.]+ import \w+", str(refused.value))
    assert imports
    namespace = {}
    for line in imports:
        exec(line, namespace)  # noqa: S102 - the message's own import
    assert callable(namespace[imports[-1].split()[-1]])
