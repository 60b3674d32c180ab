"""Image files for ``predict``, generated: every PIL mode a file can hold (LAB, CMYK, YCbCr, 16-bit, float with NaN or
infinity...), PNG/TIFF/JPEG/BMP/GIF/WebP, sizes from 1x1, blank or drawn or noise, and corrupt bytes.

Each one is read between two good images: the good ones are always read, the generated one gives a digit with a
finite probability or exactly one Japanese line naming it, the status is 0 or 2, and there is never a traceback.
"""

import io
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from invariants import assert_japanese_message, problem_lines, run_main
from PIL import Image, ImageDraw
from test_faults import seven

from mnist_lab import UserError, build_model, save_checkpoint
from mnist_lab.preprocess import load_image, preprocess_drawing

MODES = ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr", "LAB", "I", "I;16", "I;16B", "F"]
FORMATS = ["PNG", "TIFF", "JPEG", "BMP", "GIF", "WEBP"]
SPECIAL = [np.nan, np.inf, -np.inf, 3e38, -1e30]


@st.composite
def image_files(draw):
    """``(bytes of an image file, what it is)``: a generated picture in a generated mode, format and size, maybe
    with a special float pixel, maybe with its bytes cut or overwritten."""
    mode, fmt = draw(st.sampled_from(MODES)), draw(st.sampled_from(FORMATS))
    w, h = draw(st.integers(1, 160)), draw(st.integers(1, 160))
    content = draw(st.sampled_from(["blank", "stroke", "noise"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    gray = np.zeros((h, w), np.float32) if content != "noise" else rng.random((h, w), dtype=np.float32)
    picture = Image.fromarray((gray * 255).astype(np.uint8), "L")
    if content == "stroke":
        ImageDraw.Draw(picture).line([(0.3 * w, 0.2 * h), (0.7 * w, 0.2 * h), (0.4 * w, 0.9 * h)], fill=255,
                                     width=max(1, min(w, h) // 8))
    if mode == "F":
        array = np.asarray(picture, np.float32) / draw(st.sampled_from([1.0, 255.0, 1e-3]))
        if draw(st.booleans()):
            array[rng.integers(h), rng.integers(w)] = draw(st.sampled_from(SPECIAL))
        image = Image.fromarray(array, "F")
    elif mode.startswith("I"):
        image = Image.fromarray(np.asarray(picture).astype(np.int32) * 257, "I")
        image = image if mode == "I" else Image.fromarray(np.asarray(image).astype(np.uint16)).convert(mode)
    else:
        image = picture.convert("RGB").convert(mode)
    buffer = io.BytesIO()
    try:
        image.save(buffer, format=fmt)
    except (OSError, ValueError, KeyError, TypeError):
        buffer = io.BytesIO()
        image.save(buffer, format="TIFF")  # TIFF takes every mode
        fmt = "TIFF"
    data = buffer.getvalue()
    damage = draw(st.sampled_from([None, None, "cut", "overwrite"]))
    if damage == "cut":
        data = data[: draw(st.integers(0, len(data)))]
    elif damage == "overwrite":
        start = draw(st.integers(0, len(data) - 1))
        data = data[:start] + draw(st.binary(min_size=1, max_size=16)) + data[start + 16:]
    return data, f"{mode}-{fmt}-{w}x{h}-{content}-{damage}"


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    save_checkpoint(folder / "model.pt", build_model("quick", seed=0))
    seven(folder / "good1.png")
    seven(folder / "good2.jpg", ink="white", paper="black")
    return folder


PROBABILITY = re.compile(r": (\d)（確率 ([0-9.]+)%）$")


@settings(max_examples=80, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(image_files())
def test_one_bad_image_never_stops_the_good_ones(place, generated):
    data, what = generated
    path = place / "generated.img"
    path.write_bytes(data)
    code, out, err = run_main(["predict", place / "model.pt", place / "good1.png", path, place / "good2.jpg",
                               "--device", "cpu"])
    assert "Traceback" not in err, (what, err)
    results = out.splitlines()
    assert [r.split(": ")[0] for r in results if "good" in r] == [str(place / "good1.png"), str(place / "good2.jpg")]
    for line in results:
        found = PROBABILITY.search(line)
        assert found and 0 <= float(found.group(2)) <= 100, (what, line)
    errors = problem_lines(err)
    if code == 0:
        assert len(results) == 3 and not errors, (what, out, err)
    else:
        assert code == 2 and len(results) == 2 and len(errors) == 1, (what, code, out, err)
        assert errors[0].startswith("エラー: ") and str(path) in errors[0], (what, errors)


@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(image_files())
def test_reading_an_image_file_is_a_picture_or_one_user_error(place, generated):
    data, what = generated
    path = place / "direct.img"
    path.write_bytes(data)
    try:
        X = preprocess_drawing(load_image(path))
    except UserError as e:
        assert_japanese_message(e)
    else:
        assert X.shape == (1, 1, 28, 28) and bool(X.isfinite().all()), what


def test_a_dash_for_standard_input_is_one_line_of_its_own_and_a_file_named_dash_is_read(tmp_path, monkeypatch):
    """``cat x.png | mnist-lab predict model.pt -``: the image is never read from stdin; the line is not the one for a
    missing file. A file really named ``-`` is an image like any other."""
    save_checkpoint(tmp_path / "model.pt", build_model("quick", seed=0))
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(["predict", "model.pt", "-"])
    missing = run_main(["predict", "model.pt", "gone.png"])[2]
    assert code == 2 and not out and len(problem_lines(err)) == 1 and "Traceback" not in err, err
    assert_japanese_message(problem_lines(err)[0])
    assert err.replace("-", "") != missing.replace("gone.png", ""), (err, missing)
    seven(tmp_path / "seven.png")
    (tmp_path / "seven.png").rename(tmp_path / "-")
    code, out, err = run_main(["predict", "model.pt", "-"])
    assert code == 0 and out.startswith("-: "), (out, err)
