"""Exercises with checkers in the style of Kaggle's learntools: write a function, then ``ex.NAME.check(fn)``.

A check never raises into the student's cell, whatever the function does (raises, returns ``None`` or a string or
a NumPy array, loops into a RecursionError, calls ``exit()``, changes its argument in place, never ends...), so the
notebook still runs from top to bottom; a function that has not finished after ``TIME_LIMIT`` seconds is stopped
and named (where the cell runs in the main thread, as Jupyter runs it), and ■ (a KeyboardInterrupt) stops a check
as it stops any cell. It shows one verdict:

- ``unwritten``: the function is still the template (its body only ``...``, ``pass`` or ``raise
  NotImplementedError``);
- ``no_return``: something is written but nothing is returned (no ``return`` with a value);
- ``wrong``: a case gave another value, or a value of another kind (the message names the case, what came back
  and a hint that fits that case, never the formula);
- ``fixed_size``: wrong on a case's small matrix but right on a 10 x 10 one: the function loops over ten digits
  (``range(10)``) where it should loop over ``range(len(C))``; the message says so;
- ``correct``.

Every case runs on fresh copies of its data, so a function that changes its argument cannot spoil the next case,
the next check or the reference answer. ``ex.NAME.hint()`` shows the next hint that has not been shown yet (the
one a wrong check showed counts as shown), ``ex.NAME.solution()`` the answer as code. Each shows itself at once, so
a check and a hint in one cell are both seen. The reference answers are :mod:`mnist_lab.metrics` itself, so the
exercises and the library can never disagree. ``ex.NAME.result(fn)`` returns the verdict instead.

Introduced in the lesson: main.ipynb §8.
"""

import ast
import copy
import html
import inspect
import math
import numbers
import signal
import textwrap
import threading
import time
import warnings

import numpy as np

from . import metrics as M

STYLE = {"correct": ("#2e7d32", "正解！"), "wrong": ("#c62828", "もう少し"),
         "unwritten": ("#1565c0", "まだ書かれていません"), "no_return": ("#1565c0", "return がありません"),
         "fixed_size": ("#c62828", "もう少し"), "hint": ("#6a1b9a", "ヒント"), "solution": ("#455a64", "解答例")}
FIXED_SIZE = ("10×10 の C では正しい値が返りました。C は 10×10 とは限りません: range(10) ではなく "
              "for k in range(len(C)) のように、C の大きさで数字を回してください。")
NO_MORE_HINTS = "ヒントはここまでです。解答例は ex.{name}.solution() で見られます。"


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


def shown(value, limit=60, _inside=()):
    """Return a short text for any value a student's function returned; never raises."""
    try:
        if isinstance(value, (tuple, list)) and (id(value) in _inside or len(_inside) > 20):
            text = "(...)"  # a list inside itself (or nested deeper than anyone reads)
        elif isinstance(value, (tuple, list)):
            inside = (*_inside, id(value))
            text = "(" + ", ".join(shown(v, limit, inside) for v in value[:8]) + (", ..." if len(value) > 8 else "") + ")"
        elif isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
            text = f"{float(value):.6g}"
        else:
            text = repr(value)
    except Exception:  # noqa: BLE001 -- a value whose repr fails is still named
        text = f"<{type(value).__name__}>"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


class Masked:
    """What a value hidden by NumPy's masked arrays (``np.ma``) becomes in :func:`plain`: no number at all."""

    def __repr__(self):
        return "masked"


MASKED = Masked()


