"""Classification metrics, built the way scikit-learn builds them: counts first, then one-line formulas.

1. The confusion matrix ``C``: ``C[i, j]`` counts the images of true digit ``i`` predicted as ``j``
   (rows = true, columns = predicted).
2. For one digit ``k`` against the rest ("one-vs-rest"), four counts:

   - TP (true positive):  true ``k``, predicted ``k``       = ``C[k, k]``
   - FP (false positive): true not ``k``, predicted ``k``   = column ``k`` minus TP
   - FN (false negative): true ``k``, predicted not ``k``   = row ``k`` minus TP
   - TN (true negative):  neither                          = everything else

3. Every metric is a formula over those counts (:func:`one_vs_rest_accuracy`, :func:`precision`, :func:`recall`, :func:`f1`,
   :func:`specificity`);
   a 0/0 is decided in one place, :func:`_divide`: the result is 0 and an :class:`UndefinedMetricWarning` is issued,
   as scikit-learn does by default.
4. Every function a student calls checks its arguments first: anything that is not what it needs (strings,
   ``None``, probabilities, fractions that would be truncated, labels outside 0-9, a matrix that is not square or
   holds negative counts) is a :class:`MetricInputError` (a ``ValueError``) whose message is one Japanese line
   saying what is wrong.
5. Averages over the ten digits: ``macro`` (plain mean), ``weighted`` (mean weighted by support, the number of true
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

from .errors import UserError, short, whole_number

AVERAGES = ("macro", "micro", "weighted")


class UndefinedMetricWarning(UserWarning):
    """A metric's denominator was 0 (e.g. precision of a digit never predicted); the value was set to 0."""


class Counts(NamedTuple):
    """One-vs-rest counts; each field is an int (one digit) or an array with one entry per digit.

    Introduced in the lesson: main.ipynb §7.
    """

    TP: object
    FP: object
    FN: object
    TN: object


class MetricInputError(UserError, ValueError):
    """An argument a metric cannot use (strings, None, probabilities, a matrix that is no confusion matrix...),
    explained in one Japanese line."""


def _array(x, name):
    """Return ``x`` (list, tuple, NumPy array or tensor, also on a GPU) as a NumPy array of numbers."""
    if x is None:
        raise MetricInputError(f"{name} が None です。関数が値を return しているか確かめてください。")
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, wherever it lives
        try:
            x = x.detach().cpu()
            x = (x.float() if str(x.dtype) == "torch.bfloat16" else x).numpy()  # NumPy has no bfloat16
        except Exception as e:  # a tensor with no values (device="meta"), of a type NumPy lacks...
            raise MetricInputError(f"{name} のテンソル（{short(getattr(x, 'dtype', ''))}, "
                                   f"{short(getattr(x, 'device', ''))}）から値を取り出せません。"
                                   "値の入った整数のテンソル（例: y_hat = probs.argmax(1)）を渡してください。") from e
    if isinstance(x, (str, bytes)):
        raise MetricInputError(f"{name} が文字列 {short(x)} です。数の配列を渡してください。")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            array = np.asarray(x)
            array = array if type(array) is np.ndarray else np.asarray(array).view(np.ndarray)  # np.matrix
        if array.dtype == object and any(v is None for v in array.ravel()):
            raise MetricInputError(f"{name} に None が入っています。関数が値を return しているか、表に空きがないか確かめてください。")
        if array.dtype == object:
            array = array.astype(np.float64)
    except MetricInputError:
        raise
    except Exception as e:  # whatever an odd object raises, the student is told what it is
        raise MetricInputError(f"{name} を数の配列にできません（長さの違う行や、数でない値 {short(x)} が入っています）。") from e
    if array.dtype.kind in "USa":
        example = f"（例: {short(array.ravel()[0])}）" if array.size else ""
        raise MetricInputError(f"{name} に文字列{example}が入っています。int(...) などで整数にしてから渡してください。")
    if array.dtype.kind == "b":
        raise MetricInputError(f"{name} が True/False の配列です。0〜9 のような数の配列を渡してください。")
    if array.dtype.kind not in "iuf":
        raise MetricInputError(f"{name} の値の型 {array.dtype} は数ではありません。数の配列を渡してください。")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise MetricInputError(f"{name} に NaN か無限大が入っています。数だけの配列を渡してください。")
    return array


