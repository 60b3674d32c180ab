"""Exercises with checkers in the style of Kaggle's learntools: write a function, then ``ex.NAME.check(fn)``.

A check never raises, so the notebook still runs from top to bottom. It answers one of three ways:

- ``unwritten``: the function is still the template (returns ``None`` or raises ``NotImplementedError``);
- ``wrong``: a case gave another value (the message shows the case and a hint, not the formula);
- ``correct``.

``ex.NAME.hint()`` gives a hint, ``ex.NAME.solution()`` the answer. The reference answers are
:mod:`mnist_lab.metrics` itself, so the exercises and the library can never disagree.
"""

import html
import math

import numpy as np

from . import metrics as M

STYLE = {"correct": ("#2e7d32", "正解！"), "wrong": ("#c62828", "もう少し"),
         "unwritten": ("#1565c0", "まだ書かれていません"), "hint": ("#6a1b9a", "ヒント"),
         "solution": ("#455a64", "解答例")}


class Result:
    """What a check, hint or solution says: ``status`` and a Japanese ``message``; shown coloured in Jupyter."""

    def __init__(self, status, message):
        self.status, self.message = status, message

    def __repr__(self):
        return f"{STYLE[self.status][1]}: {self.message}"

    def _repr_html_(self):
        colour, label = STYLE[self.status]
        body = html.escape(self.message).replace("\n", "<br>")
        return f'<div style="color:{colour}"><b>{label}</b> {body}</div>'


def _same(got, want):
    if isinstance(want, tuple):
        return isinstance(got, (tuple, list)) and len(got) == len(want) and all(map(_same, got, want))
    try:
        return math.isclose(float(got), want, rel_tol=1e-6, abs_tol=1e-9)
    except (TypeError, ValueError):
        return False


def _show(value):
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(_show(v) for v in value) + ")"
    try:
        return f"{float(value):.6g}"
    except (TypeError, ValueError):
        return repr(value)


class Exercise:
    """One exercise: the cases a function must pass, the reference answer, a hint and a solution."""

    def __init__(self, name, reference, cases, describe, hint, solution):
        self.name, self.reference, self.cases = name, reference, cases
        self.describe, self._hint, self._solution = describe, hint, solution

    def check(self, fn):
        """Return a :class:`Result` for the student's ``fn``; never raises."""
        if not callable(fn):
            return Result("wrong", "check には関数そのものを渡してください（例: check(my_accuracy)、かっこは付けません）。")
        for args in self.cases:
            want = self.reference(*args)
            try:
                got = fn(*args)
            except NotImplementedError:
                return Result("unwritten", "関数の中身を書いてから、もう一度このセルを実行してください。")
            except Exception as e:  # noqa: BLE001 -- a student's code may fail in any way: say so, never stop the notebook
                return Result("wrong", f"{self.describe(*args)} でエラーになりました（{type(e).__name__}: {e}）。"
                                       f"\n{self._hint}")
            if got is None or got is Ellipsis:
                return Result("unwritten", "関数がまだ何も返していません。return で答えを返してください。")
            if not _same(got, want):
                return Result("wrong", f"{self.describe(*args)} のとき {_show(want)} になるはずが、"
                                       f"{_show(got)} が返りました。\n{self._hint}")
        return Result("correct", f"{len(self.cases)} 通りの入力で、すべて正しい値が返りました。")

    def hint(self):
        return Result("hint", self._hint)

    def solution(self):
        return Result("solution", self._solution)


def _counts_case(TP, FP, FN, TN):
    return f"TP={TP}, FP={FP}, FN={FN}, TN={TN}"


# FP != FN and TP != TN in every case, so swapped formulas fail
COUNT_CASES = [(50, 10, 5, 935), (3, 1, 2, 94), (970, 12, 9, 9009), (1, 4, 7, 88)]


def _from_counts(metric):
    return lambda TP, FP, FN, TN: metric(M.Counts(TP, FP, FN, TN))


def _counts_from_confusion(C, k):
    return tuple(M.one_vs_rest(np.asarray(C), k))


_C = np.array([[5, 1, 0], [2, 7, 1], [0, 3, 9]])

accuracy = Exercise(
    "accuracy", _from_counts(M.accuracy), COUNT_CASES, _counts_case,
    "正解率は「全部の予測のうち、当たった予測の割合」です。当たったのは TP と TN のどちらでしょう？両方でしょうか？",
    "return (TP + TN) / (TP + TN + FP + FN)")
precision = Exercise(
    "precision", _from_counts(M.precision), COUNT_CASES, _counts_case,
    "適合率は「陽性と予測したもののうち、本当に陽性だった割合」です。陽性と予測したのは TP と何でしょう？",
    "return TP / (TP + FP)")
recall = Exercise(
    "recall", _from_counts(M.recall), COUNT_CASES, _counts_case,
    "再現率は「本当に陽性のもののうち、陽性と予測できた割合」です。本当に陽性なのは TP と何でしょう？",
    "return TP / (TP + FN)")
f1 = Exercise(
    "f1", _from_counts(M.f1), COUNT_CASES, _counts_case,
    "F1 は適合率と再現率の調和平均 2PR / (P + R) です。まず関数の中で P と R を計算してみましょう。",
    "P, R = TP / (TP + FP), TP / (TP + FN)\nreturn 2 * P * R / (P + R)   # = 2TP / (2TP + FP + FN)")
specificity = Exercise(
    "specificity", _from_counts(M.specificity), COUNT_CASES, _counts_case,
    "特異度は「本当に陰性のもののうち、陰性と予測できた割合」です。再現率の陰性版です。",
    "return TN / (TN + FP)")
counts_from_confusion = Exercise(
    "counts_from_confusion", _counts_from_confusion, [(_C, 0), (_C, 1), (_C, 2)],
    lambda C, k: f"C={np.asarray(C).tolist()}, k={k}",
    "TP は C[k, k] です。FP は k 列目（k と予測したもの）の合計から TP を引いたもの、"
    "FN は k 行目（本当は k のもの）の合計から TP を引いたもの、TN は残り全部です。",
    "TP = C[k, k]\nFP = C[:, k].sum() - TP\nFN = C[k, :].sum() - TP\nTN = C.sum() - TP - FP - FN\n"
    "return TP, FP, FN, TN")

EXERCISES = {e.name: e for e in (accuracy, precision, recall, f1, specificity, counts_from_confusion)}
