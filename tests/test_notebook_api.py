"""The functions a student calls from the notebook, with generated arguments and generated student functions.

- The metrics functions (``confusion_matrix``, ``class_counts``, ``classification_table``, ``one_vs_rest``,
  ``summary``, ``averaged``) either give the right answer (scikit-learn is the oracle) or raise a
  ``MetricInputError`` whose message is one Japanese line; never another exception, never a silently truncated
  or impossible result.
- The exercise checkers never raise into the cell, whatever the student's function does (returns anything, raises
  anything, exits, recurses, changes its arguments), their own data never changes, and the right answer in any
  container (NumPy arrays and scalars, tensors, lists) is still judged right afterwards.
"""

import contextlib
import copy
import io
import os
import re
import signal
import sys
import threading
import time
import warnings

import numpy as np
import pytest
import sklearn.metrics as skm
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from invariants import JAPANESE, assert_japanese_message
from PIL import Image
from test_exercises import RIGHT

from mnist_lab import MODELS, History, build_model, evaluate, predict_proba
from mnist_lab import exercises as ex
from mnist_lab import metrics as M
from mnist_lab.errors import ArgumentError, UserError
from mnist_lab.models import count_parameters, first_block, first_convolution, layer_shapes, layer_table
from mnist_lab.plots import plot_history, plot_samples
from mnist_lab.preprocess import preprocess_drawing

FAST = settings(max_examples=150, deadline=None, derandomize=True, database=None)


class Broken:
    """A value whose every conversion fails (but its repr, which Hypothesis needs to report an example)."""

    def __float__(self):
        raise RuntimeError("no float")

    def __len__(self):
        raise RuntimeError("no len")

    def __iter__(self):
        raise RuntimeError("no iter")

    def __array__(self, *args, **kwargs):
        raise RuntimeError("no array")


scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 12), st.integers(), st.just(10**400),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=3), st.just(Ellipsis),
                    st.just(Broken()), st.sampled_from([np.int64(3), np.float32(2.5), np.uint64(2**64 - 1),
                                                        np.bool_(True), np.complex64(1 + 2j)]))
dtypes = st.sampled_from([np.int8, np.int16, np.int64, np.uint8, np.uint64, np.float16, np.float32, np.float64,
                          np.bool_, np.complex128, "U2", object])
arrays = dtypes.flatmap(lambda dtype: hnp.arrays(
    dtype, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=11),
    elements=st.integers(-2, 12) if dtype == object else None))
containers = st.one_of(
    st.lists(st.integers(-1, 11), max_size=30),
    st.lists(st.floats(-1, 11), max_size=12),
    st.lists(st.lists(st.integers(0, 9), max_size=4), max_size=4),  # maybe ragged
    st.lists(scalars, max_size=4),
    arrays,
    arrays.map(lambda a: torch.from_numpy(a) if a.dtype.kind in "iufb" else a),
    st.just(torch.empty(3, device="meta")), st.just(torch.zeros(2, 2, device="meta")),
    st.builds(dict), st.just({1, 2}),
)
anything = st.one_of(scalars, containers)


def calls(x, y, k, average):
    """Every metrics function a student calls, with the generated arguments."""
    return {"confusion_matrix": lambda: M.confusion_matrix(x, y),
            "confusion_matrix_of_one": lambda: M.confusion_matrix(x),  # the predictions forgotten
            "confusion_matrix_k": lambda: M.confusion_matrix(x, y, num_classes=k),
            "class_counts": lambda: M.class_counts(x),
            "classification_table": lambda: M.classification_table(x),
            "one_vs_rest": lambda: M.one_vs_rest(x, k),
            "summary": lambda: M.summary(x),
            "averaged": lambda: M.averaged(M.f1, x, average),
            "precision_of": lambda: M.precision(y)}


@FAST
@given(x=anything, y=anything, k=scalars, average=st.one_of(st.sampled_from(M.AVERAGES), scalars),
       name=st.sampled_from(sorted(calls(0, 0, 0, 0))))
