"""Exercises with checkers in the style of Kaggle's learntools: write a function, then ``ex.NAME.check(fn)``.

A check never raises, so the notebook still runs from top to bottom. It shows one of three verdicts:

- ``unwritten``: the function is still the template (no ``return``, returns ``None``, or raises
  ``NotImplementedError``);
- ``wrong``: a case gave another value (the message shows the case and a hint, never the formula);
- ``correct``.

``ex.NAME.hint()`` shows a hint (a question, not the answer), ``ex.NAME.solution()`` the answer as code. Each shows
itself at once, so a check and a hint in one cell are both seen. The reference answers are :mod:`mnist_lab.metrics`
itself, so the exercises and the library can never disagree. ``ex.NAME.result(fn)`` returns the verdict instead.
"""

import ast
import html
import inspect
import math
import textwrap
import warnings

import numpy as np

from . import metrics as M

STYLE = {"correct": ("#2e7d32", "正解！"), "wrong": ("#c62828", "もう少し"),
         "unwritten": ("#1565c0", "まだ書かれていません"), "hint": ("#6a1b9a", "ヒント"),
         "solution": ("#455a64", "解答例")}


class Result:
    """What a check, hint or solution says: ``status`` and a Japanese ``message``; shown coloured in Jupyter
    (a solution as a code block)."""

    def __init__(self, status, message):
        self.status, self.message = status, message

    def __repr__(self):
        return f"{STYLE[self.status][1]}: {self.message}"

    def _repr_html_(self):
        colour, title = STYLE[self.status]
        if self.status == "solution":
            return (f'<div style="color:{colour}"><b>{title}</b><pre style="font-family:monospace;'
                    f'background:#f5f5f5;padding:6px">{html.escape(self.message)}</pre></div>')
        body = html.escape(self.message).replace("\n", "<br>")
        return f'<div style="color:{colour}"><b>{title}</b> {body}</div>'


def show(result):
    """Show ``result`` now: as HTML in Jupyter, as a line of text elsewhere."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display(result)
    else:
        print(repr(result))


def _same(got, want):
    if isinstance(want, tuple):
        return isinstance(got, (tuple, list)) and len(got) == len(want) and all(map(_same, got, want))
    try:
        return math.isclose(float(got), want, rel_tol=1e-6, abs_tol=1e-9)
    except (TypeError, ValueError):
        return False


def _show_value(value):
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(_show_value(v) for v in value) + ")"
    try:
        return f"{float(value):.6g}"
    except (TypeError, ValueError):
        return repr(value)


def has_no_return(fn):
    """Whether ``fn``'s source has no ``return`` with a value (``False`` for a lambda, or when the source cannot be
    read)."""
    if getattr(fn, "__name__", "") == "<lambda>":
        return False
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError, IndentationError):
        return False
    return not any(isinstance(node, ast.Return) and node.value is not None for node in ast.walk(tree))


class Exercise:
    """One exercise: the cases a function must pass, the reference answer, a hint and a solution."""

    def __init__(self, name, reference, cases, describe, hint, solution):
        self.name, self.reference, self.cases = name, reference, cases
        self.describe, self._hint, self._solution = describe, hint, solution

    def result(self, fn):
        """Return the :class:`Result` for the student's ``fn``; never raises."""
        if not callable(fn):
            return Result("wrong", "check には関数そのものを渡してください（例: check(my_counts)、かっこは付けません）。")
        if has_no_return(fn):
            return Result("unwritten", "return がありません。計算した答えを return で返してください。")
        for args in self.cases:
            verdict = self._verdict(fn, args)
            if verdict is not None:
                return verdict
        return Result("correct", f"{len(self.cases)} 通りの入力で、すべて正しい値が返りました。")

    def _verdict(self, fn, args):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", M.UndefinedMetricWarning)
            want = self.reference(*args)
        try:
            got = fn(*args)
        except NotImplementedError:
            return Result("unwritten", "関数の中身を書いてから、もう一度このセルを実行してください。")
        except Exception as e:  # noqa: BLE001 -- a student's code may fail in any way: say so, never stop the notebook
            return Result("wrong", f"{self.describe(*args)} でエラーになりました（{type(e).__name__}: {e}）。\n{self._hint}")
        if got is None or got is Ellipsis:
            return Result("unwritten", "関数がまだ何も返していません。return で答えを返してください。")
        if not _same(got, want):
            return Result("wrong", f"{self.describe(*args)} のとき {_show_value(want)} になるはずが、"
                                   f"{_show_value(got)} が返りました。\n{self._hint}")
        return None

    def check(self, fn):
        """Show the verdict for ``fn`` (see :meth:`result`)."""
        show(self.result(fn))

    def hint(self):
        show(Result("hint", self._hint))

    def solution(self):
        show(Result("solution", self._solution))


def _matrix_case(C, *rest):
    return f"C={np.asarray(C).tolist()}" + "".join(f", k={k}" for k in rest)


def _labels_case(y, k):
    return f"y={list(map(int, y))}, k={k}"


def _counts(C, k):
    return tuple(int(v) for v in M.one_vs_rest(np.asarray(C), k))


def _precision_recall(C, k):
    c = M.one_vs_rest(np.asarray(C), k)
    return M.precision(c), M.recall(c)


