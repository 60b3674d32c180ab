import numpy as np
import pytest

from mnist_lab import exercises as ex


def right_counts(C, k):
    TP = C[k, k]
    FP, FN = C[:, k].sum() - TP, C[k, :].sum() - TP
    return TP, FP, FN, C.sum() - TP - FP - FN


def right_macro_f1(C):
    scores = []
    for k in range(len(C)):
        TP, FP, FN, _ = right_counts(C, k)
        scores.append(2 * TP / (2 * TP + FP + FN) if TP + FP + FN else 0.0)
    return sum(scores) / len(scores)


def right_always_not(y, k):
    y = np.asarray(y)
    return (y != k).mean(), 0.0


RIGHT = {
    "counts": right_counts,
    "precision_recall": lambda C, k: (C[k, k] / max(C[:, k].sum(), 1), C[k, k] / max(C[k].sum(), 1)),  # 0/0 is 0
    "macro_f1": right_macro_f1,
    "always_not": right_always_not,
    "specificity": lambda TP, FP, FN, TN: TN / (TN + FP),
}
WRONG = {  # the mistakes students make: rows and columns swapped, a missing term, the other average
    "counts": [lambda C, k: (C[k, k], C[k].sum() - C[k, k], C[:, k].sum() - C[k, k], 0), lambda C, k: (1, 2, 3)],
    "precision_recall": [lambda C, k: (C[k, k] / C[k].sum(), C[k, k] / C[:, k].sum()),
                         lambda C, k: (C[k, k] / C.sum(), C[k, k] / C.sum())],
    "macro_f1": [lambda C: np.trace(C) / C.sum(),  # that is accuracy (= micro F1)
                 lambda C: np.mean([2 * C[k, k] / (C[:, k].sum() + C[k].sum()) for k in range(len(C)) if C[:, k].sum()])],
    "always_not": [lambda y, k: (np.mean(np.asarray(y) == k), 0.0), lambda y, k: (1.0, 0.0)],
    "specificity": [lambda TP, FP, FN, TN: TN / (TN + FN), lambda TP, FP, FN, TN: TP / (TP + FN)],
}


@pytest.mark.parametrize("name", list(ex.EXERCISES))
def test_right_answers_pass(name):
    result = ex.EXERCISES[name].result(RIGHT[name])
    assert result.status == "correct", result


@pytest.mark.parametrize("name, fn", [(n, f) for n, fs in WRONG.items() for f in fs])
def test_wrong_answers_get_a_hint_without_the_answer(name, fn):
    exercise = ex.EXERCISES[name]
    result = exercise.result(fn)
    assert result.status == "wrong", result
    hints = exercise.hints + [h for case in exercise.cases if (h := exercise.case_hint(*case))]
    assert any(hint in result.message for hint in hints), result.message
    for hint in hints:  # no line of the solution, so no formula, is given away
        for line in exercise._solution.splitlines():
            assert line.split("#")[0].strip() not in hint


@pytest.mark.parametrize("name", list(ex.EXERCISES))
def test_untouched_and_no_return_are_told_apart(name):
    def template(*args):
        ...  # ここに式を書いて return してください

    def returns_nothing(*args):
        answer = 1  # noqa: F841 - a student computed something but forgot to return it

    def raises(*args):
        raise NotImplementedError

    def documented(*args):
        """What the function should do."""
        pass  # noqa: PIE790 - the template some students leave: a docstring and pass

    exercise = ex.EXERCISES[name]
    untouched = {exercise.result(f).status for f in (template, raises, documented)}
    assert untouched == {"unwritten"} and exercise.result(returns_nothing).status == "no_return"
    assert exercise.result(template).message != exercise.result(returns_nothing).message


def test_macro_f1_hint_fits_the_case_that_failed():
    """F1 from precision and recall without the 0/0 rule fails only on the matrix with a digit never predicted,
    and the hint there is about that digit; averaging the wrong way fails on the first matrix, whose hint is about
    averaging."""
    def no_zero_rule(C):
        f1s = []
        for k in range(len(C)):
            p, r = C[k, k] / C[:, k].sum(), C[k, k] / C[k].sum()  # NumPy: 0/0 is NaN
            f1s.append(2 * p * r / (p + r))
        return sum(f1s) / len(f1s)

    def no_zero_rule_python(C):
        C, f1s = C.tolist(), []
        for k in range(len(C)):
            p, r = C[k][k] / sum(row[k] for row in C), C[k][k] / sum(C[k])  # Python: ZeroDivisionError
            f1s.append(2 * p * r / (p + r))
        return sum(f1s) / len(f1s)

    exercise = ex.macro_f1
    unpredicted = exercise.cases[-1]
    assert exercise.case_hint(*unpredicted) and not any(exercise.case_hint(*c) for c in exercise.cases[:-1])
    for fn in (no_zero_rule, no_zero_rule_python):  # NaN, or a ZeroDivisionError
        assert exercise.case_hint(*unpredicted) in exercise.result(fn).message
    micro = exercise.result(WRONG["macro_f1"][0]).message
    assert exercise.hints[0] in micro and exercise.case_hint(*unpredicted) not in micro


