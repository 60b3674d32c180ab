"""Classification metrics, built the way scikit-learn builds them: counts first, then one-line formulas.

1. The confusion matrix ``C``: ``C[i, j]`` counts the images of true digit ``i`` predicted as ``j``
   (rows = true, columns = predicted).
2. For one digit ``k`` against the rest ("one-vs-rest"), four counts:

   - TP (true positive):  true ``k``, predicted ``k``       = ``C[k, k]``
   - FP (false positive): true not ``k``, predicted ``k``   = column ``k`` minus TP
   - FN (false negative): true ``k``, predicted not ``k``   = row ``k`` minus TP
   - TN (true negative):  neither                          = everything else

3. Every metric is a formula over those counts (:func:`accuracy`, :func:`precision`, :func:`recall`, :func:`f1`,
   :func:`specificity`);
   a 0/0 is decided in one place, :func:`_divide`: the result is 0 and an :class:`UndefinedMetricWarning` is issued,
   as scikit-learn does by default.
4. Averages over the ten digits: ``macro`` (plain mean), ``weighted`` (mean weighted by support, the number of true
   images of each digit) and ``micro`` (sum the counts first, then apply the formula).

>>> C = confusion_matrix([0, 0, 1, 1, 2], [0, 1, 1, 1, 1], num_classes=3)
>>> C
array([[1, 1, 0],
       [0, 2, 0],
       [0, 1, 0]])
>>> one_vs_rest(C, 1)
Counts(TP=2, FP=2, FN=0, TN=1)
>>> precision(one_vs_rest(C, 1)), recall(one_vs_rest(C, 1))
(0.5, 1.0)
"""

import warnings
from typing import NamedTuple

import numpy as np
import pandas as pd

AVERAGES = ("macro", "micro", "weighted")


class UndefinedMetricWarning(UserWarning):
    """A metric's denominator was 0 (e.g. precision of a digit never predicted); the value was set to 0."""


class Counts(NamedTuple):
    """One-vs-rest counts; each field is an int (one digit) or an array with one entry per digit."""

    TP: object
    FP: object
    FN: object
    TN: object


def _labels(y):
    return np.asarray(y).ravel().astype(np.int64)


def confusion_matrix(y_true, y_pred, num_classes=10):
    """Return ``C`` (int64, ``num_classes`` x ``num_classes``) with ``C[i, j]`` = #(true ``i``, predicted ``j``).

    Accepts lists, NumPy arrays or CPU tensors of integer labels.
    """
    y_true, y_pred = _labels(y_true), _labels(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} labels but y_pred has {y_pred.size}")
    for y in (y_true, y_pred):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"labels must lie in 0..{num_classes - 1}")
    return np.bincount(num_classes * y_true + y_pred, minlength=num_classes**2).reshape(num_classes, num_classes)


def one_vs_rest(C, k):
    """Return the :class:`Counts` of digit ``k`` against all other digits."""
    TP = int(C[k, k])
    FP = int(C[:, k].sum()) - TP
    FN = int(C[k, :].sum()) - TP
    return Counts(TP, FP, FN, int(C.sum()) - TP - FP - FN)


def class_counts(C):
    """Return the :class:`Counts` of every digit at once, as arrays indexed by digit."""
    TP = np.diag(C)
    FP = C.sum(axis=0) - TP
    FN = C.sum(axis=1) - TP
    return Counts(TP, FP, FN, C.sum() - TP - FP - FN)


def _divide(numerator, denominator, metric):
    """Return numerator / denominator, with 0 (and one UndefinedMetricWarning) wherever the denominator is 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    zero = denominator == 0
    if zero.any():
        warnings.warn(f"{metric} is 0/0 for {int(zero.sum())} class(es) and was set to 0.0",
                      UndefinedMetricWarning, stacklevel=3)
    result = np.where(zero, 0.0, numerator / np.where(zero, 1.0, denominator))
    return float(result) if result.ndim == 0 else result


def accuracy(c):
    """(TP + TN) / (TP + TN + FP + FN): the share of all predictions that were right."""
    return _divide(c.TP + c.TN, c.TP + c.TN + c.FP + c.FN, "accuracy")


def precision(c):
    """TP / (TP + FP): of the images predicted as the digit, the share that really were it."""
    return _divide(c.TP, c.TP + c.FP, "precision")


def recall(c):
    """TP / (TP + FN): of the images that really were the digit, the share predicted as it."""
    return _divide(c.TP, c.TP + c.FN, "recall")


def f1(c):
    """2 TP / (2 TP + FP + FN): the harmonic mean of precision and recall."""
    return _divide(2 * c.TP, 2 * c.TP + c.FP + c.FN, "f1")


def specificity(c):
    """TN / (TN + FP): of the images that were not the digit, the share predicted as not it."""
    return _divide(c.TN, c.TN + c.FP, "specificity")


def multiclass_accuracy(C):
    """trace(C) / sum(C): the share of all images whose digit was predicted right (sklearn's accuracy_score)."""
    return _divide(np.trace(C), C.sum(), "accuracy")


METRICS = {"precision": precision, "recall": recall, "f1": f1}


def averaged(metric, C, average):
    """Return ``metric`` (a function of Counts) over all digits: ``macro``, ``micro`` or ``weighted``.

    >>> C = np.array([[3, 1], [0, 4]])
    >>> round(averaged(precision, C, "macro"), 4), averaged(precision, C, "micro")
    (0.9, 0.875)
    """
    c = class_counts(C)
    if average == "micro":
        return metric(Counts(*(x.sum() for x in c)))
    per_class = metric(c)
    if average == "macro":
        return float(per_class.mean())
    if average == "weighted":
        support = c.TP + c.FN
        return _divide((per_class * support).sum(), support.sum(), "weighted average")
    raise ValueError(f"average must be one of {AVERAGES}, not {average!r}")


def classification_table(C):
    """Return a DataFrame with one row per digit: ``TP, FP, FN, TN, precision, recall, f1, support``."""
    c = class_counts(C)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)  # 0 is the documented value; the table shows it
        scores = {name: metric(c) for name, metric in METRICS.items()}
    table = pd.DataFrame({"TP": c.TP, "FP": c.FP, "FN": c.FN, "TN": c.TN, **scores, "support": c.TP + c.FN})
    table.index.name = "digit"
    return table


def averages_table(C):
    """Return a DataFrame of precision, recall and f1 averaged three ways (rows ``macro``, ``micro``, ``weighted``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        rows = {avg: {name: averaged(metric, C, avg) for name, metric in METRICS.items()} for avg in AVERAGES}
    return pd.DataFrame(rows).T


def summary(C):
    """Return a flat dict of the headline numbers: accuracy and every averaged metric (for ``metrics.json``)."""
    flat = {"accuracy": multiclass_accuracy(C)}
    flat.update({f"{name}_{avg}": float(value) for avg, row in averages_table(C).iterrows() for name, value in row.items()})
    return flat