def _integers(array, name, what):
    """Return a float array whose values are all whole numbers as int64; refuse one that would be truncated."""
    if array.dtype.kind == "f":
        fractional = array[array != np.floor(array)]
        if fractional.size:
            raise MetricInputError(f"{name} に小数 {fractional[0]:g} が入っています。{what}")
        if array.size and np.abs(array).max() >= 2**53:
            raise MetricInputError(f"{name} の値 {np.abs(array).max():g} は大きすぎます。")
    return array.astype(np.int64) if array.dtype != np.uint64 or not array.size or array.max() < 2**63 else array


def checked_labels(y, name="y", num_classes=10):
    """Return the labels ``y`` as a 1-D int64 array, each in ``0..num_classes-1``; else MetricInputError."""
    y = _array(y, name)
    if y.ndim == 2 and y.shape[1] == num_classes and y.shape[0] and y.dtype.kind == "f":
        raise MetricInputError(f"{name} は確率（またはスコア）の表 {y.shape} です。数字にするには {name}.argmax(1) を渡してください。")
    if y.ndim == 0:
        raise MetricInputError(f"{name} が 1 つの数 {short(y.item())} です。ラベルの配列（リストなど）を渡してください。")
    if y.ndim > 1 and sum(n > 1 for n in y.shape) > 1:
        raise MetricInputError(f"{name} の形 {y.shape} は扱えません。1 次元のラベルの配列を渡してください。")
    y = _integers(y.ravel(), name, "ラベルは 0〜9 のような整数です（小数を整数にすると切り捨てられてしまいます）。"
                  "予測の確率なら .argmax(1) で数字にしてください。")
    outside = y[(y < 0) | (y >= num_classes)]
    if outside.size:
        raise MetricInputError(f"{name} に {outside[0]} が入っています。ラベルは 0〜{num_classes - 1} の整数にしてください。")
    return y.astype(np.int64)


def checked_matrix(C):
    """Return ``C`` as a square int64 matrix of counts; MetricInputError saying what is wrong otherwise."""
    C = _array(C, "C")
    if C.ndim == 1:
        raise MetricInputError(f"C が 1 次元の配列 {C.shape} です。混同行列（2 次元の表）を渡してください"
                               "（ラベルからなら confusion_matrix(y_true, y_pred) で作れます）。")
    if C.ndim != 2 or C.shape[0] != C.shape[1] or not C.size:
        raise MetricInputError(f"C の形 {C.shape} は混同行列ではありません。行と列が同じ数の 2 次元の表（10 × 10 など）を渡してください。")
    C = _integers(C, "C", "混同行列は枚数の表なので整数です（割合にした表ではなく、枚数の表を渡してください）。")
    if (C < 0).any():
        raise MetricInputError(f"C に負の数 {C[C < 0][0]} があります。混同行列は枚数の表なので 0 以上です。")
    if float(C.sum(dtype=np.float64)) >= 2**62:
        raise MetricInputError("C の枚数の合計が大きすぎます。")
    return C.astype(np.int64)


def _digit(k, C):
    value = whole_number(k)  # an int, a NumPy integer, or one of y_hat's elements (a 0-d tensor)
    if value is None or not 0 <= value < len(C):
        raise MetricInputError(f"k は 0〜{len(C) - 1} の整数（数字）にしてください（今は {short(k)}）。")
    return value


_MISSING = object()