def _macro_f1(C):
    return float(M.averaged(M.f1, np.asarray(C), "macro"))


def _always_not(y, k):
    """A detector that answers "not k" for every image: TP = FP = 0, FN = the k's, TN = the rest."""
    y = np.asarray(y)
    c = M.Counts(TP=0, FP=0, FN=int((y == k).sum()), TN=int((y != k).sum()))
    return M.accuracy(c), M.recall(c)


# Rows are not symmetric to columns and TP != TN, so swapped rows/columns or swapped counts fail.
MATRICES = [np.array([[5, 1, 0], [2, 7, 1], [0, 3, 9]]), np.array([[50, 4, 1], [9, 30, 6], [2, 0, 11]]),
            np.array([[8, 0, 2, 0], [1, 6, 0, 3], [0, 0, 9, 1], [4, 0, 0, 5]])]

counts = Exercise(
    "counts", _counts, [(C, k) for C in MATRICES for k in range(len(C))], _matrix_case,
    "C の行は「本当の数字」、列は「予測した数字」です。k 行目を全部足すと何の枚数、k 列目を全部足すと何の枚数に"
    "なるでしょう？その中で TP はどこにありますか？",
    "TP = C[k, k]\nFP = C[:, k].sum() - TP   # k と予測したもの（k 列目）のうち、本当は k でないもの\n"
    "FN = C[k, :].sum() - TP   # 本当は k のもの（k 行目）のうち、k と予測しなかったもの\n"
    "TN = C.sum() - TP - FP - FN\nreturn TP, FP, FN, TN")
precision_recall = Exercise(
    "precision_recall", _precision_recall, [(C, k) for C in MATRICES for k in range(len(C))], _matrix_case,
    "適合率は「k と予測したもの」が、再現率は「本当に k のもの」が分母です。それぞれ C のどの行か列に並んでいますか？",
    "precision = C[k, k] / C[:, k].sum()   # k と予測したもののうち、本当に k\n"
    "recall = C[k, k] / C[k, :].sum()      # 本当に k のもののうち、k と予測できた\nreturn precision, recall")
macro_f1 = Exercise(
    "macro_f1", _macro_f1, [(C,) for C in MATRICES] + [(np.array([[3, 1, 0], [0, 4, 0], [2, 1, 0]]),)],
    _matrix_case,
    "macro 平均は「数字ごとに F1 を出して、その平均」です。一度も予測されない数字があると、その F1 の式はどうなりますか？"
    "（この授業と scikit-learn は、分母が 0 のときその値を 0 とします）",
    "f1s = []\nfor k in range(len(C)):\n    TP, FP, FN = C[k, k], C[:, k].sum() - C[k, k], C[k, :].sum() - C[k, k]\n"
    "    f1s.append(2 * TP / (2 * TP + FP + FN) if TP + FP + FN else 0.0)\nreturn sum(f1s) / len(f1s)")
always_not = Exercise(
    "always_not", _always_not,
    [([3, 1, 3, 0, 5, 7, 2, 9, 3, 4], 3), ([0] * 9 + [1], 1), ([2, 2, 5, 8, 2, 6, 1, 0], 2)], _labels_case,
    "この「検出器」は一度も k と答えないので、TP と FP はいくつですか？残りの画像は FN と TN のどちらに入りますか？",
    "y = np.asarray(y)\nTP, FP = 0, 0\nFN = (y == k).sum()   # 本当は k なのに「k ではない」と答えた\n"
    "TN = (y != k).sum()   # 本当に k ではない\nreturn (TP + TN) / len(y), TP / (TP + FN)")
specificity = Exercise(
    "specificity", lambda TP, FP, FN, TN: M.specificity(M.Counts(TP, FP, FN, TN)),
    [(50, 10, 5, 935), (3, 1, 2, 94), (970, 12, 9, 9009), (1, 4, 7, 88)],
    lambda TP, FP, FN, TN: f"TP={TP}, FP={FP}, FN={FN}, TN={TN}",
    "特異度は「本当に陰性のもののうち、陰性と予測できた割合」です。本当に陰性なのは、4 つのうちどれとどれですか？",
    "return TN / (TN + FP)")


class ReadingExercise:
    """Read one number off a widget and type it in: ``ex.NAME.check(value, C)`` against the model's own matrix."""

    def __init__(self, name, reference, question, hint):
        self.name, self.reference, self.question, self._hint = name, reference, question, hint

    def result(self, value, C):
        want = self.reference(np.asarray(C))
        if value is None or value is Ellipsis:
            return Result("unwritten", f"{self.question}を読んで、数を入れてから実行してください。")
        if not _same(value, want):
            return Result("wrong", f"{_show_value(value)} ではありません。{self._hint}")
        return Result("correct", f"そのとおり、{_show_value(want)} です。")

    def check(self, value, C):
        show(self.result(value, C))

    def hint(self):
        show(Result("hint", self._hint))


explorer_fp = ReadingExercise(
    "explorer_fp", lambda C: int(M.one_vs_rest(C, 8).FP), "エクスプローラで数字 8 を選び、FP の数",
    "FP は「8 と予測したのに、本当は 8 ではなかった」画像の数です。2×2 の表の、予測 8 の列・本当は 8 以外の行です。")

EXERCISES = {e.name: e for e in (counts, precision_recall, macro_f1, always_not, specificity)}
