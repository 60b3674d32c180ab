"""「数字ではないかもしれません」: the energy score, its threshold, and the warning in predict, the pad and the app.

The non-digits here are typeset in fonts the pad model never saw (Debian's fonts-liberation, fonts-urw-base35,
fonts-humor-sans, fonts-dkg-handwriting: .ci/run installs them); training used only the fonts matplotlib ships.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mnist_lab import load_checkpoint, make_config, synthetic
from mnist_lab.app import PAD_MODEL, drawing_app
from mnist_lab.cli import main
from mnist_lab.errors import UserError
from mnist_lab.inference import predict_proba
from mnist_lab.ood import WARNING, calibrated_threshold, energies, flagged, most_confident, read, threshold_of
from mnist_lab.preprocess import preprocess_all, preprocess_drawing
from mnist_lab.widgets import DrawPad

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from handwriting import drawings, render, upright

UNSEEN_FONTS = ("LiberationSans-Regular.ttf", "LiberationSerif-Bold.ttf", "NimbusSans-Italic.otf",
                "URWBookman-Light.otf", "Humor-Sans.ttf", "dkg.ttf")


@pytest.fixture(scope="module")
def pad_model():
    return load_checkpoint(PAD_MODEL)[0]


@pytest.fixture(scope="module")
def unseen_fonts():
    fonts = [p for p in synthetic.system_fonts() if p.name in UNSEEN_FONTS]
    assert len(fonts) == len(UNSEEN_FONTS), "apt-get install fonts-liberation fonts-urw-base35 fonts-humor-sans fonts-dkg-handwriting"
    return fonts


def test_the_pad_model_flags_generated_non_digits_and_not_mnist_digits(pad_model, unseen_fonts, mnist):
    """Targets: >= 90 % of non-digits, <= 1 % of MNIST test digits, <= 3 % of drawn digits; asserted with margin."""
    assert threshold_of(pad_model) is not None
    X_non = preprocess_all(synthetic.non_digits(400, seed=11, fonts=unseen_fonts))
    assert len(X_non) >= 380
    assert flagged(pad_model, X_non).float().mean() >= 0.85
    assert flagged(pad_model, mnist.X_test[:3000]).float().mean() <= 0.02
    X_drawn = torch.cat([preprocess_drawing(render(strokes, width)) for *_, strokes, width in drawings(24, 0)])
    assert flagged(pad_model, X_drawn).float().mean() <= 0.03


def test_a_model_without_a_threshold_cannot_tell(trained):
    model, _, _ = trained
    X = preprocess_drawing(synthetic.non_digits(1, seed=0, kinds=("letter",))[0])
    assert threshold_of(model) is None and read(model, X)[0].not_a_digit is None and not flagged(model, X).any()


def test_softmax_confidence_is_not_knowledge(trained, mnist):
    """The lesson's demonstration: a plain model reads some letter as a digit at over 90 %; its energy is higher
    than most digits' all the same."""
    model, _, _ = trained
    letters = synthetic.non_digits(100, seed=0, kinds=("letter",))
    index, digit, probability = most_confident(model, letters)
    assert probability > 0.9 and 0 <= digit <= 9
    letter_energy = energies(model, preprocess_drawing(letters[index]))[0]
    assert (energies(model, mnist.X_test[:1000]) < letter_energy).float().mean() > 0.5


def test_the_threshold_is_chosen_on_validation_digits(mnist):
    from mnist_lab import build_model, fit

    config = make_config("pad", epochs=1, batch_size=64)
    data = mnist.with_validation(2000).head(640, 256)
    model = build_model(config.model, seed=0)
    fit(model, data, config, device="cpu", progress=False)
    expected = calibrated_threshold(energies(model, data.X_val))
    assert threshold_of(model) == pytest.approx(expected, rel=1e-4)
    assert (energies(model, data.X_val) > threshold_of(model)).float().mean() <= 0.01


def test_non_digits_need_a_validation_split():
    with pytest.raises(UserError, match="val_size"):
        make_config("pad", val_size=0)


def write_pictures(folder, unseen_fonts):
    digit = render(*upright(7, "plain"))
    rng = np.random.default_rng(3)
    letters = [synthetic.typeset(c, unseen_fonts[i % len(unseen_fonts)], rng) for i, c in enumerate("AXKMHWEF")]
    paths = [folder / "seven.png"] + [folder / f"letter{i}.png" for i in range(len(letters))]
    for path, picture in zip(paths, [digit, *letters]):
        picture.save(path)
    return paths