def test_metrics_functions_answer_or_say_in_one_japanese_line_what_is_wrong(x, y, k, average, name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", M.UndefinedMetricWarning)
        try:
            value = calls(x, y, k, average)[name]()
        except M.MetricInputError as e:
            assert_japanese_message(e)
            return
    if name.startswith("confusion_matrix"):  # it answered: the answer is a real confusion matrix
        assert value.ndim == 2 and value.shape[0] == value.shape[1] and (value >= 0).all()
    if name == "summary":
        assert all(0 <= v <= 1 for v in value.values()), value
    if name == "classification_table":
        assert ((value[["precision", "recall", "f1"]] >= 0) & (value[["precision", "recall", "f1"]] <= 1)).all().all()


label_pairs = st.integers(1, 60).flatmap(lambda n: st.tuples(st.lists(st.integers(0, 9), min_size=n, max_size=n),
                                                             st.lists(st.integers(0, 9), min_size=n, max_size=n)))
forms = st.sampled_from([list, np.array, lambda v: np.array(v, np.uint8), lambda v: np.array(v, np.float32),
                         lambda v: torch.tensor(v), lambda v: np.array(v).reshape(-1, 1), tuple,
                         lambda v: torch.tensor(v, dtype=torch.bfloat16)])


@FAST
@given(pairs=label_pairs, form_true=forms, form_pred=forms)
def test_labels_in_any_container_give_sklearns_matrix(pairs, form_true, form_pred):
    y_true, y_pred = pairs
    C = M.confusion_matrix(form_true(y_true), form_pred(y_pred))
    np.testing.assert_array_equal(C, skm.confusion_matrix(y_true, y_pred, labels=range(10)))


@pytest.mark.parametrize("y_pred, what", [
    ([0.0, 1.7, 2.2], "fractions would be truncated"), (np.full((3, 10), 0.1), "probabilities"),
    (["0", "1", "2"], "strings"), ([0, 1], "shorter"), ([0, 1, 10], "outside 0-9"), (None, "None"),
    ([0, 1, float("nan")], "NaN"), ([True, False, True], "booleans"),
])
def test_bad_predictions_are_one_japanese_line(y_pred, what):
    with pytest.raises(M.MetricInputError) as caught:
        M.confusion_matrix([0, 1, 2], y_pred)
    assert_japanese_message(caught.value)


@pytest.mark.parametrize("C", [np.array([[3, -1], [0, 4]]), np.array([[0.5, 0.5], [0.2, 0.8]]),
                               np.ones((2, 3), int), np.ones(4, int), np.zeros((0, 0), int), [[1, 2], [3]]])
def test_matrices_that_are_no_confusion_matrix_are_refused(C):
    for function in (M.summary, M.class_counts, M.classification_table, lambda C: M.one_vs_rest(C, 0),
                     lambda C: M.averaged(M.recall, C, "macro")):
        with pytest.raises(M.MetricInputError) as caught:
            function(C)
        assert_japanese_message(caught.value)


def test_summary_of_negative_counts_is_refused_not_a_recall_above_one():
    with pytest.raises(M.MetricInputError):
        M.summary(np.array([[2, -1], [0, 1]]))


# --- exercises -----------------------------------------------------------------------------------------------------

CASES_AT_START = {name: copy.deepcopy(e.cases) for name, e in ex.EXERCISES.items()}
problems = st.sampled_from([None, ValueError("bad"), ZeroDivisionError("division by zero"), OverflowError(),
                            TypeError("x"), NotImplementedError(), SystemExit(3), KeyboardInterrupt, StopIteration(),
                            GeneratorExit(), MemoryError(), IndexError(), "recursion", "exit", "warning"])
returned = st.one_of(scalars, containers, st.tuples(scalars, scalars), st.tuples(*[st.integers(-5, 50)] * 4),
                     st.just((1e308, 1e308)), st.just(iter([1, 2])))


def student(problem, value, mutate, chatty):
    """A student's function: maybe changes its arguments in place, prints, then raises or returns ``value``."""

    def fn(*args):
        if mutate:
            for arg in args:
                if isinstance(arg, np.ndarray) and arg.flags.writeable:
                    arg[...] = -7
                elif isinstance(arg, list):
                    arg.clear()
        if chatty:
            print("debug", args)
        if problem == "recursion":
            return fn(*args)
        if problem == "exit":
            sys.exit("bye")
        if problem == "warning":
            warnings.warn("careful", RuntimeWarning)
            return np.int8(127) + np.int8(1)
        if problem is not None:
            raise problem
        return value

    return fn


@pytest.mark.filterwarnings("ignore:The recursion limit will not be reset")  # the student who recurses forever
@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(name=st.sampled_from(sorted(ex.EXERCISES)), problem=problems.filter(lambda p: p is not KeyboardInterrupt),
       value=returned, mutate=st.booleans(), chatty=st.booleans())
def test_a_checker_never_raises_into_the_cell_and_its_data_never_changes(name, problem, value, mutate, chatty):
    exercise = ex.EXERCISES[name]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), warnings.catch_warnings():
        warnings.simplefilter("error")  # even a student who turned warnings into errors
        result = exercise.result(student(problem, value, mutate, chatty))
        exercise.check(student(problem, value, mutate, chatty))
    assert result.status in ("unwritten", "no_return", "wrong", "correct") and result.message, result
    assert repr(result) and result._repr_html_()
    assert out.getvalue().strip()  # check showed its verdict
    for got, want in zip(exercise.cases, CASES_AT_START[name]):
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
    assert exercise.result(RIGHT[name]).status == "correct"


wrappers = st.sampled_from([
    lambda v: v, lambda v: np.array(v), lambda v: list(v) if isinstance(v, tuple) else v,
    lambda v: np.array(v, dtype=np.float32) if isinstance(v, tuple) else np.float32(v),
    lambda v: torch.tensor(v, dtype=torch.float64), lambda v: tuple(np.float64(x) for x in v) if isinstance(v, tuple) else np.float64(v),
])


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(name=st.sampled_from(sorted(ex.EXERCISES)), wrap=wrappers)
def test_the_right_numbers_in_any_container_are_right(name, wrap):
    def answer(*args):
        return wrap(RIGHT[name](*args))

    assert ex.EXERCISES[name].result(answer).status == "correct"


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(value=anything, C=st.one_of(anything, st.just(np.eye(10, dtype=int) * 5)))
def test_reading_exercise_never_raises(value, C):
    result = ex.explorer_fp.result(value, C)
    assert result.status in ("unwritten", "wrong", "correct") and result.message


class Unprintable(Broken):
    def __repr__(self):
        raise RuntimeError("no repr")


def test_values_that_cannot_even_be_printed():
    for call in (lambda: M.confusion_matrix(Unprintable(), [1]), lambda: M.one_vs_rest(np.eye(3, dtype=int), Unprintable()),
                 lambda: M.averaged(M.f1, np.eye(3, dtype=int), Unprintable()), lambda: M.summary(Unprintable())):
        with pytest.raises(M.MetricInputError) as caught:
            call()
        assert_japanese_message(caught.value)
    for name in ex.EXERCISES:
        result = ex.EXERCISES[name].result(student(None, Unprintable(), False, False))
        assert result.status == "wrong" and "<Unprintable>" in result.message
        assert ex.EXERCISES[name].result(Unprintable()).status == "wrong"
    assert ex.explorer_fp.result(Unprintable(), np.eye(10, dtype=int)).status == "wrong"


def test_the_interrupt_button_still_stops_a_check():
    """■ (KeyboardInterrupt) is the one thing that gets through: it must stop a function that never ends."""
    with pytest.raises(KeyboardInterrupt):
        ex.counts.result(student(KeyboardInterrupt, None, False, False))


# --- models, images and plots a student passes ---------------------------------------------------------------------

MODEL = build_model("quick_cnn", seed=0)
SPECIAL = st.sampled_from([None, float("nan"), float("inf"), float("-inf")])
IMAGE_TYPES = st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.uint8, torch.int64,
                               torch.bool])


def assert_says_itself_what_to_pass(e):
    """One Japanese line of its own, not a wrapped English error of NumPy's or PyTorch's."""
    assert_japanese_message(e)
    assert not re.search(r"[A-Z][A-Za-z]*(Error|Exception)", str(e)), str(e)


def images(dtype, n, special, where):
    X = (torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(n)) * 255).to(dtype)
    if special is not None and n and dtype.is_floating_point:
        X.view(-1)[where % X.numel()] = special
    return X


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(dtype=IMAGE_TYPES, n=st.integers(0, 3), special=SPECIAL, where=st.integers(0, 10**6),
       model=st.sampled_from([MODEL, MODEL, MODEL, None, "quick_cnn"]), channel=st.booleans())