def plain(value):
    """Return ``value`` with NumPy arrays and scalars and tensors turned into Python lists and numbers (a value
    hidden by a masked array into :data:`MASKED`)."""
    if hasattr(value, "detach"):  # a tensor
        value = value.detach().cpu()
    if isinstance(value, np.ma.MaskedArray):
        hidden = np.ma.getmaskarray(value)
        value = np.ma.getdata(value)
        if hidden.any():
            value = value.astype(object)
            value[hidden] = MASKED
    if type(value).__name__ in ("Series", "Index") and hasattr(value, "to_numpy"):  # pandas: its values
        value = value.to_numpy()
    if isinstance(value, (np.ndarray, np.generic)) or type(value).__name__ == "Tensor":
        return value.tolist()
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    if isinstance(value, numbers.Number) and not isinstance(value, (bool, int, float, complex)):  # Fraction, Decimal
        return float(value)
    return value


RETURNED, GIVEN = ("返す", "が返りました"), ("入れる", "が入っています")  # a function's answer, a number typed in


def mismatch(got, want, said=RETURNED):
    """Return why ``got`` is not a value of ``want``'s kind (Japanese), or ``None`` when it is (its numbers may
    still differ). ``said``: :data:`RETURNED` for what a function returned, :data:`GIVEN` for a value typed in."""
    verb, came = said
    if isinstance(want, tuple):
        if not isinstance(got, (tuple, list)):
            return f"{len(want)} つの値を{verb}はずが、{_kind(got)}{came}（例: return a, b のように , で並べます）"
        if len(got) != len(want):
            return f"{len(want)} つの値を{verb}はずが、{len(got)} つの値{came}"
        problems = (mismatch(g, w, said) for g, w in zip(got, want))
        return next((f"{i} つ目の値は、{p}" for i, p in enumerate(problems, 1) if p), None)
    if isinstance(got, bool) or not isinstance(got, (int, float)):
        return f"1 つの数を{verb}はずが、{_kind(got)}{came}"
    return None


def _kind(value):
    if isinstance(value, Masked):
        return "np.ma で隠された値（masked。数として読めません）"
    if isinstance(value, str):
        return f"文字列 {shown(value)} "
    if isinstance(value, bool):
        return f"True/False（{value}）"
    if isinstance(value, (tuple, list)):
        return f"{len(value)} 個の値の並び {shown(value)} "
    if isinstance(value, (int, float)):
        return f"1 つの数 {shown(value)} "
    return f"{type(value).__name__} の値 {shown(value)} "


def judge(got, want, said=RETURNED):
    """Return ``(why got is not of want's kind or None, whether it equals want, got as plain values)``."""
    got = plain(got)
    problem = mismatch(got, want, said)
    return problem, problem is None and same(got, want), got


def same(got, want):
    """Whether ``got`` (plain, of ``want``'s kind) equals ``want`` up to rounding."""
    if isinstance(want, tuple):
        return all(same(g, w) for g, w in zip(got, want))
    try:
        return math.isclose(float(got), want, rel_tol=1e-6, abs_tol=1e-9)
    except (TypeError, ValueError, OverflowError):
        return False


def template_state(fn):
    """Return ``"unwritten"`` when ``fn``'s body is still a template (only ``...``, ``pass``, a docstring or
    ``raise NotImplementedError``), ``"no_return"`` when it has no ``return`` with a value, else ``None`` (also for
    a lambda, or when the source cannot be read)."""
    if getattr(fn, "__name__", "") == "<lambda>":
        return None
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except Exception:  # noqa: BLE001 -- no source (a builtin, exec), or source that is not one function
        return None
    function = tree.body[0] if tree.body and isinstance(tree.body[0], (ast.FunctionDef, ast.AsyncFunctionDef)) else None
    if function is None:
        return None
    if all(_is_placeholder(statement) for statement in function.body):
        return "unwritten"
    if not any(isinstance(node, ast.Return) and node.value is not None for node in _own_nodes(function)):
        return "no_return"
    return None


def _is_placeholder(statement):
    if isinstance(statement, ast.Pass):
        return True
    if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
        return statement.value.value is Ellipsis or isinstance(statement.value.value, str)
    if isinstance(statement, ast.Raise) and statement.exc is not None:
        exc = statement.exc.func if isinstance(statement.exc, ast.Call) else statement.exc
        return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"
    return False