def confusion_matrix(y_true, y_pred=_MISSING, num_classes=10):
    """Return ``C`` (int64, ``num_classes`` x ``num_classes``) with ``C[i, j]`` = #(true ``i``, predicted ``j``).

    Accepts lists, NumPy arrays or tensors of integer labels; anything else is a :class:`MetricInputError` saying
    what is wrong (strings, None, probabilities, fractions, labels outside ``0..num_classes-1``, unequal lengths).

    Introduced in the lesson: main.ipynb §7.
    """
    if y_pred is _MISSING:
        raise MetricInputError("confusion_matrix には正解と予測の 2 つを渡してください（例: confusion_matrix(y, y_hat)）。")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or not 1 <= num_classes <= 1000:
        raise MetricInputError(f"num_classes は 1〜1000 の整数にしてください（今は {short(num_classes)}）。")
    y_true, y_pred = checked_labels(y_true, "y_true", num_classes), checked_labels(y_pred, "y_pred", num_classes)
    if y_true.shape != y_pred.shape:
        raise MetricInputError(f"y_true は {y_true.size} 個、y_pred は {y_pred.size} 個です。同じ画像の正解と予測を、同じ数だけ渡してください。")
    return np.bincount(num_classes * y_true + y_pred, minlength=num_classes**2).reshape(num_classes, num_classes)


def one_vs_rest(C, k):
    """Return the :class:`Counts` of digit ``k`` against all other digits.

    Introduced in the lesson: main.ipynb §7.
    """
    C = checked_matrix(C)
    k = _digit(k, C)
    TP = int(C[k, k])
    FP = int(C[:, k].sum()) - TP
    FN = int(C[k, :].sum()) - TP
    return Counts(TP, FP, FN, int(C.sum()) - TP - FP - FN)


def class_counts(C):
    """Return the :class:`Counts` of every digit at once, as arrays indexed by digit."""
    C = checked_matrix(C)
    TP = np.diag(C)
    FP = C.sum(axis=0) - TP
    FN = C.sum(axis=1) - TP
    return Counts(TP, FP, FN, C.sum() - TP - FP - FN)


def _as_counts(c):
    """Return ``c`` (Counts, or any 4 values TP, FP, FN, TN) as Counts of whole, non-negative numbers."""
    if not isinstance(c, (tuple, list)) or len(c) != 4:
        raise MetricInputError(f"Counts（TP, FP, FN, TN の 4 つ）を渡してください（今は {short(c)}）。"
                               "one_vs_rest(C, k) が返すものです。")
    fields = []
    for name, value in zip(Counts._fields, c):
        array = _integers(_array(value, name), name, "TP・FP・FN・TN は枚数なので整数です。")
        if (array < 0).any():
            raise MetricInputError(f"{name} が負の数です。TP・FP・FN・TN は枚数なので 0 以上です。")
        fields.append(int(array) if array.ndim == 0 else array)
    return Counts(*fields)


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


def one_vs_rest_accuracy(c):
    """(TP + TN) / (TP + TN + FP + FN): of all images, the share rightly called the digit or not the digit.

    This is one digit against the rest; the accuracy over all ten digits is :func:`multiclass_accuracy`.

    Introduced in the lesson: main.ipynb §7.
    """
    c = _as_counts(c)
    return _divide(c.TP + c.TN, c.TP + c.TN + c.FP + c.FN, "one-vs-rest accuracy")


def accuracy(c):
    """The older name of :func:`one_vs_rest_accuracy`, kept so that a lesson saved before the rename still runs."""
    return one_vs_rest_accuracy(c)


def precision(c):
    """TP / (TP + FP): of the images predicted as the digit, the share that really were it."""
    c = _as_counts(c)
    return _divide(c.TP, c.TP + c.FP, "precision")


def recall(c):
    """TP / (TP + FN): of the images that really were the digit, the share predicted as it.

    Introduced in the lesson: main.ipynb §7.
    """
    c = _as_counts(c)
    return _divide(c.TP, c.TP + c.FN, "recall")


