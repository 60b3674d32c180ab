import numpy as np
import pytest

from mnist_lab import exercises as ex

RIGHT = {
    "accuracy": lambda TP, FP, FN, TN: (TP + TN) / (TP + TN + FP + FN),
    "precision": lambda TP, FP, FN, TN: TP / (TP + FP),
    "recall": lambda TP, FP, FN, TN: TP / (TP + FN),
    "f1": lambda TP, FP, FN, TN: 2 * (TP / (TP + FP)) * (TP / (TP + FN)) / (TP / (TP + FP) + TP / (TP + FN)),
    "specificity": lambda TP, FP, FN, TN: TN / (TN + FP),
    "counts_from_confusion": lambda C, k: (C[k, k], C[:, k].sum() - C[k, k], C[k].sum() - C[k, k],
                                           C.sum() - C[:, k].sum() - C[k].sum() + C[k, k]),
}
WRONG = {  # the mistakes students make: swapped terms, a missing term, the other metric
    "accuracy": [lambda TP, FP, FN, TN: TP / (TP + TN + FP + FN), lambda TP, FP, FN, TN: (TP + TN) / (FP + FN)],
    "precision": [lambda TP, FP, FN, TN: TP / (TP + FN), lambda TP, FP, FN, TN: TP / (TN + FP)],
    "recall": [lambda TP, FP, FN, TN: TP / (TP + FP), lambda TP, FP, FN, TN: TN / (TN + FN)],
    "f1": [lambda TP, FP, FN, TN: (TP / (TP + FP) + TP / (TP + FN)) / 2, lambda TP, FP, FN, TN: TP / (TP + FP + FN)],
    "specificity": [lambda TP, FP, FN, TN: TN / (TN + FN), lambda TP, FP, FN, TN: TP / (TP + FN)],
    "counts_from_confusion": [lambda C, k: (C[k, k], C[k].sum() - C[k, k], C[:, k].sum() - C[k, k], 0),
                              lambda C, k: (1, 2, 3)],
}


@pytest.mark.parametrize("name", list(ex.EXERCISES))
def test_right_answers_pass(name):
    result = ex.EXERCISES[name].check(RIGHT[name])
    assert result.status == "correct", result


@pytest.mark.parametrize("name, fn", [(n, f) for n, fs in WRONG.items() for f in fs])
def test_wrong_answers_get_a_hint_without_the_answer(name, fn):
    exercise = ex.EXERCISES[name]
    result = exercise.check(fn)
    assert result.status == "wrong", result
    assert exercise.hint().message in result.message
    answer = exercise.solution().message.splitlines()[-1]
    assert answer not in result.message


@pytest.mark.parametrize("name", list(ex.EXERCISES))
def test_template_is_not_yet_written(name):
    def template(*args):
        ...

    def raises(*args):
        raise NotImplementedError

    assert ex.EXERCISES[name].check(template).status == "unwritten"
    assert ex.EXERCISES[name].check(raises).status == "unwritten"


@pytest.mark.parametrize("bad", [
    lambda TP, FP, FN, TN: 1 / 0,
    lambda TP, FP, FN, TN: "0.5",
    lambda TP, FP, FN, TN: [0.5],
    lambda TP: TP,
    0.5,
])
def test_broken_answers_never_raise(bad):
    result = ex.precision.check(bad)
    assert result.status == "wrong" and result.message


def test_results_render_in_jupyter_and_text():
    result = ex.recall.check(RIGHT["recall"])
    assert "正解" in repr(result) and "<b>正解！</b>" in result._repr_html_()
    assert "&lt;script&gt;" in ex.Result("wrong", "<script>")._repr_html_()


def test_numpy_and_tuple_answers_are_accepted():
    assert ex.accuracy.check(lambda TP, FP, FN, TN: np.float32((TP + TN) / (TP + TN + FP + FN))).status == "correct"
    assert ex.accuracy.check(lambda TP, FP, FN, TN: np.float32((TP + TN) / (TP + TN + FP))).status == "wrong"
    assert ex.counts_from_confusion.check(lambda C, k: list(RIGHT["counts_from_confusion"](C, k))).status == "correct"
