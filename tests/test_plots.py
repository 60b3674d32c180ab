import numpy as np
import pandas as pd
import pytest
import torch
from invariants import JAPANESE, assert_japanese_message

from mnist_lab import History, plots
from mnist_lab.errors import ArgumentError, UserError
from mnist_lab.metrics import classification_table, confusion_matrix
from mnist_lab.plots import label

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
    assert loss.get_title() == label("損失（交差エントロピー）", "Loss (cross-entropy)")
    assert acc.get_title() == label("正解率", "Accuracy")
    assert [t.get_text() for t in loss.get_legend().get_texts()] == [label("訓練", "train"), label("検証", "val")]
    assert list(acc.lines[1].get_ydata()) == pytest.approx([0.88, 0.94, 0.96])
    assert loss.get_xlabel() == label("エポック", "epoch")
    assert not loss.texts


def test_history_without_a_finished_epoch_says_so():
    fig = plots.plot_history(History(interrupted=True))
    assert all(label("終わったエポックがありません", "no finished epoch") in ax.texts[0].get_text() for ax in fig.axes)


def test_history_with_points_within_epochs_spans_the_whole_run():
    history = History(records=[{"epoch": 1, "train_loss": 0.3, "eval_loss": 0.2, "train_accuracy": 0.9,
                                "eval_accuracy": 0.95}])
    points = [{"epoch": k / 4, "train_loss": 1 / k, "train_accuracy": 1 - 0.1 / k} for k in range(1, 6)]
    loss, acc = plots.plot_history(history, points=points, epochs=3).axes
    assert list(loss.lines[0].get_xdata()) == [0.25, 0.5, 0.75, 1.0, 1.25]  # training: every point
    assert list(acc.lines[1].get_xdata()) == [1] and list(acc.lines[1].get_ydata()) == [0.95]  # evaluation: epochs
    assert loss.get_xlim()[1] >= 3 and not loss.texts  # the axis already spans the 3 epochs of the run
    empty = plots.plot_history(History(), points=[], epochs=3)
    assert all(ax.texts and ax.get_xlim()[1] >= 3 for ax in empty.axes)  # before the first point: says so


@pytest.mark.parametrize("status", ["interrupted", "not trained"])
def test_a_model_without_a_finished_epoch_gets_no_bar_but_its_status(status):
    table = pd.DataFrame({"model": ["quick", "lenet5"], "status": ["trained", status],
                          "errors": pd.array([80, None], dtype="Int64"), "seconds": [3.0, 1.5]}, index=["a", "b"])
    errors, _ = plots.plot_comparison(table).axes
    assert [bar.get_height() for bar in errors.patches] == [80, 0]
    words = [t.get_text() for t in errors.texts]
    assert words[0] == "80" and words[1] != "0" and not any(ch.isdigit() for ch in words[1])


def test_nothing_to_draw_from_a_model_without_convolutions_is_one_japanese_line_not_a_blank_figure():
    from invariants import assert_japanese_message

    from mnist_lab.errors import ArgumentError

    for draw in (lambda: plots.plot_filters(None), lambda: plots.plot_feature_maps(torch.zeros(1, 28, 28), {})):
        with pytest.raises(ArgumentError) as refused:
            draw()
        assert_japanese_message(refused.value)


def test_feature_maps_straight_from_activations_are_drawn_as_their_one_image():
    """``activations(model, X[:1], names)`` keeps the batch axis (1 x C x H x W): passed as it is, it draws what the
    lesson's ``maps[name][0]`` draws; maps of several images are refused in one line."""
    g = torch.Generator().manual_seed(0)
    image, maps = torch.randn(1, 28, 28, generator=g), torch.randn(1, 4, 28, 28, generator=g)
    drawn = [plots.plot_feature_maps(image, {"conv": m}, n=4) for m in (maps, maps[0])]
    pictures = [[im.get_array().tolist() for ax in fig.axes for im in ax.get_images()] for fig in drawn]
    assert len(pictures[0]) == 5 and pictures[0] == pictures[1]
    with pytest.raises(ArgumentError) as refused:
        plots.plot_feature_maps(image, {"conv": torch.randn(2, 4, 28, 28)})
    assert_japanese_message(refused.value)


