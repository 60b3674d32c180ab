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
    "precision_recall": lambda C, k: (C[k, k] / C[:, k].sum(), C[k, k] / C[k].sum()),
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
    assert exercise._hint in result.message
    for line in exercise._solution.splitlines():  # no line of the solution, so no formula, is given away
        assert line.split("#")[0].strip() not in exercise._hint


@pytest.mark.parametrize("name", list(ex.EXERCISES))
def test_template_is_not_yet_written(name):
    def template(*args):
        ...  # ここに式を書いて return してください

    def returns_nothing(*args):
        answer = 1  # noqa: F841 - a student computed something but forgot to return it

    def raises(*args):
        raise NotImplementedError

    assert ex.EXERCISES[name].result(template).message.startswith("return がありません")
    assert ex.EXERCISES[name].result(returns_nothing).message.startswith("return がありません")
    assert ex.EXERCISES[name].result(raises).status == "unwritten"


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
    assert "正解！" in out and "ヒント" in out


def test_results_render_in_jupyter_and_text():
    result = ex.counts.result(RIGHT["counts"])
    assert "正解" in repr(result) and "<b>正解！</b>" in result._repr_html_()
    assert "&lt;script&gt;" in ex.Result("wrong", "<script>")._repr_html_()
    solution = ex.Result("solution", "return TN / (TN + FP)")._repr_html_()
    assert "<pre" in solution and "monospace" in solution


def test_numpy_and_list_answers_are_accepted():
    assert ex.specificity.result(lambda TP, FP, FN, TN: np.float32(TN / (TN + FP))).status == "correct"
    assert ex.counts.result(lambda C, k: list(right_counts(C, k))).status == "correct"


def test_reading_a_number_off_the_explorer():
    C = np.zeros((10, 10), dtype=int)
    np.fill_diagonal(C, 90)
    C[3, 8], C[5, 8], C[8, 3] = 2, 4, 7  # FP of 8: 2 + 4
    assert ex.explorer_fp.result(6, C).status == "correct"
    assert ex.explorer_fp.result(7, C).status == "wrong"
    assert ex.explorer_fp.result(..., C).status == "unwritten"