def test_predict_proba_answers_only_for_finite_float_images(dtype, n, special, where, model, channel):
    """Probabilities for finite float images (float64 as float32), an empty batch for none; one Japanese line for
    integers (raw 0-255 pixels are not what the model reads), NaN or infinity (never NaN probabilities), images
    without their channel, and anything but a model."""
    X = images(dtype, n, special, where)
    X = X if channel else X[:, 0]
    readable = dtype.is_floating_point and (special is None or n == 0) and model is MODEL and channel
    try:
        probs = predict_proba(model, X)
    except ArgumentError as e:
        assert_says_itself_what_to_pass(e)
        assert not readable, e
        return
    assert readable, probs
    assert probs.shape == (n, 10) and torch.isfinite(probs).all() and torch.allclose(probs.sum(1), torch.ones(n))
    if dtype == torch.float64:
        assert torch.allclose(probs, predict_proba(MODEL, X.float()))


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(dtype=IMAGE_TYPES, n=st.integers(0, 3), special=SPECIAL, where=st.integers(0, 10**6), labels=st.integers(0, 4),
       label_type=st.sampled_from([torch.int64, torch.uint8, torch.float32]))
def test_evaluate_scores_every_image_or_says_in_one_japanese_line_what_to_pass(dtype, n, special, where, labels,
                                                                                label_type):
    X, y = images(dtype, n, special, where), torch.arange(labels).to(label_type)
    readable = dtype.is_floating_point and special is None and n > 0 and labels == n and label_type != torch.float32
    try:
        loss, accuracy = evaluate(MODEL, X, y)
    except ArgumentError as e:
        assert_says_itself_what_to_pass(e)
        assert not readable, e
        return
    assert readable and np.isfinite(loss) and 0 <= accuracy <= 1


@settings(max_examples=12, deadline=None, derandomize=True, database=None)
@given(n=st.integers(1, 3), labels=st.integers(0, 4), predictions=st.one_of(st.none(), st.integers(0, 4)))
def test_plot_samples_draws_one_title_per_image_or_says_the_counts_differ(n, labels, predictions):
    X, y = torch.zeros(n, 1, 28, 28), torch.arange(labels)
    y_hat = None if predictions is None else torch.arange(predictions)
    try:
        figure = plot_samples(X, y, y_hat)
    except ArgumentError as e:
        assert_says_itself_what_to_pass(e)
        assert labels != n or predictions not in (None, n), e
        return
    assert labels == n and predictions in (None, n)
    assert len([ax for ax in figure.axes if ax.get_title()]) == n


point_values = st.one_of(st.integers(-2, 5), st.floats(allow_nan=True, allow_infinity=True), st.none(), st.text(max_size=2),
                         st.booleans())
points = st.one_of(
    st.text(max_size=3), st.none(), st.integers(), st.just({"epoch": 1}),
    st.lists(st.fixed_dictionaries({"epoch": st.floats(0, 3)}, optional={"train_loss": point_values,
                                                                           "train_accuracy": point_values}), max_size=3),
    st.lists(st.fixed_dictionaries({"epoch": point_values, "train_loss": st.floats(0, 3),
                                    "train_accuracy": st.floats(0, 1)}), max_size=3),
    st.lists(point_values, max_size=2))


@settings(max_examples=30, deadline=None, derandomize=True, database=None)
@given(points=points, epochs=st.one_of(st.none(), point_values))
def test_plot_history_draws_the_points_or_says_in_one_japanese_line_what_they_are(points, epochs):
    try:
        figure = plot_history(History(), points=points, epochs=epochs)
    except ArgumentError as e:
        assert_says_itself_what_to_pass(e)
        return
    assert len(figure.axes) == 2


pictures = st.one_of(
    anything,
    st.sampled_from([np.uint8, np.float32, np.float64, np.int16]).flatmap(lambda dtype: hnp.arrays(
        dtype, st.tuples(st.integers(1, 40), st.integers(1, 40), st.integers(1, 5)))),
    hnp.arrays(np.float32, st.tuples(st.integers(1, 5), st.integers(1, 40), st.integers(5, 40))).map(torch.from_numpy))


@settings(max_examples=120, deadline=None, derandomize=True, database=None)
@given(image=pictures)
def test_preprocess_drawing_reads_any_picture_or_says_in_one_japanese_line_why_not(image):
    try:
        X = preprocess_drawing(image)
    except UserError as e:
        assert_says_itself_what_to_pass(e)
        return
    assert X.shape == (1, 1, 28, 28) and torch.isfinite(X).all()


def test_grey_with_alpha_reads_as_the_grey_picture():
    """plt.imread and PIL give a grey drawing with transparency as grey + alpha: it is read like its grey picture."""
    grey = np.ones((60, 60), np.float32)
    grey[10:50, 28:33] = 0  # a dark 1 on white
    seen = preprocess_drawing(grey)
    on_glass = np.stack([np.zeros_like(grey), 1 - grey], -1)  # black ink on a transparent canvas
    for image in (np.stack([grey, np.ones_like(grey)], -1), on_glass, torch.from_numpy(on_glass).permute(2, 0, 1),
                  Image.fromarray((on_glass * 255).astype(np.uint8), "LA"), (on_glass * 255).astype(np.uint8)):
        assert torch.allclose(preprocess_drawing(image), seen, atol=1e-5)


MODEL_FUNCTIONS = {"count_parameters": count_parameters, "layer_shapes": layer_shapes, "layer_table": layer_table,
                   "first_block": first_block, "first_convolution": first_convolution}


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(name=st.sampled_from(sorted(MODEL_FUNCTIONS)),
       model=st.one_of(anything, st.sampled_from([*MODELS, "quick", "no_such_model", torch.nn.ReLU(), MODEL])))
def test_model_functions_take_a_model_or_its_name_or_say_in_one_japanese_line_what_to_pass(name, model):
    torch.manual_seed(0)
    try:
        answer = MODEL_FUNCTIONS[name](model)
    except UserError as e:
        assert_says_itself_what_to_pass(e)
        registered = isinstance(model, str) and model in MODELS
        convolutionless = name.startswith("first_") and (model == "mlp" if isinstance(model, str)
                                                         else isinstance(model, torch.nn.ReLU))
        if convolutionless:  # no filters to show: said in one line
            return
        assert not isinstance(model, torch.nn.Module) and not (name != "first_convolution" and registered), e
        return
    assert isinstance(model, torch.nn.Module) or isinstance(model, str) and name != "first_convolution"
    if isinstance(model, str):  # a name: the answer of a fresh model of that name, drawn from no random numbers
        assert torch.equal(torch.rand(1), torch.manual_seed(0) and torch.rand(1))
        fresh = build_model(model)
        assert str(answer) == str(MODEL_FUNCTIONS[name](fresh))