def test_confusion_heatmap_writes_every_count():
    C = confusion_matrix([0, 1, 2, 2, 1], [0, 1, 2, 1, 1], num_classes=3)
    fig = plots.plot_confusion_matrix(C)
    ax = fig.axes[0]
    assert ax.get_xlabel() == label("予測", "predicted") and ax.get_ylabel() == label("正解", "true")
    assert [t.get_text() for t in ax.texts] == [str(v) for v in C.ravel()]
    assert label("5 枚中 4 枚", "4 / 5") in ax.get_title()


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


def test_images_labels_and_probabilities_of_different_lengths_are_refused(images):
    """``plot_misclassified(data.X_train, data.y_test, probs)``: each title would belong to another image than the
    one drawn. Refused in one line that gives the counts, whichever of the three differs."""
    X, y = images
    probs = torch.nn.functional.one_hot((y + 1) % 10, 10).float()  # every prediction wrong
    more = torch.cat([X, X[:8]])
    for args in ((more, y, probs), (X, y, probs[:10]), (X, y[:5], probs[:5])):
        with pytest.raises(ArgumentError) as refused:
            plots.plot_misclassified(*args)
        assert_japanese_message(refused.value)
        assert all(str(len(a)) in str(refused.value) for a in args)


def test_no_mistakes_is_said_not_crashed(images):
    X, y = images
    fig = plots.plot_misclassified(X, y, torch.nn.functional.one_hot(y, 10).float())
    text = fig.axes[0].texts[0].get_text()
    assert text and (not plots.JAPANESE or JAPANESE.search(text))  # said in Japanese where figures can show it


def every_figure():
    """One of each figure the lesson and the report draw, on small made-up data."""
    from mnist_lab.models import build_model

    X, y = torch.randn(6, 1, 28, 28), torch.tensor([0, 1, 2, 3, 4, 5])
    probs = torch.softmax(torch.randn(6, 10), 1)
    history = History(records=[{"epoch": 1, "train_loss": 1.0, "eval_loss": 1.1, "train_accuracy": 0.5,
                                "eval_accuracy": 0.4}])
    C = confusion_matrix(y, probs.argmax(1), num_classes=10)
    table = pd.DataFrame({"model": ["quick", "lenet5"], "status": ["trained", "not trained"],
                          "errors": pd.array([12, None], dtype="Int64"), "seconds": [3.0, 0.0]}, index=["a", "b"])
    conv = build_model("original").conv[0]
    return [plots.plot_samples(X, y, probs.argmax(1)), plots.plot_history(history), plots.plot_history(History()),
            plots.plot_confusion_matrix(C), plots.plot_per_class(classification_table(C)),
            plots.plot_misclassified(X, y, probs), plots.plot_comparison(table), plots.plot_filters(conv.weight),
            plots.plot_feature_maps(X[0], {"畳み込み": conv(X[:1])[0].detach()})]


def test_every_figure_renders_without_a_missing_glyph():
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for fig in every_figure():
            assert fig._repr_png_().startswith(b"\x89PNG")
    missing = [str(w.message) for w in caught if "missing from" in str(w.message) or "Glyph" in str(w.message)]
    assert not missing, missing[:3]
    assert plots.JAPANESE, "install matplotlib-fontja (requirements.txt): the lesson's figures speak Japanese"


JUNK = [None, [], {}, "C", 3, float("nan"), np.arange(10), np.full((10, 10), np.nan), torch.zeros(3),
        torch.zeros(5, 1, 28, 28), np.zeros((4, 1, 28, 28)), torch.nn.Linear(3, 3)]


@pytest.mark.parametrize("name", ["plot_samples", "plot_confusion_matrix", "plot_per_class", "plot_misclassified",
                                  "plot_comparison", "plot_filters", "plot_feature_maps", "plot_energies"])