@pytest.mark.parametrize("name", list(ex.EXERCISES))
def test_hint_never_repeats_what_check_showed(name, capsys):
    exercise = ex.Exercise(name, ex.EXERCISES[name].reference, ex.EXERCISES[name].cases,
                           ex.EXERCISES[name].describe, ex.EXERCISES[name].hints, "", ex.EXERCISES[name].params,
                           ex.EXERCISES[name].case_hint)  # a fresh copy: no hint shown yet
    shown = [exercise.result(WRONG[name][0]).message]
    for _ in range(len(exercise.hints)):
        shown.append(exercise.next_hint().message)
    later = shown[1:]
    assert all(hint not in shown[0] for hint in later), "hint() repeated what check printed"
    assert len(set(later)) == len(later), "a hint was shown twice"
    assert ex.NO_MORE_HINTS.format(name=name) == later[-1]


@pytest.mark.parametrize("bad", [
    lambda C, k: 1 / 0,
    lambda C, k: "0.5",
    lambda C, k: [0.5],
    lambda C: C,
    0.5,
])
def test_broken_answers_never_raise(bad):
    result = ex.precision_recall.result(bad)
    assert result.status == "wrong" and result.message


def test_check_and_hint_in_one_cell_both_show(capsys):
    ex.counts.check(RIGHT["counts"])
    ex.counts.hint()
    out = capsys.readouterr().out
    verdict = ex.counts.result(RIGHT["counts"])
    hints = [*ex.counts.hints, ex.NO_MORE_HINTS.format(name="counts")]  # whichever one is next
    assert verdict.status == "correct" and verdict.message in out and any(hint in out for hint in hints), out


def test_results_render_in_jupyter_and_text():
    result = ex.counts.result(RIGHT["counts"])
    assert result.message in repr(result) and result.message in result._repr_html_()
    assert len({ex.Result(status, "same")._repr_html_() for status in ("correct", "wrong", "hint")}) == 3
    assert "&lt;script&gt;" in ex.Result("wrong", "<script>")._repr_html_()
    solution = ex.Result("solution", "return TN / (TN + FP)")._repr_html_()
    assert "<pre" in solution and "monospace" in solution


def test_numpy_and_list_answers_are_accepted():
    assert ex.specificity.result(lambda TP, FP, FN, TN: np.float32(TN / (TN + FP))).status == "correct"
    assert ex.counts.result(lambda C, k: list(right_counts(C, k))).status == "correct"
    assert ex.counts.result(lambda C, k: np.array(right_counts(C, k))).status == "correct"


def test_a_function_that_changes_its_argument_spoils_nothing():
    def spoils(C, k):
        C[:] = 0
        return 0, 0, 0, 0

    before = [C.copy() for C, _ in ex.counts.cases]
    assert ex.counts.result(spoils).status == "wrong"
    assert all((C == b).all() for (C, _), b in zip(ex.counts.cases, before))
    assert ex.counts.result(RIGHT["counts"]).status == "correct"


def test_the_wrong_kind_of_value_is_named():
    """A number where four were asked, or a string: the verdict says the kind is wrong, not just 'wrong value'."""
    one = ex.counts.result(lambda C, k: 3).message
    text = ex.specificity.result(lambda TP, FP, FN, TN: "0.9").message
    two = ex.counts.result(lambda C, k: (1, 2)).message
    assert len({one, text, two}) == 3 and all("になるはずが" not in m for m in (one, text, two))


def test_reading_a_number_off_the_explorer():
    C = np.zeros((10, 10), dtype=int)
    np.fill_diagonal(C, 90)
    C[3, 8], C[5, 8], C[8, 3] = 2, 4, 7  # FP of 8: 2 + 4
    assert ex.explorer_fp.result(6, C).status == "correct"
    assert ex.explorer_fp.result(7, C).status == "wrong"
    assert ex.explorer_fp.result(..., C).status == "unwritten"
    assert ex.explorer_fp.result(np.int64(6), C).status == "correct"
    assert ex.explorer_fp.result("6", C).status == "wrong"
    assert ex.explorer_fp.result(6, None).status == "wrong"


def test_a_check_called_with_more_than_it_takes_says_how_to_call_it(capsys):
    from mnist_lab import exercises as ex

    ex.counts.check(lambda C, k: None, "C")
    ex.counts.check(func=lambda C, k: None)
    ex.explorer_fp.check(12, None, 3)
    shown = capsys.readouterr().out
    assert shown.count("ex.counts.check(") == 2 and "ex.explorer_fp.check(" in shown, shown


def test_the_reading_exercise_has_the_solution_its_last_hint_promises(capsys):
    C = np.diag([50] * 10)
    C[3, 8] = 7  # seven 3s read as 8: FP of 8
    for _ in range(len(ex.explorer_fp.hints) + 1):
        ex.explorer_fp.hint()
    ex.explorer_fp.solution(C)
    assert "7" in capsys.readouterr().out.splitlines()[-1]  # the number itself, read off C
    ex.explorer_fp.solution()  # without C: the formula alone, never an error


