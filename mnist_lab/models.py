"""The CNNs, registered by name so the CLI and the notebook can say ``model="original"``."""

import math

import torch
from torch import nn

from .errors import UserError
from .inference import device_of, evaluation_mode


class OriginalCNN(nn.Module):
    """Exactly the original lesson's CNN (the seed document's).

    Conv2d(1, 32, k=5, p=2) -> BatchNorm2d(32) -> ReLU -> MaxPool2d(2) -> Linear(14*14*32 = 6272, 10):
    28x28 -> 28x28 (32 channels) -> 14x14 -> 6272 numbers -> 10 class scores.
    """

    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=5, padding=2),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(14 * 14 * 32, 10)

    def forward(self, X):
        return self.fc(self.flatten(self.conv(X)))


def _conv_pool_block(c_in, c_out):
    # Pooling straight after the convolution lets BatchNorm and ReLU work on a quarter of the pixels; max-pooling
    # commutes with ReLU, so this costs little accuracy and nearly halves the time of a training step on a CPU.
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.MaxPool2d(2), nn.BatchNorm2d(c_out), nn.ReLU())


class QuickCNN(nn.Module):
    """A small, fast CNN for the ``quick`` preset: three 3x3 conv blocks, each halving the image.

    28x28 -> 14x14 (16 ch) -> 7x7 (32 ch) -> 3x3 (64 ch) -> 576 numbers -> 10 class scores.
    """

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(_conv_pool_block(1, 16), _conv_pool_block(16, 32), _conv_pool_block(32, 64))
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(64 * 3 * 3, 10)

    def forward(self, X):
        return self.fc(self.flatten(self.features(X)))


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al., 1998), for history: tanh, average pooling, three fully connected layers.

    28x28 (padded as in the paper's 32x32) -> 6 x 28x28 -> 6 x 14x14 -> 16 x 10x10 -> 16 x 5x5 -> 120 -> 84 -> 10.
    """

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
        )
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(nn.Linear(16 * 5 * 5, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(),
                                        nn.Linear(84, 10))

    def forward(self, X):
        return self.classifier(self.flatten(self.features(X)))


class PadCNN(nn.Module):
    """The draw pad's CNN (the ``pad`` preset): :class:`QuickCNN`'s three blocks twice as wide, dropout before the
    classifier, and the energy above which a picture is "not a digit" kept with the weights (:mod:`mnist_lab.ood`;
    NaN until the recipe sets it from validation digits after training).

    28x28 -> 14x14 (32 ch) -> 7x7 (64 ch) -> 3x3 (128 ch) -> 1152 numbers -> dropout -> 10 class scores.
    """

    def __init__(self, dropout=0.2):
        super().__init__()
        self.features = nn.Sequential(_conv_pool_block(1, 32), _conv_pool_block(32, 64), _conv_pool_block(64, 128))
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(128 * 3 * 3, 10)
        self.register_buffer("energy_threshold", torch.tensor(float("nan")))

    def forward(self, X):
        return self.fc(self.dropout(self.flatten(self.features(X))))


def _conv_block(c_in, c_out):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU())


class DeepCNN(nn.Module):
    """The deeper CNN of the ``best`` preset: BatchNorm after every convolution, dropout before the classifier.

    Two 3x3 convolutions at each of 28x28 and 14x14 before pooling, then one at 7x7:
    28x28 -> 32 ch -> 32 ch, 14x14 -> 64 ch -> 64 ch, 7x7 -> 128 ch, 3x3 -> dropout -> 10 class scores.
    """

    def __init__(self, dropout=0.3):
        super().__init__()
        self.features = nn.Sequential(
            _conv_block(1, 32), _conv_pool_block(32, 32),
            _conv_block(32, 64), _conv_pool_block(64, 64),
            _conv_pool_block(64, 128),
        )
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(128 * 3 * 3, 10)

    def forward(self, X):
        return self.fc(self.dropout(self.flatten(self.features(X))))


class MLP(nn.Module):
    """A multilayer perceptron, to compare with the CNN: the 28x28 image flattened to 784 numbers, one hidden layer.

    784 -> 128 (ReLU) -> 10 class scores. Every hidden unit looks at every pixel, so a digit moved by a few pixels
    meets different weights; it has more weights than the original CNN.
    """

    def __init__(self, hidden=128):
        super().__init__()
        self.flatten = nn.Flatten()
        self.hidden = nn.Sequential(nn.Linear(28 * 28, hidden), nn.ReLU())
        self.fc = nn.Linear(hidden, 10)

    def forward(self, X):
        return self.fc(self.hidden(self.flatten(X)))


class Ensemble(nn.Module):
    """Several CNNs that vote: the ensemble's prediction is the mean of its members' class probabilities.

    ``forward`` returns the log of that mean, ``log((p_1 + ... + p_k) / k)``, so ``softmax``, ``argmax`` and
    ``cross_entropy`` treat it like any model's class scores. Training needs each member's own scores, so that every
    member learns on its own (:meth:`member_scores`); members differ by their random initial weights and dropout.
    """

    def __init__(self, members):
        super().__init__()
        self.members = nn.ModuleList(members)

    def member_scores(self, X):
        """Return every member's class scores, stacked: ``(members, N, 10)``."""
        return torch.stack([m(X) for m in self.members])

    def forward(self, X):
        return combine_scores(self.member_scores(X))


def combine_scores(scores):
    """Return the log of the mean class probability over the first dimension of ``scores`` ``(members, N, 10)``.

    >>> s = torch.tensor([[[0.0, 0.0]], [[0.0, math.log(3.0)]]])  # probabilities (1/2, 1/2) and (1/4, 3/4)
    >>> combine_scores(s).exp()
    tensor([[0.3750, 0.6250]])
    """
    return scores.float().log_softmax(-1).logsumexp(0) - math.log(len(scores))


class DeepEnsemble(Ensemble):
    """Two :class:`DeepCNN` s voting, the ``best`` preset's model: twice the time of one. On the 5,000 validation
    images of seed 0 it made 21 mistakes where one DeepCNN trained the same way made 26
    (``python -m mnist_lab train --preset best --seed 0`` with ``--model ensemble`` and ``--model deep``)."""

    def __init__(self):
        super().__init__([DeepCNN(), DeepCNN()])


MODELS = {"original": OriginalCNN, "quick": QuickCNN, "lenet5": LeNet5, "deep": DeepCNN, "ensemble": DeepEnsemble,
          "mlp": MLP, "pad": PadCNN}


RENAMED_MODELS = {"seed": "original"}  # old names, still read (e.g. from older checkpoints)


def checked_model_name(name):
    """Return the registered name for ``name`` (old names translated), else raise :class:`UserError` listing them."""
    name = RENAMED_MODELS.get(name, name)
    if name not in MODELS:
        raise UserError(f"モデル '{name}' はありません。{', '.join(MODELS)} のどれかを指定してください。")
    return name


def build_model(name, seed=None):
    """Return a fresh model of the registered ``name``; ``seed`` makes its initial weights reproducible."""
    name = checked_model_name(name)
    if seed is not None:
        torch.manual_seed(seed)
    return MODELS[name]()


def model_name(model):
    """Return the registry name of ``model``'s class (the inverse of :func:`build_model`)."""
    for name, cls in MODELS.items():
        if type(model) is cls:
            return name
    raise ValueError(f"{type(model).__name__} is not a registered model")


def count_parameters(model):
    """Return the number of trainable numbers in ``model``.

    >>> count_parameters(OriginalCNN())
    63626
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


LAYER_KINDS = {  # each kind of layer: its name and what it does, in one line, for the lesson's table
    nn.Conv2d: ("畳み込み", "小さなフィルタを画像の上で滑らせ、線や角などの模様を探す"),
    nn.BatchNorm2d: ("バッチ正規化", "値の大きさをそろえて学習を安定させる"),
    nn.ReLU: ("ReLU", "負の値を 0 にする（模様が「ない」ところを消す）"),
    nn.Tanh: ("tanh", "値を -1〜1 に押し込む"),
    nn.MaxPool2d: ("最大プーリング", "2×2 の中の最大値だけ残し、縦横を半分にする"),
    nn.AvgPool2d: ("平均プーリング", "2×2 の平均を取り、縦横を半分にする"),
    nn.Flatten: ("平らにする", "縦×横×チャンネルの数を 1 列に並べる"),
    nn.Dropout: ("ドロップアウト", "学習中だけ、ランダムに一部の値を 0 にする"),
    nn.Linear: ("全結合", "すべての入力に重みを掛けて足し、新しい数を作る"),
}


def layer_table(model, input_shape=(1, 1, 28, 28)):
    """Return one row per layer: its kind, what it does, its output shape, its parameters, its name in ``model``.

    >>> [row["層"] for row in layer_table(OriginalCNN())]
    ['畳み込み', 'バッチ正規化', 'ReLU', '最大プーリング', '平らにする', '全結合']
    """
    modules = dict(model.named_modules())
    rows = []
    for name, shape in layer_shapes(model, input_shape):
        kind, does = LAYER_KINDS.get(type(modules[name]), (type(modules[name]).__name__, ""))
        rows.append({"層": kind, "働き": does, "出力の形": shape, "パラメータ数": count_parameters(modules[name]),
                     "名前": name})
    return rows


def layer_shapes(model, input_shape=(1, 1, 28, 28)):
    """Return ``[(layer name, output shape without the batch), ...]`` for each leaf layer on a dummy input.

    >>> [shape for _, shape in layer_shapes(OriginalCNN())][-3:]
    [(32, 14, 14), (6272,), (10,)]
    """
    shapes = []
    hooks = [m.register_forward_hook(lambda m, i, o, name=name: shapes.append((name, tuple(o.shape[1:]))))
             for name, m in model.named_modules() if not list(m.children())]
    try:
        with evaluation_mode(model):
            model(torch.zeros(input_shape, device=device_of(model)))
    finally:
        for h in hooks:
            h.remove()
    return shapes