def test_predict_warns_in_text_and_json(capsys, tmp_path, pad_model, unseen_fonts):
    paths = write_pictures(tmp_path, unseen_fonts)
    assert main(["predict", str(PAD_MODEL), *map(str, paths), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["image"] for r in results] == list(map(str, paths))
    assert results[0]["digit"] == 7 and results[0]["not_a_digit"] is False
    # the model's own flags, shown as they are; letters made of straight strokes (X K H W E F) are flagged, the
    # rounder A and M of these fonts are not (the pad model flags 85 % of letters in fonts it never saw)
    assert [r["not_a_digit"] for r in results] == flagged(pad_model, preprocess_all(map(Image.open, paths))).tolist()
    assert sum(r["not_a_digit"] for r in results[1:]) >= 5  # of 8 letters
    assert all(0 <= r["digit"] <= 9 and len(r["probabilities"]) == 10 for r in results)  # the digit still read
    assert main(["predict", str(PAD_MODEL), *map(str, paths)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [WARNING in line for line in lines] == [r["not_a_digit"] for r in results]
    assert all(f": {r['digit']}（" in line for line, r in zip(lines, results))


def test_predict_json_without_a_threshold_says_null(capsys, tmp_path, trained, unseen_fonts):
    _, _, checkpoint = trained
    paths = write_pictures(tmp_path, unseen_fonts)[:2]
    assert main(["predict", str(checkpoint), *map(str, paths), "--json"]) == 0
    assert [r["not_a_digit"] for r in json.loads(capsys.readouterr().out)] == [None, None]


@pytest.mark.parametrize("make_pad", [DrawPad, lambda model: drawing_app(PAD_MODEL).children[1]])
def test_the_pad_and_the_app_show_the_digit_with_the_warning(pad_model, unseen_fonts, make_pad):
    pad = make_pad(pad_model)
    strokes, pen = upright(4, "closed")
    pad.set_line_width(pen)
    for stroke in strokes:
        pad.pen_down(*stroke[0])
        for point in stroke[1:]:
            pad.pen_move(*point)
        pad.pen_up(0, 0)
    assert int(pad.probabilities.argmax()) == 4 and "mnist-not-digit" not in pad.prediction.value
    shown, flags = [], []
    for i, char in enumerate("AXKMH"):
        pad.clear()
        pad.image.paste(synthetic.typeset(char, unseen_fonts[i], np.random.default_rng(i)).resize((280, 280)))
        pad.predict()
        shown.append("mnist-not-digit" in pad.prediction.value)
        flags.append(bool(flagged(pad_model, preprocess_drawing(pad.image))))
        assert "class='digit'" in pad.prediction.value  # the digit is still shown
    assert shown == flags and sum(shown) >= 2  # the model's own flags (it flags 85 % of letters in unseen fonts)
    pad.close()


def test_letters_of_every_font_are_drawn(unseen_fonts):
    """The generator draws real glyphs (no empty boxes) in every font it is given, for every kind."""
    rng = np.random.default_rng(0)
    for kind in synthetic.KINDS:
        kind_drawn, picture = synthetic.non_digit(rng, unseen_fonts, kind, kana_font=synthetic.kana_font())
        ink = 255 - np.asarray(picture, dtype=np.float32)
        assert ink.max() > 0 and isinstance(picture, Image.Image), kind_drawn


def test_energy_histograms_are_drawn():
    from mnist_lab.plots import plot_energies

    digits, others = torch.randn(500) - 8, torch.randn(300) - 2
    fig = plot_energies(digits, others, threshold=-5.0)
    ax = fig.axes[0]
    assert len(ax.patches) == 2 * 49 and len(ax.lines) == 1 and ax.lines[0].get_xdata()[0] == -5.0
    assert len(plot_energies(digits, others).axes[0].lines) == 0


def _stroke_spread(ink):
    """How uneven the strokes of the binary image ``ink`` are: the 90th over the 10th percentile of the distance
    from the strokes' middle line to the paper (1 for a round pen of one width; a brush or a scan vary more)."""
    from scipy import ndimage
    from skimage.morphology import skeletonize

    distance = ndimage.distance_transform_edt(np.pad(ink, 1))[1:-1, 1:-1][skeletonize(ink)]
    return np.percentile(distance, 90) / np.percentile(distance, 10)


def test_pen_drawn_mnist_digits_look_drawn_and_the_pad_model_reads_them(pad_model, mnist):
    """synthetic.pen_drawn redraws an MNIST digit with one pen along its strokes, as on the pad; the pad model,
    taught on such digits, reads them as it reads MNIST's own and does not take the clean stroke for a non-digit."""
    from mnist_lab.data import MEAN, STD

    rng, n = np.random.default_rng(0), 300
    inks = [(x[0] * STD + MEAN).numpy() for x in mnist.X_test[:n]]
    pictures = [synthetic.pen_drawn(ink, rng) for ink in inks]
    assert all(p.mode == "L" and p.getpixel((0, 0)) == 255 for p in pictures)  # dark ink on white paper
    drawn = [np.asarray(p.resize((112, 112))) < 128 for p in pictures[:50]]
    scanned = [np.asarray(Image.fromarray((255 * ink).astype(np.uint8)).resize((112, 112))) > 127 for ink in inks[:50]]
    assert np.median([_stroke_spread(ink) for ink in drawn]) <= 1.3 < np.median([_stroke_spread(i) for i in scanned])
    X, y = torch.cat([preprocess_drawing(p) for p in pictures]), mnist.y_test[:n]
    assert (predict_proba(pad_model, X).argmax(1) == y).float().mean() >= 0.95
    assert flagged(pad_model, X).float().mean() <= 0.06