def _own_nodes(function):
    """The nodes of ``function``'s body, without those of functions defined inside it."""
    stack = list(function.body)
    while stack:
        node = stack.pop()
        yield node
        stack.extend(child for child in ast.iter_child_nodes(node)
                     if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)))


TIME_LIMIT = 20  # seconds a student's function may take for one case; the real answers take milliseconds


class TooSlow(BaseException):  # not an Exception: a student's ``except Exception`` cannot swallow it
    """A student's function ran past its time limit."""


class Deadline:
    """Raise :class:`TooSlow` in the ``with`` block once ``seconds`` have passed (by SIGALRM), and again every
    second after that (so an ``except:`` inside the function cannot hold it off for long); on leaving, the previous
    SIGALRM handler and timer are put back. Does nothing where there is no SIGALRM, outside the main thread (signals
    reach the main thread only) or where SIGALRM's handler was not set from Python (it could not be put back)."""

    def __init__(self, seconds):
        self.seconds, self.installed, self.armed = seconds, False, False

    def __enter__(self):
        usable = (hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
                  and signal.getsignal(signal.SIGALRM) is not None)  # None: a handler Python could not put back
        if not usable or not self.seconds or self.seconds <= 0:
            return self
        self.previous_handler = signal.signal(signal.SIGALRM, self._on_alarm)
        self.started, self.installed, self.armed = time.monotonic(), True, True
        self.previous_timer = signal.setitimer(signal.ITIMER_REAL, self.seconds, 1.0)
        return self

    def _on_alarm(self, signum, frame):
        if self.armed:
            raise TooSlow(self.seconds)

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Put back the previous handler and timer (the time it had left, less the time spent here); idempotent,
        so it can be called again when an alarm interrupted the first call."""
        self.armed = False
        if not self.installed:
            return
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.previous_handler)
        self.installed = False
        left, interval = self.previous_timer
        if left > 0:  # someone else's alarm: it still rings, at once if its time came while the function ran
            signal.setitimer(signal.ITIMER_REAL, max(left - (time.monotonic() - self.started), 1e-6), interval)


def call_safely(fn, args, limit=None):
    """Return ``("value", v)``, ``("raised", exception)`` or ``("slow", seconds)`` for ``fn(*args)``, which may
    run ``limit`` seconds (default :data:`TIME_LIMIT`); only ■ (KeyboardInterrupt) gets through. Warnings (0/0,
    overflow) are silenced: the verdict says what matters."""
    deadline = Deadline(TIME_LIMIT if limit is None else limit)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"), deadline:
            warnings.simplefilter("ignore")
            return "value", fn(*args)
    except KeyboardInterrupt:
        raise
    except TooSlow as e:
        return "slow", e.args[0]
    except BaseException as e:  # noqa: BLE001 -- SystemExit (exit()), RecursionError... never reach the cell
        return "raised", e
    finally:
        while True:  # again, should an alarm have cut the first close short
            try:
                deadline.close()
                break
            except TooSlow:
                continue


def raised(e):
    """One Japanese sentence for an exception a student's function raised."""
    if isinstance(e, SystemExit):
        return "exit() で止まりました。関数は止めずに、return で答えを返してください"
    if isinstance(e, RecursionError):
        return "呼び出しが深くなりすぎて止まりました（RecursionError。関数が自分自身を呼び続けていませんか？）"
    try:
        text = " ".join(str(e).split())
    except Exception:  # noqa: BLE001
        text = ""
    text = text if len(text) <= 120 else text[:117] + "..."
    return f"エラーになりました（{type(e).__name__}: {text}）" if text else f"エラーになりました（{type(e).__name__}）"


FORMS = {"percent": "値は合っていますが、100 倍したパーセントになっています。割合は 0〜1 の数で返してください。",
         "rounded": ("値は合っていますが、丸めてあります。round などで丸めずに、計算した数をそのまま返してください"
                     "（丸めるのは表示のときだけ）。")}


