import numpy as np
import pytest
import torch

from mnist_lab import History, plots
from mnist_lab.metrics import classification_table, confusion_matrix

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def images():
    g = torch.Generator().manual_seed(0)
    return torch.randn(12, 1, 28, 28, generator=g), torch.arange(12) % 10


def titles(fig):
    return [ax.get_title() for ax in fig.axes if ax.get_title()]


def test_samples_grid_titles_are_the_labels(images):
    X, y = images
    fig = plots.plot_samples(X, y, ncols=4)
    assert len(fig.axes) == 12 and titles(fig) == [str(int(v)) for v in y]
    assert fig._repr_png_().startswith(PNG)


def test_samples_with_predictions_colour_right_and_wrong(images):
    X, y = images
    y_hat = y.clone()
    y_hat[0] = 9
    fig = plots.plot_samples(X[:3], y[:3], y_hat[:3])
    assert titles(fig) == ["9 (0)", "1 (1)", "2 (2)"]
    colours = [ax.title.get_color() for ax in fig.axes]
    assert colours[0] == plots.WRONG and colours[1] == plots.RIGHT


def test_history_curves():
    history = History(records=[{"epoch": e, "train_loss": 1 / e, "eval_loss": 1.2 / e, "train_accuracy": 1 - 0.1 / e,
                                "eval_accuracy": 1 - 0.12 / e} for e in (1, 2, 3)], eval_split="val")
    fig = plots.plot_history(history)
    loss, acc = fig.axes
    assert loss.get_title().startswith("Loss") and acc.get_title() == "Accuracy"
    assert [t.get_text() for t in loss.get_legend().get_texts()] == ["train", "val"]
    assert list(acc.lines[1].get_ydata()) == pytest.approx([0.88, 0.94, 0.96])
    assert loss.get_xlabel() == "epoch"
    assert not loss.texts


def test_history_without_a_finished_epoch_says_so():
    fig = plots.plot_history(History(interrupted=True))
    assert all("no finished epoch" in ax.texts[0].get_text() for ax in fig.axes)


def test_confusion_heatmap_writes_every_count():
    C = confusion_matrix([0, 1, 2, 2, 1], [0, 1, 2, 1, 1], num_classes=3)
    fig = plots.plot_confusion_matrix(C)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "predicted" and ax.get_ylabel() == "true"
    assert [t.get_text() for t in ax.texts] == [str(v) for v in C.ravel()]
    assert "4 / 5" in ax.get_title()


def test_per_class_bars():
    C = confusion_matrix(np.arange(100) % 10, (np.arange(100) + (np.arange(100) % 7 == 0)) % 10)
    fig = plots.plot_per_class(classification_table(C))
    ax = fig.axes[0]
    assert len(ax.patches) == 30 and [t.get_text() for t in ax.get_legend().get_texts()] == ["precision", "recall",
                                                                                           "f1"]


def test_misclassified_gallery_most_confident_first(images):
    X, y = images
    probs = torch.full((12, 10), 0.01)
    probs[torch.arange(12), y] = 0.91  # all right...
    probs[3] = torch.tensor([0.0, 0.0, 0.0, 0.2, 0.0, 0.8, 0.0, 0.0, 0.0, 0.0])  # ...but two
    probs[7] = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.4, 0.6, 0.0])
    assert list(plots.misclassified(y, probs)) == [3, 7]
    fig = plots.plot_misclassified(X, y, probs)
    assert titles(fig) == ["3→5 (80%)", "7→8 (60%)"]


def test_no_mistakes_is_said_not_crashed(images):
    X, y = images
    fig = plots.plot_misclassified(X, y, torch.nn.functional.one_hot(y, 10).float())
    assert fig.axes[0].texts[0].get_text() == "no mistakes"
