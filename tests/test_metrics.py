"""mnist_lab.metrics against scikit-learn as the oracle, on random and degenerate label sets."""

import warnings

import numpy as np
import pytest
import sklearn.metrics as skm
from hypothesis import given, settings
from hypothesis import strategies as st

from mnist_lab import metrics as M

TOL = 1e-12


def sklearn_scores(y_true, y_pred, k):
    """Every number our module computes, as sklearn computes it (zero_division left at its default)."""
    labels = list(range(k))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = {"accuracy": skm.accuracy_score(y_true, y_pred)}
        for avg in (None, "macro", "micro", "weighted"):
            p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, average=avg)
            out[avg] = (p, r, f, s)
        out["cm"] = skm.confusion_matrix(y_true, y_pred, labels=labels)
    return out


def assert_matches_sklearn(y_true, y_pred, k):
    expected = sklearn_scores(y_true, y_pred, k)
    C = M.confusion_matrix(y_true, y_pred, num_classes=k)
    np.testing.assert_array_equal(C, expected["cm"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", M.UndefinedMetricWarning)
        assert abs(M.multiclass_accuracy(C) - expected["accuracy"]) <= TOL
        table = M.classification_table(C)
        p, r, f, s = expected[None]
        np.testing.assert_allclose(table["precision"], p, rtol=0, atol=TOL)
        np.testing.assert_allclose(table["recall"], r, rtol=0, atol=TOL)
        np.testing.assert_allclose(table["f1"], f, rtol=0, atol=TOL)
        np.testing.assert_array_equal(table["support"], s)
        for avg in ("macro", "micro", "weighted"):
            p, r, f, _ = expected[avg]
            for metric, want in ((M.precision, p), (M.recall, r), (M.f1, f)):
                assert abs(M.averaged(metric, C, avg) - want) <= TOL, (metric.__name__, avg)


def test_random_labels_match_sklearn():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(1, 500))
        y_true, y_pred = rng.integers(0, 10, n), rng.integers(0, 10, n)
        assert_matches_sklearn(y_true, y_pred, 10)


@pytest.mark.parametrize("y_true, y_pred", [
    ([0, 1, 2, 3], [0, 1, 2, 2]),           # class 3 never predicted
    ([0, 0, 1, 1], [0, 0, 1, 1]),           # classes 2..9 never present nor predicted
    ([5, 5, 5, 5], [5, 5, 5, 5]),           # all one class, all right
    ([5, 5, 5, 5], [3, 3, 3, 3]),           # all one class, all wrong
    ([7], [2]),                             # a single sample
    ([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [9, 0, 1, 2, 3, 4, 5, 6, 7, 8]),  # everything wrong
])
def test_degenerate_label_sets_match_sklearn(y_true, y_pred):
    assert_matches_sklearn(np.array(y_true), np.array(y_pred), 10)


labels = st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9)), min_size=1, max_size=200)


@settings(max_examples=200, deadline=None)
@given(labels)
def test_property_matches_sklearn(pairs):
    y_true, y_pred = (np.array(v) for v in zip(*pairs))
    assert_matches_sklearn(y_true, y_pred, 10)


@settings(max_examples=100, deadline=None)
@given(labels)
def test_property_counts_partition_every_sample(pairs):
    y_true, y_pred = (np.array(v) for v in zip(*pairs))
    C = M.confusion_matrix(y_true, y_pred)
    for k in range(10):
        c = M.one_vs_rest(C, k)
        assert c.TP + c.FP + c.FN + c.TN == len(y_true)
        assert c.TP == np.sum((y_true == k) & (y_pred == k))
        assert c.FP == np.sum((y_true != k) & (y_pred == k))
        assert c.FN == np.sum((y_true == k) & (y_pred != k))
    np.testing.assert_array_equal(M.class_counts(C).TN, [M.one_vs_rest(C, k).TN for k in range(10)])


def test_a_digit_taken_from_a_tensor_counts_like_an_int():
    """``k = y_hat[0]`` or ``data.y_test[0]`` (0-d tensors) is the digit, as ``np.int64(7)`` is; a bool, a fraction, a
    tensor of several numbers or a digit out of range is still refused in one line."""
    import torch
    from invariants import assert_japanese_message

    rng = np.random.default_rng(2)
    C = M.confusion_matrix(rng.integers(0, 10, 300), rng.integers(0, 10, 300))
    for k in (torch.tensor(7), torch.tensor(7, dtype=torch.uint8), np.array(7), np.int64(7)):
        assert M.one_vs_rest(C, k) == M.one_vs_rest(C, 7)
    for bad in (torch.tensor(True), np.bool_(True), torch.tensor(7.0), torch.tensor([7]), np.array([7]), torch.tensor(10)):
        with pytest.raises(M.MetricInputError) as refused:
            M.one_vs_rest(C, bad)
        assert_japanese_message(refused.value)


def test_one_vs_rest_accuracy_matches_binary_sklearn():
    rng = np.random.default_rng(1)
    y_true, y_pred = rng.integers(0, 10, 300), rng.integers(0, 10, 300)
    C = M.confusion_matrix(y_true, y_pred)
    for k in range(10):
        want = skm.accuracy_score(y_true == k, y_pred == k)
        assert abs(M.one_vs_rest_accuracy(M.one_vs_rest(C, k)) - want) <= TOL


def test_zero_division_gives_zero_and_warns():
    C = M.confusion_matrix([0, 1], [0, 0], num_classes=3)  # class 1 never predicted, class 2 absent
    with pytest.warns(M.UndefinedMetricWarning, match="precision"):
        assert M.precision(M.one_vs_rest(C, 1)) == 0.0
    with pytest.warns(M.UndefinedMetricWarning, match="f1"):
        assert M.f1(M.one_vs_rest(C, 2)) == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert M.recall(M.one_vs_rest(C, 0)) == 1.0  # well defined: no warning


def test_table_has_the_documented_columns():
    table = M.classification_table(M.confusion_matrix([0, 1, 2], [0, 1, 1]))
    assert list(table.columns) == ["TP", "FP", "FN", "TN", "precision", "recall", "f1", "support"]
    assert list(table.index) == list(range(10))


def test_summary_matches_classification_report():
    rng = np.random.default_rng(2)
    y_true = rng.integers(0, 10, 1000)
    y_pred = np.where(rng.random(1000) < 0.8, y_true, rng.integers(0, 10, 1000))
    report = skm.classification_report(y_true, y_pred, output_dict=True)
    s = M.summary(M.confusion_matrix(y_true, y_pred))
    assert abs(s["accuracy"] - report["accuracy"]) <= TOL
    assert abs(s["f1_macro"] - report["macro avg"]["f1-score"]) <= TOL
    assert abs(s["recall_weighted"] - report["weighted avg"]["recall"]) <= TOL


def test_confusion_matrix_rejects_bad_labels():
    for y_true, y_pred in (([0, 10], [0, 1]), ([0, 1], [0]), ([0, 1], [0.5, 1])):
        with pytest.raises(M.MetricInputError):
            M.confusion_matrix(y_true, y_pred)
    with pytest.raises(ValueError):  # a MetricInputError is a ValueError too
        M.averaged(M.precision, np.eye(2, dtype=int), "median")