def test_the_reading_exercise_never_raises_whatever_it_is_given(monkeypatch):
    def too_big(C):
        raise MemoryError("Unable to allocate 2.98 GiB")

    monkeypatch.setattr(ex.explorer_fp, "reference", too_big)
    assert ex.explorer_fp.result(3, np.zeros((10, 10), int)).status == "wrong"


def test_a_loop_over_ten_digits_is_told_to_loop_over_len_C():
    def over(digits, zero_rule=True):
        def my_macro_f1(C):
            scores = []
            for k in digits(C):
                TP, FP, FN, _ = right_counts(C, k)
                if zero_rule:
                    scores.append(2 * TP / (2 * TP + FP + FN) if TP + FP + FN else 0.0)
                else:  # through precision and recall: 0/0 (NaN) for a digit never predicted
                    P, R = np.float64(TP) / (TP + FP), np.float64(TP) / (TP + FN)
                    scores.append(2 * P * R / (P + R))
            return sum(scores) / len(scores)
        return my_macro_f1

    assert ex.macro_f1.result(over(lambda C: range(10))).status == "fixed_size"
    assert ex.macro_f1.result(over(lambda C: range(len(C)))).status == "correct"
    assert ex.macro_f1.result(over(lambda C: range(10), zero_rule=False)).status == "fixed_size"  # its first mistake
    never_predicted = ex.macro_f1.result(over(lambda C: range(len(C)), zero_rule=False))  # 0/0 is its mistake, not 10
    assert never_predicted.status == "wrong" and ex.macro_f1.case_hint(ex.macro_f1.cases[-1][0]) in never_predicted.message
    for other in WRONG["macro_f1"]:  # wrong on 10 x 10 too: the hint about the average, not about the size
        assert ex.macro_f1.result(other).status == "wrong"
    counts_of_ten = ex.counts.result(lambda C, k: right_counts(C, k) if len(C) == 10 else (0, 0, 0, 0))
    assert counts_of_ten.status == "fixed_size" and counts_of_ten.message


def test_precision_and_recall_are_checked_on_a_digit_never_predicted():
    """The 0/0 rule the lesson teaches (cell 71) is checked in exercise 2 too, and its own solution keeps it: a
    function that returns NaN there is not judged right, and the reference answer is."""
    def naive(C, k):  # as a student writes it
        return C[k, k] / C[:, k].sum(), C[k, k] / C[k].sum()

    with np.errstate(all="ignore"):
        assert ex.precision_recall.result(naive).status == "wrong"
    namespace, code = {"np": np}, ex.precision_recall._solution.splitlines()
    source = "def answer(C, k):\n" + "\n".join("    " + line for line in code)
    exec(source, namespace)  # noqa: S102 -- the package's own reference answer
    assert ex.precision_recall.result(namespace["answer"]).status == "correct"


def test_a_right_answer_in_the_wrong_form_is_told_what_form():
    """Rounded, as a percentage, or with the parameters in another order: a verdict of its own, not the hint about
    the formula (the formula is right)."""
    def right(C, k):
        predicted, actual = C[:, k].sum(), C[k].sum()
        return C[k, k] / predicted if predicted else 0.0, C[k, k] / actual if actual else 0.0

    def rounded(C, k):
        return tuple(round(float(v), 2) for v in right(C, k))

    def percent(C, k):
        return tuple(100 * v for v in right(C, k))

    def swapped(k, C):
        return right(C, k)

    def formula_wrong(C, k):
        return tuple(reversed(right(C, k)))

    def guess(C, k):
        return 1.0, 1.0

    assert ex.precision_recall.result(right).status == "correct"
    formula_hint = ex.precision_recall.result(formula_wrong).message.splitlines()[-1]
    forms = {fn.__name__: ex.precision_recall.result(fn) for fn in (rounded, percent, swapped)}
    assert all(r.status == "wrong" for r in forms.values())
    assert len({r.message.splitlines()[-1] for r in forms.values()} | {formula_hint}) == 4, forms
    assert ex.precision_recall.result(guess).message.splitlines()[-1] == formula_hint  # no form to blame


def test_a_constant_or_another_formula_is_never_called_rounded():
    """1.0 for every case rounds the right answers at one decimal, and a right answer rounded to 2 decimals is one
    whose cases mostly keep a fraction: only that is told it is rounded."""
    right = ex.specificity.result(lambda TP, FP, FN, TN: round(TN / (TN + FP), 2)).message.splitlines()[-1]
    for wrong in (lambda TP, FP, FN, TN: 1.0, lambda TP, FP, FN, TN: round(TN / (TN + FP), 1),
                  lambda TP, FP, FN, TN: (TN + FP) / (FP + TN)):
        result = ex.specificity.result(wrong)
        assert result.status == "wrong" and result.message.splitlines()[-1] != right