def f1(c):
    """2 TP / (2 TP + FP + FN): the harmonic mean of precision and recall."""
    c = _as_counts(c)
    return _divide(2 * c.TP, 2 * c.TP + c.FP + c.FN, "f1")


def specificity(c):
    """TN / (TN + FP): of the images that were not the digit, the share predicted as not it."""
    c = _as_counts(c)
    return _divide(c.TN, c.TN + c.FP, "specificity")


def multiclass_accuracy(C):
    """trace(C) / sum(C): the share of all images whose digit was predicted right, over all ten digits (sklearn's
    accuracy_score; ``summary(C)["accuracy"]``, :func:`mnist_lab.inference.evaluate` and ``test_accuracy``)."""
    C = checked_matrix(C)
    return _divide(np.trace(C), C.sum(), "accuracy")


METRICS = {"precision": precision, "recall": recall, "f1": f1}


def _metric_values(metric, counts, shape):
    """Return ``metric(counts)`` as a float array of ``shape``; MetricInputError naming what the metric must be."""
    what = ("averaged の metric は precision・recall・f1 のように Counts（TP, FP, FN, TN）を受け取り、数字ごとの値を"
            "返す関数にしてください（multiclass_accuracy のように C を受け取るものは、multiclass_accuracy(C) と直接呼びます）")
    name = getattr(metric, "__name__", None) or short(metric)
    try:
        values = np.asarray(metric(counts), dtype=np.float64)
    except Exception as e:  # whatever the metric raised, the student is told what it must be
        raise MetricInputError(f"{what}（{name} に Counts を渡すと失敗しました）。") from e
    if values.shape != shape:
        raise MetricInputError(f"{what}（{name} の結果の形が {values.shape} で、{shape} ではありません）。")
    return values


def averaged(metric, C, average):
    """Return ``metric`` (a function of Counts) over all digits: ``macro``, ``micro`` or ``weighted``.

    >>> C = np.array([[3, 1], [0, 4]])
    >>> round(averaged(precision, C, "macro"), 4), averaged(precision, C, "micro")
    (0.9, 0.875)
    """
    if not isinstance(average, str) or average not in AVERAGES:
        raise MetricInputError(f"average は {', '.join(map(repr, AVERAGES))} のどれかにしてください（今は {short(average)}）。")
    if not callable(metric):
        raise MetricInputError(f"metric には precision・recall・f1 のような関数そのものを渡してください（今は {short(metric)}）。")
    c = class_counts(C)
    if average == "micro":
        return float(_metric_values(metric, Counts(*(x.sum() for x in c)), ()))
    per_class = _metric_values(metric, c, c.TP.shape)
    if average == "macro":
        return float(per_class.mean())
    support = c.TP + c.FN  # weighted
    return _divide((per_class * support).sum(), support.sum(), "weighted average")


def classification_table(C):
    """Return a DataFrame with one row per digit: ``TP, FP, FN, TN, precision, recall, f1, support``.

    Introduced in the lesson: main.ipynb §7.
    """
    c = class_counts(C)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)  # 0 is the documented value; the table shows it
        scores = {name: metric(c) for name, metric in METRICS.items()}
    table = pd.DataFrame({"TP": c.TP, "FP": c.FP, "FN": c.FN, "TN": c.TN, **scores, "support": c.TP + c.FN})
    table.index.name = "digit"
    return table


def averages_table(C):
    """Return a DataFrame of precision, recall and f1 averaged three ways (rows ``macro``, ``micro``, ``weighted``)."""
    C = checked_matrix(C)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        rows = {avg: {name: averaged(metric, C, avg) for name, metric in METRICS.items()} for avg in AVERAGES}
    return pd.DataFrame(rows).T


def summary(C):
    """Return a flat dict of the headline numbers: accuracy and every averaged metric."""
    C = checked_matrix(C)
    flat = {"accuracy": multiclass_accuracy(C)}
    flat.update({f"{name}_{avg}": float(value) for avg, row in averages_table(C).iterrows() for name, value in row.items()})
    return flat