def _numbers(value):
    """``value`` as a flat float array, or ``None`` when it is no finite numbers."""
    try:
        a = np.asarray(value, dtype=float).ravel()
    except (TypeError, ValueError):
        return None
    return a if a.size and np.isfinite(a).all() else None


def _forms(got, want):
    """The forms in which ``got`` is ``want``: ``("percent", None)`` (x 100) or ``("rounded", d)`` (to ``d``
    decimals, 2 to 6); empty when it is in none."""
    a, b = _numbers(got), _numbers(want)
    if a is None or b is None or a.shape != b.shape:
        return []
    found = [("percent", None)] if np.abs(b).max() <= 1 and np.allclose(a, b * 100, rtol=1e-3) else []
    return found + [("rounded", d) for d in range(2, 7) if np.allclose(a, np.round(b, d), rtol=0, atol=1e-12)]


class Exercise:
    """One exercise: the cases a function must pass, the reference answer, its hints and a solution.

    ``hints`` go from a nudge to almost the answer; ``case_hint(*args)`` may return a hint that fits one case
    better than the first (say, a matrix with a digit that is never predicted), shown when that case fails.
    """

    def __init__(self, name, reference, cases, describe, hints, solution, params, case_hint=None):
        self.name, self.reference, self.cases = name, reference, [_frozen(args) for args in cases]
        self.describe, self.hints, self._solution, self.params = describe, list(hints), solution, params
        self.case_hint = case_hint or (lambda *args: None)
        self._shown = set()

    @property
    def _hint(self):  # the first hint (kept for older notebooks and tests)
        return self.hints[0]

    def result(self, fn=None):
        """Return the :class:`Result` for the student's ``fn``; never raises (but for ■)."""
        try:
            return self._result(fn)
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # noqa: BLE001 -- a last net: the checker itself must never stop the notebook
            return Result("wrong", f"答え合わせができませんでした（{raised(e)}）。関数を見直して、もう一度実行してください。")

    def _result(self, fn):
        if not callable(fn):
            return Result("wrong", f"check には関数そのものを渡してください（例: check(my_{self.name})、かっこは付けません）。"
                                   f"今渡されたのは {_kind(fn)}です。")
        state = template_state(fn)
        if state == "unwritten":
            return Result("unwritten", "`...` の行を消して、関数の中身を書いてから、もう一度このセルを実行してください。")
        if state == "no_return":
            return Result("no_return", "計算はありますが、答えを返していません。最後に return で答えを返してください。")
        arity = self._arity_problem(fn) or self._order_problem(fn)
        if arity:
            return Result("wrong", arity)
        for args in self.cases:
            verdict = self._verdict(fn, args)
            if verdict is not None:
                return verdict
        return Result("correct", f"{len(self.cases)} 通りの入力で、すべて正しい値が返りました。")

    def _arity_problem(self, fn):
        try:
            inspect.signature(fn).bind(*self.cases[0])
        except TypeError:
            count = len(self.params.split(","))
            return f"この関数は {self.params} の {count} つを受け取るはずです（def my_{self.name}({self.params}): のように書きます）。"
        except ValueError:  # no signature to read (some builtins): the call itself will tell
            pass
        return None

    def _form_everywhere(self, fn, forms):
        """The form (a key of :data:`FORMS`) in which ``fn`` returns the right answer for every case, or ``None``: a
        right formula rounded or as a percentage, never a wrong one that happens to match one case."""
        answers = [(call_safely(fn, copy.deepcopy(args))[1], self._want(args)) for args in self.cases]
        for form in forms:
            fractional = form[0] != "rounded" or any(  # rounding that made 0.99 of 0.989, not only 1 of 0.999
                _numbers(want) is not None and not np.allclose(np.round(_numbers(want), form[1]), np.round(_numbers(want)))
                for _, want in answers)
            if fractional and all(form in _forms(got, want) for got, want in answers):
                return form[0]
        return None

    def _want(self, args):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", M.UndefinedMetricWarning)
            return self.reference(*copy.deepcopy(args))

    def _order_problem(self, fn):
        """The parameters named as the exercise names them, in another order (``def my_counts(k, C)``)."""
        try:
            names = list(inspect.signature(fn).parameters)
        except (TypeError, ValueError):
            return None
        wanted = [name.strip() for name in self.params.split(",")]
        if names != wanted and sorted(names) == sorted(wanted):
            return (f"引数の順番が違います: def my_{self.name}({', '.join(names)}) ではなく "
                    f"def my_{self.name}({self.params}) の順に受け取ってください。")
        return None

    def _verdict(self, fn, args):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", M.UndefinedMetricWarning)
            want = self.reference(*copy.deepcopy(args))
        case = self.describe(*args)
        kind, got = call_safely(fn, copy.deepcopy(args))  # the student's own copy: changing it changes nothing here
        if kind == "slow":
            return self._wrong(f"{case} で、{got:g} 秒たっても関数が終わりませんでした（終わらないループになっていませんか？"
                               "while の条件がいつか偽になるか、確かめてください）。", args)
        if kind == "raised":
            if isinstance(got, NotImplementedError):
                return Result("unwritten", "関数の中身を書いてから、もう一度このセルを実行してください。")
            return self._wrong(f"{case} で{raised(got)}。", args, fn)
        if got is None or got is Ellipsis:
            return Result("no_return", f"{case} で答えが返りませんでした（{got!r}）。計算した答えを return で返してください"
                                       "（return のない道筋で関数が終わっていませんか？）。")
        kind, judged = call_safely(judge, (got, want))  # reading the value may run the student's code too
        if kind != "value":
            why = ("自分自身を中に含む並びか、入れ子が深すぎる値です" if isinstance(judged, RecursionError)
                   else f"{judged:g} 秒たっても読み終わりません" if kind == "slow" else raised(judged))
            return self._wrong(f"{case} で返した値 {shown(got)} を読み取れず、答えと比べられませんでした（{why}）。"
                               "数か、数を , で並べたもの（return a, b）を返してください。", args, fn)
        problem, equal, got = judged
        if problem:
            return self._wrong(f"{case} のとき、{problem}。", args, fn)
        if not equal:
            text = f"{case} のとき {shown(want)} になるはずが、{shown(got)} が返りました。"
            form = self._form_everywhere(fn, _forms(got, want))
            return Result("wrong", f"{text}\n{FORMS[form]}") if form else self._wrong(text, args, fn)
        return None

    def _wrong(self, text, args, fn=None):
        if fn is not None and self._right_on_ten(fn, args):
            return Result("fixed_size", f"{text}\n{FIXED_SIZE}")
        hint = self.case_hint(*args) or self.hints[0]
        self._shown.add(hint)
        return Result("wrong", f"{text}\n{hint}")

    def _right_on_ten(self, fn, args):
        """Whether ``fn``, wrong on ``args`` whose matrix is smaller than 10 x 10, is right on that matrix padded to
        10 x 10 (:func:`_padded`): then it loops over ten digits, not over ``len(C)``."""
        if not (args and isinstance(args[0], np.ndarray) and args[0].ndim == 2 and len(args[0]) < DIGITS):
            return False
        ten = (_padded(args[0]), *args[1:])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", M.UndefinedMetricWarning)
            want = self.reference(*copy.deepcopy(ten))
        kind, got = call_safely(fn, copy.deepcopy(ten))
        if kind != "value":
            return False
        kind, judged = call_safely(judge, (got, want))
        return kind == "value" and not judged[0] and judged[1]

    def check(self, fn=None, *extra, **named):
        """Show the verdict for ``fn`` (see :meth:`result`); anything more is answered with how to call it."""
        if extra or named:
            show(Result("wrong", f"ex.{self.name}.check に渡すのは、書いた関数 1 つだけです。例: ex.{self.name}.check(my_function)"))
            return
        show(self.result(fn))

    def next_hint(self):
        """Return the next hint not shown yet (by :meth:`hint` or a wrong check) as a :class:`Result`."""
        for hint in self.hints:
            if hint not in self._shown:
                self._shown.add(hint)
                return Result("hint", hint)
        return Result("hint", NO_MORE_HINTS.format(name=self.name))

    def hint(self):
        show(self.next_hint())

    def solution(self):
        show(Result("solution", self._solution))