@pytest.fixture(scope="module")
def pad():
    from mnist_lab.widgets import DrawPad

    pad = DrawPad(MODEL)
    yield pad
    pad.close()


coordinates = st.one_of(st.integers(-300, 600), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=2),
                        st.none(), st.booleans(), st.just(1 + 2j), st.sampled_from([np.float32(40), np.int64(200)]))


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(method=st.sampled_from(["stroke", "pen_down", "pen_move"]), points=st.lists(coordinates, min_size=4, max_size=4))
def test_the_pad_draws_at_numbers_and_says_in_one_japanese_line_what_a_point_is(method, points, pad):
    pad.clear()
    pad.pen_down(140, 140)
    before = np.asarray(pad.image).copy()
    args = points if method == "stroke" else points[:2]
    try:
        getattr(pad, method)(*args)
    except ArgumentError as e:
        assert_says_itself_what_to_pass(e)
        assert not all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) and np.isfinite(v)
                       for v in args), e
        assert np.array_equal(np.asarray(pad.image), before)  # nothing drawn
        pad.apply(["move", *map(str, args[:2])])  # the browser's path ignores what it cannot draw
        return
    assert all(np.isfinite(float(v)) for v in args)


# --- a student's function that never ends, and values that cannot be read ------------------------------------------

def endless(C, k):
    while True:
        pass
    return 0  # never reached: but a function without a return is told so before it is called


def sleepy(C, k):
    time.sleep(100)
    return 0


def swallows_every_stop(C, k):
    try:
        endless(C, k)
    except:  # noqa: E722, S110 -- a student's bare except catches the first stop; the next one still comes
        pass
    return endless(C, k)


@pytest.mark.parametrize("fn", [endless, sleepy, swallows_every_stop])
def test_a_function_that_never_ends_is_stopped_and_named(fn, monkeypatch):
    monkeypatch.setattr(ex, "TIME_LIMIT", 0.2)
    rang = []
    ring = lambda *_: rang.append(True)
    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, 60)  # someone else's alarm, running while the check runs
    try:
        start = time.monotonic()
        result = ex.counts.result(fn)
        took = time.monotonic() - start
        assert result.status == "wrong" and JAPANESE.search(result.message) and took < 2.5, (result, took)
        assert "0.2" in result.message  # it says how long it waited
        assert ex.raised(RecursionError()) not in result.message and "エラーになりました" not in result.message
        assert signal.getsignal(signal.SIGALRM) is ring and not rang
        assert 55 < signal.getitimer(signal.ITIMER_REAL)[0] <= 60 - took + 0.1  # the other alarm still runs
        assert ex.counts.result(RIGHT["counts"]).status == "correct"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_an_alarm_due_while_the_function_ran_still_rings(monkeypatch):
    monkeypatch.setattr(ex, "TIME_LIMIT", 0.3)
    rang = []
    previous = signal.signal(signal.SIGALRM, lambda *_: rang.append(True))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        assert ex.counts.result(sleepy).status == "wrong"
        time.sleep(0.05)
        assert rang == [True] and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_outside_the_main_thread_a_check_runs_without_a_time_limit():
    found = []
    thread = threading.Thread(target=lambda: found.append(ex.counts.result(RIGHT["counts"]).status))
    thread.start()
    thread.join()
    assert found == ["correct"]


def test_the_interrupt_button_stops_a_function_that_never_ends():
    handler = signal.getsignal(signal.SIGALRM)
    press = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))  # ■ while it runs: Jupyter sends SIGINT
    press.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            ex.counts.result(endless)
    finally:
        press.join()
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0) and signal.getsignal(signal.SIGALRM) is handler


def self_containing(*args):
    value = []
    value.append(value)
    return value


def deeply_nested(*args):
    value = 0.5
    for _ in range(100_000):
        value = [value]
    return value


@pytest.mark.parametrize("name", ["counts", "macro_f1"])  # an answer of several values, and of one
@pytest.mark.parametrize("fn", [self_containing, deeply_nested])
def test_a_value_that_cannot_be_read_is_not_blamed_on_recursion(name, fn):
    """The function returned at once: a RecursionError came from reading its value, not from the function."""
    result = ex.EXERCISES[name].result(fn)
    assert result.status == "wrong" and JAPANESE.search(result.message)
    assert ex.raised(RecursionError()) not in result.message


@pytest.mark.parametrize("value", [np.ma.masked, np.ma.masked_array([0.5, 1.0], mask=[True, False]),
                                   (np.ma.masked_array(0.5, mask=True), 0.5)])
def test_a_masked_value_is_named_as_masked_not_as_none(value):
    result = ex.precision_recall.result(lambda C, k: value)
    assert result.status == "wrong" and JAPANESE.search(result.message) and "None" not in result.message


def test_an_unmasked_masked_array_of_the_right_numbers_is_right():
    assert ex.precision_recall.result(lambda C, k: np.ma.masked_array(RIGHT["precision_recall"](C, k))).status == "correct"


@pytest.mark.parametrize("value", ["41", "forty", [41], (4, 1), np.array(["41"]), Unprintable()])
def test_a_number_typed_in_is_never_said_to_have_been_returned(value):
    result = ex.explorer_fp.result(value, np.eye(10, dtype=int) * 5)
    assert result.status in ("wrong", "unwritten") and JAPANESE.search(result.message)
    assert ex.RETURNED[1] not in result.message and "return" not in result.message, result.message


# --- the one-vs-rest explorer, shifted, the non-digits and the readings of section 10 -------------------------------

N_EXPLORED = 12
EXPLORED = torch.randn(N_EXPLORED, 1, 28, 28, generator=torch.Generator().manual_seed(0))
LABELS = torch.arange(N_EXPLORED) % 10
PROBS = torch.softmax(torch.randn(N_EXPLORED, 10, generator=torch.Generator().manual_seed(1)), 1)
explorer_images = st.one_of(st.just(EXPLORED), st.just(EXPLORED[:5]), st.just(EXPLORED[:, 0]), st.just(EXPLORED[:0]),
                            anything)
explorer_labels = st.one_of(st.just(LABELS), st.just(LABELS[:5]), st.just(LABELS.numpy()), st.just(LABELS.tolist()),
                            st.just(LABELS + 1), anything)
