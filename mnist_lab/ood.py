"""Is it a digit at all? The energy score, and the warning 「数字ではないかもしれません」.

softmax turns any ten scores into probabilities that add up to 1, so its largest probability only says how much
one digit beats the other nine, never whether the picture is a digit: a model that has seen nothing but digits
reads a letter A as "4 (99.7 %)". The scores *before* softmax still hold what softmax divides away: their
log-sum-exp is large when the features of some digit fire strongly, and small when those of none do. Its negative
is the *energy* of the picture (Liu et al., "Energy-based out-of-distribution detection", 2020)::

    E(x) = -log(exp(s_0) + ... + exp(s_9))          (s = model(x), the ten class scores)

A high energy means "unlike every digit this model knows". How high is too high is decided once, after training:
the ``pad`` recipe sets the threshold so that only 0.2 % of its validation digits (training images it never trained
on) lie above it, and keeps it with the model's weights (:class:`~mnist_lab.models.PadCNN`). The same recipe
teaches the model what non-digits look like (outlier exposure, Hendrycks et al. 2019): on generated letters,
shapes, noise and scribbles (:mod:`mnist_lab.synthetic`) it is trained to give all ten digits the same score
(:func:`uniform_loss`), which keeps their energy high.
"""

import contextlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .errors import ArgumentError
from .inference import batch_size_for, device_of, evaluation_mode, images_for

# share of validation digits above the threshold (so about as many test digits are flagged); 0.5 % flagged 4 % of
# the digits drawn on the pad, 0.2 % flags 1.4 % and still 94 % of the non-digits (chosen on the select parts of
# benchmarks/other_styles.py)
VALIDATION_SHARE = 0.002


def energy(scores):
    """Return the energy ``-logsumexp(scores)`` of each row of class scores ``(N, 10)``.

    >>> energy(torch.tensor([[0.0, 0.0], [10.0, 0.0]])).round(decimals=3)
    tensor([ -0.6930, -10.0000])
    """
    return -torch.logsumexp(scores.float(), dim=1)


def uniform_loss(scores):
    """Return the cross-entropy between the softmax of ``scores`` and the uniform distribution (mean over rows):
    0 at best, when every class gets the same score. Taught on non-digits, it means "none of these".

    >>> round(uniform_loss(torch.zeros(1, 10)).item(), 6)
    0.0
    """
    return -(F.log_softmax(scores.float(), dim=1).mean(1) + math.log(scores.shape[1])).mean()


def scores_and_energy(model, X, batch_size=None):
    """Return ``(probabilities (N, 10), energies (N,))`` of ``model`` for images ``X``, on the CPU."""
    batch_size = batch_size or batch_size_for(device_of(model))
    probs, energies = [], []
    with evaluation_mode(model):
        for X_b in X.split(batch_size):
            scores = model(X_b.to(device_of(model))).float()
            probs.append(F.softmax(scores, dim=1).cpu())
            energies.append(energy(model_scores(model, X_b.to(device_of(model)), scores)).cpu())
    if not probs:
        return torch.empty(0, 10), torch.empty(0)
    return torch.cat(probs), torch.cat(energies)


def energies(model, X):
    """Return the energy of each image of ``X`` for ``model`` (``(N,)``, on the CPU).

    Introduced in the lesson: main.ipynb §10.
    """
    return scores_and_energy(model, readable(model, X, "energies"))[1]


def most_confident(model, pictures):
    """Return ``(index, digit, probability)`` of the picture among ``pictures`` (any images) that ``model`` reads
    as a digit most confidently: the lesson's letter read as a digit at 99 %.

    Introduced in the lesson: main.ipynb §10.
    """
    from .preprocess import EmptyImageError, preprocess_drawing

    if (isinstance(pictures, (str, bytes)) or not hasattr(pictures, "__len__") or getattr(pictures, "ndim", 1) == 0
            or len(pictures) == 0):
        raise ArgumentError(f"most_confident には絵を 1 枚以上並べたリストを渡してください（今は {type(pictures).__name__}"
                            f"{'、空' if hasattr(pictures, '__len__') else ''}）。例: most_confident(model, non_digits(100, kinds=(\"letter\",)))")
    inked = []  # (index, image) of the pictures with ink: a blank one has nothing to read
    for i, picture in enumerate(pictures):
        with contextlib.suppress(EmptyImageError):
            inked.append((i, preprocess_drawing(picture)))
    if not inked:
        raise ArgumentError("most_confident に渡した絵には、どれも何も描かれていません（インクがありません）。")
    probs, _ = scores_and_energy(model, images_for(model, torch.cat([x for _, x in inked]), "most_confident"))
    best = int(probs.max(1).values.argmax())
    return inked[best][0], int(probs[best].argmax()), float(probs[best].max())