def test_any_argument_gives_a_figure_or_one_line(name):
    """Whatever a student passes, a plot function draws or says in one line what it takes (never NumPy's error)."""
    import inspect

    from mnist_lab import plots
    from mnist_lab.errors import UserError

    plot = getattr(plots, name)
    needed = sum(p.default is inspect.Parameter.empty for p in inspect.signature(plot).parameters.values())
    for junk in JUNK:
        for position in range(needed):
            args = [torch.zeros(3)] * needed
            args[position] = junk
            try:
                assert plot(*args) is not None
            except UserError as e:
                assert "\n" not in str(e)


def test_per_class_bars_are_named_by_the_tables_own_digits_and_a_results_file_is_no_history():
    import json

    from mnist_lab import metrics as M
    from mnist_lab.errors import UserError
    from mnist_lab.plots import plot_history, plot_per_class

    C = np.eye(10, dtype=int) * 50
    C[3, 3], C[3, 5] = 10, 40
    table = M.classification_table(C)
    for shown in (table.sort_values("f1"), table.loc[[3, 8]]):
        ticks = [t.get_text() for t in plot_per_class(shown).axes[0].get_xticklabels()]
        assert ticks == [str(d) for d in shown.index]
    with pytest.raises(UserError):
        plot_per_class(M.averages_table(C))  # macro / micro / weighted are no digits
    results = {"test_accuracy": 0.9, "history": {"records": []}}
    for odd in (json.loads(json.dumps(results)), {}):
        with pytest.raises(UserError):
            plot_history(odd)


@pytest.fixture
def nothing_drawn(monkeypatch):
    """Any figure made from now on fails the test: a refusal comes before drawing."""
    def refused(*args, **kwargs):
        raise AssertionError("a figure was made")
    monkeypatch.setattr(plots, "Figure", refused)


def test_a_normalised_or_negative_confusion_matrix_is_refused_like_the_metrics_refuse_it(nothing_drawn):
    C = confusion_matrix(np.arange(100) % 10, (np.arange(100) + (np.arange(100) % 7 == 0)) % 10)
    for odd in (C / C.sum(1, keepdims=True), -C, np.where(C > 0, np.inf, 0.0)):
        with pytest.raises(UserError) as refused:
            plots.plot_confusion_matrix(odd)
        assert_japanese_message(refused.value)
        with pytest.raises(UserError) as by_the_metrics:
            classification_table(odd)
        assert str(refused.value) == str(by_the_metrics.value)  # one place decides what a confusion matrix is


def test_misclassified_takes_probabilities_not_scores_log_probabilities_or_labels(images, nothing_drawn):
    X, y = images
    scores = torch.randn(12, 10, generator=torch.Generator().manual_seed(1)) * 5
    for odd in (scores, torch.log_softmax(scores, 1), scores.softmax(1).argmax(1), scores.softmax(1)[:, :9]):
        with pytest.raises(ArgumentError) as refused:
            plots.plot_misclassified(X, y, odd)
        assert_japanese_message(refused.value)


def test_comparisons_joined_with_a_name_twice_get_a_bar_each_with_its_own_number():
    def table(errors, names):
        return pd.DataFrame({"model": ["quick"] * len(names), "status": ["trained"] * len(names),
                             "errors": pd.array(errors, dtype="Int64"), "seconds": [1.0] * len(names)}, index=names)

    both = pd.concat([table([50, 70], ["quick", "mlp"]), table([40, 30], ["quick", "lenet"])])
    errors, _ = plots.plot_comparison(both).axes
    bars = [(bar.get_x() + bar.get_width() / 2, bar.get_height()) for bar in errors.patches]
    assert len({x for x, _ in bars}) == 4 and [h for _, h in bars] == [50, 70, 40, 30]
    written = {text.get_position()[0]: text.get_text() for text in errors.texts}
    assert [written[x] for x, _ in bars] == ["50", "70", "40", "30"]  # each number over its own bar
    ticks = [t.get_text() for t in errors.get_xticklabels()]
    assert len(set(ticks)) == 4 and ticks[1:4:2] == ["mlp", "lenet"]