explorer_probs = st.one_of(st.just(PROBS), st.just(PROBS.numpy()), st.just(PROBS.argmax(1)), st.just(PROBS[:, :5]),
                           st.just(PROBS[:5]), st.just(PROBS.T), anything)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(X=explorer_images, y=explorer_labels, probs=explorer_probs, digit=st.one_of(st.integers(0, 9), scalars),
       n_examples=st.one_of(st.integers(0, 9), scalars))
def test_the_explorer_shows_the_library_counts_or_says_in_one_japanese_line_what_to_pass(X, y, probs, digit,
                                                                                          n_examples):
    from mnist_lab.widgets import OneVsRestExplorer

    try:
        explorer = OneVsRestExplorer(X, y, probs, digit=digit, n_examples=n_examples)
    except ArgumentError as e:
        assert_says_itself_what_to_pass(e)
        return
    assert X is EXPLORED and 0 <= digit <= 9 and not isinstance(digit, bool)
    y_hat = torch.as_tensor(np.asarray(probs)).argmax(1) if np.ndim(probs) == 2 else torch.as_tensor(probs)
    expected = M.one_vs_rest(M.confusion_matrix(LABELS, y_hat), digit)
    assert f"{expected.TP}" in explorer.matrix.value and explorer.C.sum() == N_EXPLORED


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(X=st.one_of(st.just(EXPLORED[:2]), st.just(EXPLORED[:2].numpy()), anything),
       right=st.one_of(st.integers(-40, 40), scalars), down=st.one_of(st.integers(-3, 3), scalars))
def test_shifted_moves_the_pixels_or_says_in_one_japanese_line_what_to_pass(X, right, down):
    from mnist_lab.augment import BACKGROUND, shifted

    try:
        moved = shifted(X, right=right, down=down)
    except ArgumentError as e:
        assert_says_itself_what_to_pass(e)
        return
    assert isinstance(right, (int, np.integer)) and isinstance(down, (int, np.integer))
    original = np.asarray(X, dtype=np.float32)
    h, w = original.shape[-2:]
    framed = np.pad(original, [(0, 0)] * (original.ndim - 2) + [(h, h), (w, w)], constant_values=BACKGROUND)
    dy, dx = max(-h, min(h, int(down))), max(-w, min(w, int(right)))
    expected = framed[..., h - dy:2 * h - dy, w - dx:2 * w - dx]  # the picture in a frame of background, moved
    assert isinstance(moved, torch.Tensor) and np.array_equal(moved.numpy(), expected)


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(n=st.one_of(st.integers(0, 3), scalars),
       kinds=st.one_of(st.sampled_from(["letter", ("letter",), ("shape", "noise"), ("letters",), (), ("letter", 3)]),
                       anything))
def test_non_digits_draws_the_kinds_named_or_says_in_one_japanese_line_which_there_are(n, kinds):
    from mnist_lab.synthetic import KINDS, non_digits

    try:
        pictures = non_digits(n, seed=0, kinds=kinds)
    except ArgumentError as e:
        assert_says_itself_what_to_pass(e)
        return
    named = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    assert named and set(named) <= set(KINDS) and len(pictures) == n


def test_the_pictures_of_section_10_are_read_or_refused_in_one_japanese_line():
    from mnist_lab.ood import most_confident, read
    from mnist_lab.synthetic import non_digits

    letters = non_digits(3, seed=0, kinds=("letter",))
    assert read(MODEL, letters[0]) == read(MODEL, preprocess_drawing(letters[0]))  # a picture, as preprocess_drawing
    assert len(read(MODEL, letters)) == 3
    index, digit, p = most_confident(MODEL, letters)
    assert 0 <= index < 3 and 0 <= digit <= 9 and 0 < p <= 1
    for call in (lambda: most_confident(MODEL, []), lambda: most_confident(MODEL, "letter"),
                 lambda: read(MODEL, "letter"), lambda: read(None, letters[0])):
        with pytest.raises(ArgumentError) as refused:
            call()
        assert_says_itself_what_to_pass(refused.value)


@pytest.mark.parametrize("device", ["cuda", "cuda:0", torch.device("cuda", 1), "gpu", "meta", 3, "mps"])
def test_a_device_this_machine_lacks_is_one_japanese_line(device):
    from mnist_lab.device import environment_report

    if torch.cuda.is_available() and str(device).startswith("cuda") and device != torch.device("cuda", 1):
        assert "cuda" in environment_report(device)  # a machine that has it: the report
        return
    with pytest.raises(UserError) as refused:
        environment_report(device)
    assert_says_itself_what_to_pass(refused.value)


def test_the_pad_refuses_a_model_without_values():
    from mnist_lab.widgets import DrawPad

    with pytest.raises(UserError) as refused:
        DrawPad(build_model("quick_cnn", seed=0).to("meta"))
    assert_says_itself_what_to_pass(refused.value)


@settings(max_examples=80, deadline=None, derandomize=True, database=None)
@given(seed=scalars)
def test_any_seed_is_used_or_refused_in_one_line(seed):
    """Whatever a student gives as ``seed`` (a string, a float, a huge or negative number, None where it may be):
    build_model, make_config and the validation split use it or say in one line what a seed must be."""
    from test_train import tiny_data

    from mnist_lab import make_config

    calls = (lambda: build_model("quick", seed=seed), lambda: make_config("quick", seed=seed),
             lambda: tiny_data(64).with_validation(8, seed))
    for call in calls:
        try:
            call()
        except UserError as e:
            assert_japanese_message(e)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(device=st.one_of(anything, st.sampled_from(["cpu", "cuda", "cuda:3", "mps", "tpu", "meta", "", "auto"])))
def test_describe_device_describes_or_says_what_to_pass(device):
    from mnist_lab import describe_device

    try:
        assert describe_device(device)
    except UserError as e:
        assert_japanese_message(e)


def test_lesson_functions_refuse_impossible_counts_seeds_and_arrays_in_one_line():
    from mnist_lab.ood import energies
    from mnist_lab.plots import plot_misclassified
    from mnist_lab.synthetic import non_digits

    model = build_model("quick", seed=0)
    X, y = torch.zeros(4, 1, 28, 28), torch.tensor([1, 2, 3, 4])
    calls = [lambda: energies(model, X.numpy()), lambda: non_digits(2, seed=-1), lambda: non_digits(2, seed="x"),
             lambda: plot_misclassified(X, y, predict_proba(model, X), n=-1),
             lambda: plot_misclassified(X, y, predict_proba(model, X), n=2.5)]
    for call in calls:
        with pytest.raises(UserError) as refused:
            call()
        assert_japanese_message(refused.value)
    assert energies(model, X).shape == (4,)  # the same images as a tensor are read