def _frozen(args):
    """Return ``args`` with every array read-only: the cases are the checker's own and must never change."""
    frozen = []
    for arg in args:
        if isinstance(arg, np.ndarray):
            arg = arg.copy()
            arg.flags.writeable = False
        frozen.append(arg)
    return tuple(frozen)


def _matrix_case(C, *rest):
    return f"C={np.asarray(C).tolist()}" + "".join(f", k={k}" for k in rest)


def _labels_case(y, k):
    return f"y={list(map(int, y))}, k={k}"


def _counts(C, k):
    return tuple(int(v) for v in M.one_vs_rest(C, k))


def _precision_recall(C, k):
    c = M.one_vs_rest(C, k)
    return M.precision(c), M.recall(c)


def _macro_f1(C):
    return float(M.averaged(M.f1, C, "macro"))


def _never_predicted(C, *_):
    """The hint for a matrix with a digit no image was predicted as: its precision is 0/0."""
    unseen = [k for k in range(len(C)) if not np.asarray(C)[:, k].sum()]
    if unseen:
        return (f"この C では数字 {unseen[0]} が一度も予測されていません（{unseen[0]} 列目が全部 0）。その数字の適合率は"
                " 0/0 です（この授業と scikit-learn は 0 とします）。その割り算で止まったり NaN になったりしていませんか"
                "（F1 を適合率と再現率から出すときも同じです）？")
    return None