def model_scores(model, X, scores):
    """The scores whose energy says how much ``model`` sees a digit in ``X``: its own ``scores``, but for an
    :class:`~mnist_lab.models.Ensemble`, whose output is a log-probability (its log-sum-exp is always 0), the mean
    of its members' scores."""
    return model.member_scores(X).float().mean(0) if hasattr(model, "member_scores") else scores


def threshold_of(model):
    """Return the energy above which ``model`` says "not a digit", or ``None`` when it has none (a model trained
    without non-digits: only the ``pad`` recipe's :class:`~mnist_lab.models.PadCNN` has one).

    Introduced in the lesson: main.ipynb §10.
    """
    if not isinstance(model, torch.nn.Module):
        raise ArgumentError(f"threshold_of にはモデルを渡してください（今は {type(model).__name__}）。load_checkpoint の結果なら "
                            "model, ckpt = load_checkpoint(...) の model です。")
    value = getattr(model, "energy_threshold", None)
    return None if value is None or not torch.isfinite(value) else float(value)


@dataclass
class Reading:
    """What a model reads in one picture: the digit, its probability, the energy and whether it is flagged."""

    digit: int
    probability: float
    probabilities: list
    energy: float
    not_a_digit: object  # True/False, or None when the model cannot tell (it has no threshold)

    def as_dict(self):
        return {"digit": self.digit, "probability": self.probability, "probabilities": self.probabilities,
                "energy": self.energy, "not_a_digit": self.not_a_digit}


def read(model, X):
    """Return one :class:`Reading` for each image of ``X`` (normalised ``N x 1 x 28 x 28``).

    Introduced in the lesson: main.ipynb §10.
    """
    probs, energies = scores_and_energy(model, readable(model, X, "read"))
    limit = threshold_of(model)
    return [Reading(int(p.argmax()), float(p.max()), [round(float(v), 6) for v in p], float(e),
                    None if limit is None else bool(e > limit)) for p, e in zip(probs, energies)]


def readable(model, X, function):
    """``X`` as images ``model`` reads: a picture (a PIL image, as ``letters[i]``) or a list of pictures goes
    through :func:`~mnist_lab.preprocess.preprocess_drawing` first; else :class:`ArgumentError` (one line)."""
    from PIL import Image

    from .preprocess import preprocess_drawing

    if isinstance(X, Image.Image):
        X = preprocess_drawing(X)
    elif isinstance(X, (list, tuple)) and X and all(isinstance(p, Image.Image) for p in X):
        X = torch.cat([_inked(p, i, function) for i, p in enumerate(X)])
    return images_for(model, X, function, empty_ok=True)


def _inked(picture, i, function):
    from .preprocess import EmptyImageError, preprocess_drawing

    try:
        return preprocess_drawing(picture)
    except EmptyImageError:
        raise ArgumentError(f"{function} に渡した絵の {i} 番目（0 から数えて）には何も描かれていません（インクがありません）。"
                            "その絵を除くか、preprocess_all(絵のリスト) で読める絵だけにしてから渡してください。") from None


def probabilities_and_flag(model, X):
    """Return ``(probabilities (10,), not a digit?)`` of ``model`` for the one image in ``X``; the flag is
    ``None`` when the model has no threshold."""
    probs, energies = scores_and_energy(model, X)
    limit = threshold_of(model)
    return probs[0], None if limit is None else bool(energies[0] > limit)


def flagged(model, X):
    """Return a boolean tensor: which images of ``X`` ``model`` calls "not a digit" (all ``False`` without a
    threshold)."""
    limit = threshold_of(model)
    _, energies = scores_and_energy(model, X)
    return energies > limit if limit is not None else torch.zeros(len(energies), dtype=torch.bool)


def calibrated_threshold(energies, share=VALIDATION_SHARE):
    """Return the energy that only ``share`` of ``energies`` (of validation digits) lie above.

    >>> calibrated_threshold(torch.arange(1000.0), share=0.01)
    989.0
    """
    k = max(1, math.ceil(len(energies) * (1 - share)))
    return float(energies.float().sort().values[k - 1])


def calibrate(model, X_val, share=VALIDATION_SHARE):
    """Set ``model``'s threshold from the validation digits ``X_val`` (never the test set); return it."""
    _, energies = scores_and_energy(model, X_val)
    value = calibrated_threshold(energies, share)
    model.energy_threshold.fill_(value)
    return value


WARNING = "数字ではないかもしれません（モデルが知っている数字のどれにも似ていません）"