def test_what_a_student_computes_with_gradients_kept_is_shown_and_other_data_is_named():
    from torch.utils.data import DataLoader, TensorDataset

    from mnist_lab import fit, make_config
    from mnist_lab.compare import compare
    from mnist_lab.data import load_mnist
    from mnist_lab.plots import plot_misclassified
    from mnist_lab.widgets import OneVsRestExplorer

    model = build_model("quick_cnn", seed=0)
    X, y = torch.rand(20, 1, 28, 28), torch.randint(0, 10, (20,))
    P = torch.softmax(model(X), 1)  # outside torch.no_grad(): it keeps gradients
    assert plot_misclassified(X, y, P) is not None and plot_samples(X.requires_grad_(), y) is not None
    OneVsRestExplorer(X.requires_grad_(), y, P)
    for data in (DataLoader(TensorDataset(X, y), 4), (X, y)):
        with pytest.raises(UserError) as refused:
            fit(model, data, make_config("quick", epochs=1), "cpu", progress=False)
        assert_japanese_message(refused.value)
        assert type(data).__name__ in str(refused.value)
    for call in (lambda: compare(None, {}), lambda: load_mnist(5)):
        with pytest.raises(UserError) as refused:
            call()
        assert_japanese_message(refused.value)


def test_right_answers_as_fractions_decimals_or_pandas_are_judged_right():
    from decimal import Decimal
    from fractions import Fraction

    import pandas as pd

    def as_fractions(C, k):  # 0/0 is 0, as the lesson decides
        return Fraction(int(C[k, k]), max(int(C[:, k].sum()), 1)), Fraction(int(C[k, k]), max(int(C[k, :].sum()), 1))

    def as_decimals(C, k):
        return (Decimal(int(C[k, k])) / Decimal(max(int(C[:, k].sum()), 1)),
                Decimal(int(C[k, k])) / Decimal(max(int(C[k, :].sum()), 1)))

    def as_series(C, k):
        TP, FP, FN = C[k, k], C[:, k].sum() - C[k, k], C[k, :].sum() - C[k, k]
        return pd.Series([TP, FP, FN, C.sum() - TP - FP - FN])

    for exercise, fn in ((ex.precision_recall, as_fractions), (ex.precision_recall, as_decimals), (ex.counts, as_series)):
        assert exercise.result(fn).status == "correct", exercise.result(fn).message


ROUND8_MISTAKES = {
    "load_mnist(val_size='5000')": lambda ml: ml["load_mnist"](val_size="5000"),
    "shuffled_batches(batch_size=0)": lambda ml: ml["shuffled_batches"](torch.zeros(4, 1, 28, 28), torch.arange(4), 0),
    "shuffled_batches(lists)": lambda ml: ml["shuffled_batches"]([1], [1], 2),
    "shuffled_batches(X, y[:2])": lambda ml: ml["shuffled_batches"](torch.zeros(4, 1, 28, 28), torch.arange(2), 2),
    "for_model('quick', 'mlp')": lambda ml: ml["for_model"]("quick", "mlp"),
    "preprocess_all(None)": lambda ml: ml["preprocess_all"](None),
    "non_digits(fonts=[no font])": lambda ml: ml["non_digits"](2, kinds=("letter",), fonts=["/etc/hostname"]),
    "checkpoint_size(None)": lambda ml: ml["checkpoint_size"](None),
    "energies(meta model)": lambda ml: ml["energies"](build_model("quick_cnn").to("meta"), torch.zeros(1, 1, 28, 28)),
    "history.column('acc')": lambda ml: History(records=[{"epoch": 1, "eval_accuracy": 0.5}]).column("acc"),
    "evaluation_mode([model])": lambda ml: ml["evaluation_mode"]([build_model("quick_cnn")]).__enter__(),
    "LiveCurves(points_per_epoch=0)": lambda ml: ml["LiveCurves"](points_per_epoch=0),
    "threshold_of(load_checkpoint(...))": lambda ml: ml["threshold_of"]((build_model("pad_cnn"), {})),
    "load_image(URL)": lambda ml: ml["load_image"]("https://example.com/seven.png"),
    "shifted(X, left=2)": lambda ml: ml["shifted"](torch.zeros(1, 1, 28, 28), left=2),
}


@pytest.mark.parametrize("mistake", list(ROUND8_MISTAKES))
def test_plausible_mistakes_with_the_lessons_functions_are_one_line(mistake):
    from mnist_lab import augment, callbacks, checkpoint, data, inference, ood, preprocess, recipes, synthetic

    functions = {"shifted": augment.shifted, "LiveCurves": callbacks.LiveCurves,
                 "checkpoint_size": checkpoint.checkpoint_size, "load_mnist": data.load_mnist,
                 "shuffled_batches": data.shuffled_batches, "evaluation_mode": inference.evaluation_mode,
                 "energies": ood.energies, "threshold_of": ood.threshold_of, "load_image": preprocess.load_image,
                 "preprocess_all": preprocess.preprocess_all, "for_model": recipes.for_model,
                 "non_digits": synthetic.non_digits}
    with pytest.raises(UserError) as refused:
        ROUND8_MISTAKES[mistake](functions)
    assert_japanese_message(refused.value)


def test_what_the_lessons_functions_can_read_they_read():
    from mnist_lab import best_device
    from mnist_lab.data import shuffled_batches
    from mnist_lab.ood import energies, most_confident
    from mnist_lab.preprocess import preprocess_all
    from mnist_lab.widgets import OneVsRestExplorer

    X, y = torch.rand(6, 1, 28, 28), torch.arange(6)
    assert [len(b[1]) for b in shuffled_batches(X, y, 4, 0)] == [4, 2]  # a seed instead of a generator
    assert best_device(torch.device("cpu")) == torch.device("cpu")
    OneVsRestExplorer(X, y, torch.softmax(torch.randn(6, 10), 1).tolist())
    blank, seven = Image.new("L", (50, 50), 255), Image.new("L", (50, 50), 255)
    seven.paste(0, (20, 5, 30, 45))
    assert preprocess_all(seven).shape == (1, 1, 28, 28)
    model = build_model("quick_cnn", seed=0)
    assert most_confident(model, [blank, seven, blank])[0] == 1  # a blank picture has nothing to read: skipped
    with pytest.raises(UserError) as refused:
        energies(model, [seven, blank])
    assert "1" in str(refused.value)  # which picture is blank
    ensemble = build_model("ensemble", seed=0)
    e = energies(ensemble, torch.randn(8, 1, 28, 28) * 3)
    assert e.abs().max() > 0.01 and e.std() > 0  # log-probabilities' log-sum-exp is 0: members' scores are used


