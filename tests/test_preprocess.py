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