def _always_not(y, k):
    """A detector that answers "not k" for every image: TP = FP = 0, FN = the k's, TN = the rest."""
    y = np.asarray(y)
    c = M.Counts(TP=0, FP=0, FN=int((y == k).sum()), TN=int((y != k).sum()))
    return M.one_vs_rest_accuracy(c), M.recall(c)


DIGITS = 10  # the lesson's matrices are 10 x 10; a check's cases are smaller, so a loop over range(10) shows


def _padded(C):
    """``C`` as the top-left corner of a 10 x 10 matrix whose other digits are all read right (a distinct count
    each): every metric of ``C``'s own digits stays as it was, 0/0 included."""
    ten = np.zeros((DIGITS, DIGITS), dtype=C.dtype)
    ten[:len(C), :len(C)] = C
    rest = np.arange(len(C), DIGITS)
    ten[rest, rest] = 10 + rest
    return ten


# Rows are not symmetric to columns and TP != TN, so swapped rows/columns or swapped counts fail.
MATRICES = [np.array([[5, 1, 0], [2, 7, 1], [0, 3, 9]]), np.array([[50, 4, 1], [9, 30, 6], [2, 0, 11]]),
            np.array([[8, 0, 2, 0], [1, 6, 0, 3], [0, 0, 9, 1], [4, 0, 0, 5]])]

counts = Exercise(
    "counts", _counts, [(C, k) for C in MATRICES for k in range(len(C))], _matrix_case,
    [("C の行は「本当の数字」、列は「予測した数字」です。k 行目を全部足すと何の枚数、k 列目を全部足すと何の枚数に"
      "なるでしょう？その中で TP はどこにありますか？"),
     ("TP は対角線の上、k 行 k 列です。FP は「k と予測したのに本当は k でない」もの（k 列目のうち TP 以外）、FN は"
      "「本当は k なのに k と予測しなかった」もの（k 行目のうち TP 以外）、TN はそのどれでもない残り全部です。")],
    "TP = C[k, k]\nFP = C[:, k].sum() - TP   # k と予測したもの（k 列目）のうち、本当は k でないもの\n"
    "FN = C[k, :].sum() - TP   # 本当は k のもの（k 行目）のうち、k と予測しなかったもの\n"
    "TN = C.sum() - TP - FP - FN\nreturn TP, FP, FN, TN", params="C, k")