ROUND9_MISTAKES = {
    "averaged(multiclass_accuracy, C)": lambda: M.averaged(M.multiclass_accuracy, np.eye(3, dtype=int), "macro"),
    "averaged(lambda c: 1, C)": lambda: M.averaged(lambda c: 1, np.eye(3, dtype=int), "weighted"),
    "summary(C holding None)": lambda: M.summary(np.array([[1, None], [0, 1]], dtype=object)),
    "build_model(seed=0)": lambda: build_model(seed=0),
    "plot_filters(model)": lambda: __import__("mnist_lab.plots").plots.plot_filters(MODEL),
    "plot_energies(empty)": lambda: __import__("mnist_lab.plots").plots.plot_energies(np.array([]), np.ones(3)),
    "AverageWeights(model, 1.5)": lambda: __import__("mnist_lab.callbacks").callbacks.AverageWeights(MODEL, 1.5),
    "TensorBoardLogger(None)": lambda: __import__("mnist_lab.callbacks").callbacks.TensorBoardLogger(None),
}


@pytest.mark.parametrize("mistake", list(ROUND9_MISTAKES))
def test_more_plausible_mistakes_say_themselves_what_to_pass(mistake, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as refused:
        ROUND9_MISTAKES[mistake]()
    assert_says_itself_what_to_pass(refused.value)
    assert not any(tmp_path.iterdir())  # nothing written (TensorBoardLogger(None) made a folder named None)


def test_averaged_still_averages_any_per_digit_metric():
    C = np.array([[3, 1, 0], [0, 4, 1], [1, 0, 5]])
    y_true, y_pred = np.repeat(np.arange(3), C.sum(1)), np.concatenate([np.repeat(np.arange(3), row) for row in C])
    for average in M.AVERAGES:
        assert M.averaged(M.f1, C, average) == pytest.approx(skm.f1_score(y_true, y_pred, average=average))
        assert M.averaged(lambda c: c.TP / (c.TP + c.FN), C, average) == pytest.approx(
            skm.recall_score(y_true, y_pred, average=average))


def test_a_half_precision_model_is_described_and_plotted_like_any_other():
    from mnist_lab.plots import plot_energies, plot_filters

    half = build_model("quick_cnn", seed=0).half()
    assert [row["出力の形"] for row in layer_table(half)] == [row["出力の形"] for row in layer_table(MODEL)]
    assert first_block(half) == first_block(MODEL)
    assert len(plot_filters(first_convolution(half)).axes) >= 16
    assert plot_energies(np.array([1.0, 2.0]), [3.0, 4.0], threshold=2.5).axes[0].patches  # arrays or lists


def test_a_misspelt_setting_variable_is_pointed_out_once_and_others_are_left_alone(capsys):
    from mnist_lab.recipes import make_config

    environ = {"MNIST_LAB_EPOCH": "1", "MNIST_LAB_DATA": "/x", "MNIST_LAB_GPU_MEMORY_SHARE": "0.2",
               "MNIST_LAB_DEBUG": "1", "MNIST_LAB_USER": "a", "MNIST_LAB_APP_CHECKPOINT": "m.pt", "MNIST_LAB_LR": "0.1"}
    assert make_config("quick", environ=environ).lr == 0.1
    make_config("quick", environ=environ)
    notes = capsys.readouterr().err.splitlines()
    assert len(notes) == 1 and "MNIST_LAB_EPOCH " in notes[0] and "MNIST_LAB_EPOCHS" in notes[0], notes


def _pair():
    return MODEL, {"model": "quick_cnn"}


ROUND10_MISTAKES = {
    "data.to('gpu')": lambda d, c: d.to("gpu"),
    "energies(RGB images)": lambda d, c: __import__("mnist_lab.ood").ood.energies(MODEL, torch.zeros(2, 3, 28, 28)),
    "read(32x32 images)": lambda d, c: __import__("mnist_lab.ood").ood.read(MODEL, torch.zeros(1, 1, 32, 32)),
    "build_model(['quick_cnn'])": lambda d, c: build_model(["quick_cnn"]),
    "build_model(config)": lambda d, c: build_model(c),
    "build_model(model)": lambda d, c: build_model(MODEL),
    "config.lr = 0.001": lambda d, c: setattr(c, "lr", 0.001),
    "config['lr']": lambda d, c: c["lr"],
    "normalize(normalised images)": lambda d, c: __import__("mnist_lab.data").data.normalize(d.X_test),
    "normalize(RGB)": lambda d, c: __import__("mnist_lab.data").data.normalize(torch.zeros(2, 3, 28, 28)),
    "evaluate((model, info), ...)": lambda d, c: evaluate(_pair(), d.X_test, d.y_test),
    "first_convolution((model, info))": lambda d, c: first_convolution(_pair()),
    "evaluate(model, X, y, device)": lambda d, c: evaluate(MODEL, d.X_test, d.y_test, "cpu"),
    "predict_proba(model, X, device)": lambda d, c: predict_proba(MODEL, d.X_test, torch.device("cpu")),
    "activations(model, X, ['no_layer'])": lambda d, c: __import__("mnist_lab.inference").inference.activations(
        MODEL, d.X_test, ["no_layer"]),
    "non_digits(100000)": lambda d, c: __import__("mnist_lab.synthetic").synthetic.non_digits(100_000),
}


@pytest.fixture(scope="module")
def small_data():
    from test_train import tiny_data

    return tiny_data(16)


@pytest.mark.parametrize("mistake", list(ROUND10_MISTAKES))
def test_what_students_try_next_is_one_short_line(mistake, small_data):
    from mnist_lab import make_config

    config = make_config("quick")
    with pytest.raises(UserError) as refused:
        ROUND10_MISTAKES[mistake](small_data, config)
    assert_says_itself_what_to_pass(refused.value)
    assert len(str(refused.value)) < 300 and config == make_config("quick")  # short; the recipe unchanged


def test_the_ways_a_student_means_it_work(small_data, capsys, monkeypatch):
    from mnist_lab import make_config
    from mnist_lab.data import normalize
    from mnist_lab.inference import activations

    config = make_config("quick", epochs=3)
    changed = make_config(config, lr=0.001)  # a recipe as the base: the other values kept
    assert changed.lr == 0.001 and changed.epochs == 3 and changed.model == config.model
    pixels = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8)
    X = normalize(pixels)
    for same in (pixels.numpy(), pixels.float(), pixels.float() / 255, pixels[:, None]):
        assert torch.allclose(normalize(same), X, atol=1e-6)
    assert list(activations(MODEL, small_data.X_test, "features.0.0")) == ["features.0.0"]  # one name alone
    monkeypatch.setattr("mnist_lab.inference._NOTED", set())  # as in a new kernel
    capsys.readouterr()
    evaluate(MODEL, small_data.X_test, small_data.y_test)
    assert not capsys.readouterr().err  # normalised images: nothing to point out
    raw = small_data.X_test * 0.3081 + 0.1307  # pixels in 0..1, never normalised
    assert evaluate(MODEL, raw, small_data.y_test) and evaluate(MODEL, raw, small_data.y_test)
    notes = capsys.readouterr().err.splitlines()
    assert len(notes) == 1 and JAPANESE.search(notes[0]), notes  # said once, the answer still given