def test_a_comparison_without_its_columns_is_one_line(nothing_drawn):
    table = pd.DataFrame({"errors": [3], "seconds": [1.0], "status": ["trained"]}, index=["quick"])
    for odd, needed in ((table[["errors"]], "seconds"), (table.drop(columns="status"), "status"), (table.to_dict(), "")):
        with pytest.raises(ArgumentError) as refused:
            plots.plot_comparison(odd)
        assert_japanese_message(refused.value)
        assert needed in str(refused.value)  # names the column it needs


def test_samples_are_a_stack_of_a_few_images_with_labels_0_to_9(images, nothing_drawn):
    X, y = images
    odd_calls = [(X[0], y[0]), (X[0, 0], y[:1]), (X[:2], torch.tensor([0.5, 1.5])), (X[:2], torch.tensor([27, 1])),
                 (X[:2], y[:2], torch.tensor([11, 1])), (X[:2], y[:2], torch.softmax(torch.zeros(2, 10), 1)),
                 (torch.zeros(plots.MAX_SAMPLES + 1, 1, 28, 28), torch.zeros(plots.MAX_SAMPLES + 1).long())]
    for args in odd_calls:
        with pytest.raises(ArgumentError) as refused:
            plots.plot_samples(*args)
        assert_japanese_message(refused.value)


def test_all_the_training_images_are_refused_at_once_not_drawn_for_an_hour(nothing_drawn):
    import time

    X, y = torch.zeros(1, 1, 28, 28).expand(60_000, -1, -1, -1), torch.zeros(60_000, dtype=torch.long)  # data.X_train
    start = time.perf_counter()
    with pytest.raises(ArgumentError) as refused:
        plots.plot_samples(X, y)
    assert time.perf_counter() - start < 5 and "X[:" in str(refused.value)  # shows how to take a few


def test_energies_are_one_number_per_image_and_the_threshold_a_number(nothing_drawn):
    e = torch.randn(50)
    probs = torch.softmax(torch.randn(50, 10), 1)
    for args in ((probs, probs), (e, probs), (e, e, "x"), (e, e, float("nan")), (e, e, [1.0, 2.0])):
        with pytest.raises(ArgumentError) as refused:
            plots.plot_energies(*args)
        assert_japanese_message(refused.value)


def test_energies_take_a_threshold_as_any_kind_of_number():
    e = torch.randn(50)
    for threshold in (1.5, np.float32(1.5), torch.tensor(1.5), 2):
        assert plots.plot_energies(e, e + 1, threshold).axes[0].lines[0].get_xdata()[0] == pytest.approx(float(threshold))


def test_a_column_count_that_is_no_whole_number_from_1_names_ncols(images):
    """``ncols="８"`` (full-width, from an input method), 0, -1, None, 2.5: one line about ``ncols``, never blaming the
    images; NumPy and 0-d tensor integers are column counts as ints are."""
    X, y = images
    probs = torch.nn.functional.one_hot((y + 1) % 10, 10).float()
    draws = ((plots.plot_samples, (X, y)), (plots.plot_misclassified, (X, y, probs)),
             (plots.plot_filters, (torch.randn(4, 1, 3, 3),)))
    for ncols in ("８", 0, -1, None, 2.5, True):
        for draw, args in draws:
            with pytest.raises(ArgumentError) as refused:
                draw(*args, ncols=ncols)
            assert_japanese_message(refused.value)
            assert "ncols" in str(refused.value)
    for ncols in (np.int64(3), torch.tensor(3)):
        assert len(plots.plot_samples(X, y, ncols=ncols).axes) == 12


def test_a_matrix_or_a_list_given_for_the_table_is_told_to_make_the_table():
    """``plot_per_class(C)`` or ``plot_per_class(C.tolist())``: one line with no English error inside it."""
    C = confusion_matrix(np.arange(100) % 10, (np.arange(100) + (np.arange(100) % 7 == 0)) % 10)
    for given in (C, C.tolist(), [[1, 2], [3]], "table"):
        with pytest.raises(ArgumentError) as refused:
            plots.plot_per_class(given)
        assert_japanese_message(refused.value)
        assert "Error" not in str(refused.value) and "[]" not in str(refused.value)