NEVER_PREDICTED = np.array([[3, 1, 0], [0, 4, 0], [2, 1, 0]])  # digit 2 is never predicted: its precision is 0/0

precision_recall = Exercise(
    "precision_recall", _precision_recall,
    [(C, k) for C in MATRICES for k in range(len(C))] + [(NEVER_PREDICTED, 2)], _matrix_case,
    ["適合率は「k と予測したもの」が、再現率は「本当に k のもの」が分母です。それぞれ C のどの行か列に並んでいますか？",
     ("行が本当の数字、列が予測した数字なので、「k と予測したもの」は k 列目、「本当に k のもの」は k 行目に並んでいます。"
      "分子はどちらも TP（k 行 k 列）です。")],
    "predicted, actual = C[:, k].sum(), C[k, :].sum()\n"
    "precision = C[k, k] / predicted if predicted else 0.0  # k と予測したもののうち、本当に k（0/0 は 0）\n"
    "recall = C[k, k] / actual if actual else 0.0           # 本当に k のもののうち、k と予測できた\n"
    "return precision, recall",
    params="C, k", case_hint=_never_predicted)
macro_f1 = Exercise(
    "macro_f1", _macro_f1, [(C,) for C in MATRICES] + [(NEVER_PREDICTED,)],
    _matrix_case,
    [("macro 平均は「数字ごとに F1 を出して、その平均」です。全部の数字の TP・FP・FN を先に足してから 1 つの F1 を"
      "出すのは、別の平均（micro）です。"),
     ("数字 k の F1 は、適合率と再現率の調和平均 2PR / (P + R) でも、数から直接 2TP / (2TP + FP + FN) でも出せます。"
      "一度も予測されない数字では適合率が 0/0 になりますが、後の式なら分母は 0 になりません"
      "（分母が 0 のときは、この授業と scikit-learn は 0 とします）。")],
    "f1s = []\nfor k in range(len(C)):\n    TP, FP, FN = C[k, k], C[:, k].sum() - C[k, k], C[k, :].sum() - C[k, k]\n"
    "    f1s.append(2 * TP / (2 * TP + FP + FN) if TP + FP + FN else 0.0)\nreturn sum(f1s) / len(f1s)",
    params="C", case_hint=_never_predicted)
always_not = Exercise(
    "always_not", _always_not,
    [([3, 1, 3, 0, 5, 7, 2, 9, 3, 4], 3), ([0] * 9 + [1], 1), ([2, 2, 5, 8, 2, 6, 1, 0], 2)], _labels_case,
    ["この「検出器」は一度も k と答えないので、TP と FP はいくつですか？残りの画像は FN と TN のどちらに入りますか？",
     ("本当に k の画像はすべて「k ではない」と答えられるので FN、k でない画像はすべて TN です。正解率は全体のうち"
      "正しかった割合、再現率は本当に k のもののうち k と答えられた割合です。")],
    "y = np.asarray(y)\nTP, FP = 0, 0\nFN = (y == k).sum()   # 本当は k なのに「k ではない」と答えた\n"
    "TN = (y != k).sum()   # 本当に k ではない\nreturn (TP + TN) / len(y), TP / (TP + FN)", params="y, k")