def test_one_gpu_named_by_number_and_no_callbacks_as_none_are_understood():
    from test_train import tiny_data

    from mnist_lab import best_device, fit, make_config

    if torch.cuda.device_count() > 1:
        assert best_device("cuda:1") == torch.device("cuda", 1)
    else:  # a machine without a second GPU: told that it lacks it, not that "cuda:1" is no name
        with pytest.raises(UserError) as lacking:
            best_device("cuda:1")
        with pytest.raises(UserError) as nonsense:
            best_device("gpu")
        assert str(lacking.value) != str(nonsense.value)
    history = fit(build_model("quick", seed=0), tiny_data(64), make_config("quick", batch_size=16), "cpu",
                  callbacks=None, progress=False)
    assert len(history) == 1


ROUND12_MISTAKES = {
    "make_config('quick', 'lenet5')": lambda c: __import__("mnist_lab").make_config("quick", "lenet5"),
    "make_config('quick', 0.001)": lambda c: __import__("mnist_lab").make_config("quick", 0.001),
    "config['lr'] = 0.005": lambda c: c.__setitem__("lr", 0.005),
    "normalize(NaN images)": lambda c: __import__("mnist_lab.data").data.normalize(np.full((1, 28, 28), np.nan)),
    "evaluate(model, data)": lambda c: evaluate(MODEL, __import__("test_train").tiny_data(16)),
}


@pytest.mark.parametrize("mistake", list(ROUND12_MISTAKES))
def test_round_twelve_mistakes_are_one_line(mistake):
    from mnist_lab import make_config

    config = make_config("quick")
    with pytest.raises(UserError) as refused:
        ROUND12_MISTAKES[mistake](config)
    assert_says_itself_what_to_pass(refused.value)


def test_masks_and_sixteen_bit_pixels_are_normalised_as_pixels(monkeypatch):
    from mnist_lab import make_config
    from mnist_lab.data import normalize

    pixels = torch.randint(0, 256, (4, 28, 28), dtype=torch.uint8)
    mask = pixels > 128
    for same in (mask.numpy().astype(np.uint8), mask):  # a 0/1 mask in uint8 or bool: ink is 1, not 1/255
        assert torch.allclose(normalize(same), normalize(mask.float()))
    assert torch.allclose(normalize(pixels.numpy().astype(np.uint16) * 257), normalize(pixels), atol=1e-5)
    monkeypatch.setenv("MNIST_LAB_EPOCHS", "2")  # a class setting: it changes presets, never a recipe given
    mine = make_config("quick", epochs=5, environ={})
    assert make_config(mine).epochs == 5 and make_config(mine, lr=0.005).epochs == 5


def test_a_single_number_where_pictures_go_and_a_huge_threshold_are_one_line():
    from mnist_lab.ood import most_confident
    from mnist_lab.plots import plot_energies
    from mnist_lab.preprocess import preprocess_all

    for call in (lambda: most_confident(MODEL, torch.tensor(3)), lambda: preprocess_all(torch.tensor(3)),
                 lambda: plot_energies([1.0, 2.0], [3.0], threshold=10**400)):
        with pytest.raises(UserError) as refused:
            call()
        assert_japanese_message(refused.value)


PAUSE_IN_PYTORCH = """
import sys, time

class Pause:  # stands still halfway through PyTorch's import (after its C library has loaded), until ■
    def find_spec(self, name, path=None, target=None):
        if name == "torch.cpu":
            sys.meta_path.remove(self)
            open({reached!r}, "w").close()
            time.sleep(120)

sys.meta_path.insert(0, Pause())
"""


def test_the_stop_button_while_pytorch_loads_says_restart_the_kernel_every_time(tmp_path):
    """■ while the lesson's first cell loads PyTorch (the only place it can land: a 15-second [*] on a cold machine).
    PyTorch stays half loaded, so that cell, run again, and every later import of mnist_lab say the same one line
    (restart the kernel) instead of a traceback in English."""
    import json

    from jupyter_client.manager import start_new_kernel

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(repo, "main.ipynb"), encoding="utf-8") as f:
        first = next("".join(c["source"]) for c in json.load(f)["cells"] if c["cell_type"] == "code")
    reached = tmp_path / "reached"
    km, kc = start_new_kernel(kernel_name="python3", env={**os.environ, "PYTHONPATH": repo}, startup_timeout=120,
                              cwd=str(tmp_path))

    def press_stop():
        deadline = time.monotonic() + 120
        while not reached.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        km.interrupt_kernel()  # as JupyterLab's ■: SIGINT to the kernel

    errors = []
    try:
        kc.execute_interactive(PAUSE_IN_PYTORCH.format(reached=str(reached)), timeout=60)
        stop = threading.Thread(target=press_stop)
        stop.start()
        for code in (first, first, "from mnist_lab.data import load_mnist"):
            errors.append([])
            kc.execute_interactive(code, timeout=180, output_hook=lambda msg: errors[-1].append(msg["content"])
                                   if msg["msg_type"] == "error" else None)
        stop.join()
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert reached.exists()
    for said in errors:
        assert len(said) == 1 and len(said[0]["traceback"]) == 1, said  # one line, no traceback
        line = re.sub(r"\x1b\[[0-9;]*m", "", said[0]["traceback"][0])
        assert "\n" not in line and JAPANESE.search(line) and said[0]["evalue"] in line
    assert len({said[0]["evalue"] for said in errors}) == 1  # the same line each time