specificity = Exercise(
    "specificity", lambda TP, FP, FN, TN: M.specificity(M.Counts(TP, FP, FN, TN)),
    [(50, 10, 5, 935), (3, 1, 2, 94), (970, 12, 9, 9009), (1, 4, 7, 88)],
    lambda TP, FP, FN, TN: f"TP={TP}, FP={FP}, FN={FN}, TN={TN}",
    ["特異度は「本当に陰性のもののうち、陰性と予測できた割合」です。本当に陰性なのは、4 つのうちどれとどれですか？",
     ("本当に陰性なのは、陰性と予測できた TN と、陽性と予測してしまった FP です。分母はその 2 つの和、分子は正しく"
      "陰性と予測できたほうです。")],
    "return TN / (TN + FP)", params="TP, FP, FN, TN")


class ReadingExercise:
    """Read one number off a widget and type it in: ``ex.NAME.check(value, C)`` against the model's own matrix.
    Like :class:`Exercise`, a check never raises, whatever ``value`` and ``C`` are."""

    def __init__(self, name, reference, question, hint, digit, formula):
        self.name, self.reference, self.question, self.hints, self.digit = name, reference, question, [hint], digit
        self.formula = formula  # how the number is computed from C, the solution shown at the end
        self._shown = set()

    def result(self, value=None, C=None):
        try:
            return self._result(value, C)
        except Exception as e:  # noqa: BLE001 - a check never raises: a value or a C too big or odd to read
            return Result("wrong", f"入れた値か C を読めませんでした（{type(e).__name__}）。読んだ数と、エクスプローラと同じ混同行列 C を"
                                   f"渡してください。例: ex.{self.name}.check(answer, C)")

    def _result(self, value, C):
        if C is None:
            return Result("wrong", "check(answer, C) のように、読んだ数と混同行列 C の 2 つを渡してください。")
        try:
            C = M.checked_matrix(C)
        except M.MetricInputError as e:
            return Result("wrong", f"2 つ目には、エクスプローラと同じ混同行列 C を渡してください（{e}）")
        if len(C) <= self.digit:
            return Result("wrong", f"C が {len(C)}×{len(C)} です。数字 0〜9 の混同行列 C を渡してください。")
        want = self.reference(C)
        if value is None or value is Ellipsis:
            return Result("unwritten", f"{self.question}を読んで、数を入れてから実行してください。")
        kind, judged = call_safely(judge, (value, want, GIVEN))
        if kind != "value":
            return Result("wrong", f"入れた値 {shown(value)} を数として読めませんでした。読んだ数をそのまま書いてください（例: answer = 12）。")
        problem, _, value = judged
        if problem:
            return Result("wrong", f"{problem}。読んだ数をそのまま書いてください（例: answer = 12）。")
        if not same(value, want):
            self._shown.add(self.hints[0])
            return Result("wrong", f"{shown(value)} ではありません。{self.hints[0]}")
        return Result("correct", f"そのとおり、{shown(want)} です。")

    def check(self, value=None, C=None, *extra, **named):
        if extra or named:
            show(Result("wrong", f"ex.{self.name}.check に渡すのは、読んだ数と混同行列 C です。例: ex.{self.name}.check(answer, C)"))
            return
        show(self.result(value, C))

    next_hint = Exercise.next_hint

    def hint(self):
        show(self.next_hint())

    def solution(self, C=None):
        """How the number is computed from C (and, given C, the number itself)."""
        try:
            number = f"（この C では {shown(self.reference(M.checked_matrix(C)))}）" if C is not None else ""
        except Exception:  # noqa: BLE001 - a C that cannot be read: the formula alone
            number = ""
        show(Result("solution", f"{self.question}は {self.formula} で計算できます{number}。"))


explorer_fp = ReadingExercise(
    "explorer_fp", lambda C: int(M.one_vs_rest(C, 8).FP), "エクスプローラで数字 8 を選び、FP の数",
    "FP は「8 と予測したのに、本当は 8 ではなかった」画像の数です。2×2 の表の、予測 8 の列・本当は 8 以外の行です。", 8,
    "one_vs_rest(C, 8).FP")

EXERCISES = {e.name: e for e in (counts, precision_recall, macro_f1, always_not, specificity)}
