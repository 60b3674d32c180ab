"""The CNNs, registered by name so the CLI and the notebook can say ``model="original_cnn"``.

A model's name is never a preset's name: the ``original`` preset trains ``original_cnn``, ``quick`` trains
``quick_cnn``, ``pad`` trains ``pad_cnn`` (presets: :mod:`mnist_lab.recipes`). The older model names, the same as the
presets', still build the same models, so older checkpoints and older code keep working (:data:`RENAMED_MODELS`).
"""

import math

import torch
from torch import nn

from .errors import ArgumentError, UserError, checked_seed, explained_arguments
from .inference import device_of, evaluation_mode, unpack_hint


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

    keeps_threshold = True  # trained with non-digits (recipes: not_digits), it keeps where "not a digit" begins

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


MODELS = {"original_cnn": OriginalCNN, "quick_cnn": QuickCNN, "lenet5": LeNet5, "deep": DeepCNN,
          "ensemble": DeepEnsemble, "mlp": MLP, "pad_cnn": PadCNN}
THRESHOLD_MODELS = tuple(name for name, cls in MODELS.items() if getattr(cls, "keeps_threshold", False))

# Old names, still read (older checkpoints store them; older notebooks call build_model("quick")).
RENAMED_MODELS = {"seed": "original_cnn", "original": "original_cnn", "quick": "quick_cnn", "pad": "pad_cnn"}


def checked_model_name(name):
    """Return the registered name for ``name`` (old names translated), else raise :class:`UserError` listing them."""
    if not isinstance(name, str):
        raise UserError(_not_a_name(name))
    name = RENAMED_MODELS.get(name, name)
    if name not in MODELS:
        raise UserError(f"モデル '{name}' はありません。{', '.join(MODELS)} のどれかを指定してください。")
    return name


def _not_a_name(value):
    """What to pass instead of ``value`` where a model's name is wanted (a recipe, a model, a checkpoint's info)."""
    names = ", ".join(MODELS)
    if isinstance(getattr(value, "model", None), str):  # a recipe from make_config
        return f"モデルの名前には、レシピそのものではなく名前を渡してください: build_model(config.model, seed=config.seed)（名前は {names}）。"
    if isinstance(value, nn.Module):
        return f"{type(value).__name__} はもうモデルです。名前から新しく作るなら build_model(\"quick_cnn\") のように名前を渡してください。"
    if isinstance(value, dict) and isinstance(value.get("model"), str):  # the info of load_checkpoint
        return f"モデルの名前には、辞書ではなく名前を渡してください: build_model(info[\"model\"])（名前は {names}）。"
    return f"モデルの名前は \"quick_cnn\" のような文字列にしてください（今は {type(value).__name__}。名前は {names}）。"


def build_model(name=None, seed=None):
    """Return a fresh model of the registered ``name``; ``seed`` makes its initial weights reproducible.

    Introduced in the lesson: main.ipynb §4.
    """
    if name is None:
        raise UserError(f"build_model にはモデルの名前を渡してください（例: build_model(\"quick_cnn\", seed=0)。名前は "
                        f"{', '.join(MODELS)} のどれか）。")
    name = checked_model_name(name)
    if seed is not None:
        torch.manual_seed(checked_seed(seed))
    return MODELS[name]()


def model_name(model):
    """Return the registry name of ``model``'s class (the inverse of :func:`build_model`)."""
    for name, cls in MODELS.items():
        if type(model) is cls:
            return name
    raise ValueError(f"{type(model).__name__} is not a registered model")


def module_of(model, function, names=True):
    """Return ``model`` if it is a PyTorch model; with ``names``, a fresh model for a registered model's name (for
    what does not depend on training: shapes, counts; built without touching the random numbers of the session);
    else :class:`ArgumentError` saying what ``function`` takes."""
    if names and isinstance(model, str):
        name = checked_model_name(model)
        with torch.random.fork_rng(devices=[]):
            return MODELS[name]()
    if not isinstance(model, nn.Module) and unpack_hint(model):
        raise ArgumentError(unpack_hint(model))
    if not isinstance(model, nn.Module):
        takes = ('モデル（build_model(...) や fit で学習したもの）か、モデルの名前（例: "quick_cnn"）' if names
                 else "モデルそのもの（学習した重みを見るので、名前ではなく fit で学習したモデル）")
        raise ArgumentError(f"{function} には{takes}を渡してください（今は {type(model).__name__}）。")
    return model


def count_parameters(model):
    """Return the number of trainable numbers in ``model`` (a model, or a registered model's name).

    >>> count_parameters(OriginalCNN())
    63626
    >>> count_parameters("original_cnn")
    63626

    Introduced in the lesson: main.ipynb §4.
    """
    model = module_of(model, "count_parameters")
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


LAYER_KINDS = {  # each kind of layer: its name and, for the lesson's table, what it does (filled in by _does)
    nn.Conv2d: "畳み込み",
    nn.BatchNorm2d: "バッチ正規化",
    nn.ReLU: "ReLU",
    nn.Tanh: "tanh",
    nn.MaxPool2d: "最大プーリング",
    nn.AvgPool2d: "平均プーリング",
    nn.Flatten: "平らにする",
    nn.Dropout: "ドロップアウト",
    nn.Linear: "全結合",
}
ACTIVATIONS = (nn.ReLU, nn.Tanh, nn.GELU, nn.SiLU, nn.LeakyReLU, nn.ELU, nn.Sigmoid)
POOLS = (nn.MaxPool2d, nn.AvgPool2d)


def layer_kind(module):
    """Return the Japanese name of a layer's kind (its class name for a kind the lesson does not name)."""
    return LAYER_KINDS.get(type(module), type(module).__name__)


def _pair(value):
    return value if isinstance(value, tuple) else (value, value)


def _does(module):
    """Return what ``module`` does, in one line of Japanese, with its own numbers (sizes, counts, padding)."""
    if isinstance(module, nn.Conv2d):
        (kh, kw), (ph, pw) = _pair(module.kernel_size), _pair(module.padding)
        line = f"{kh}×{kw} のフィルタ {module.out_channels} 枚を画像の上で滑らせ、線や角などの模様を探す"
        if (ph, pw) == (kh // 2, kw // 2) and kh % 2 and kw % 2:
            return line + f"（周りを {ph} ピクセル 0 で埋める padding で、縦横は変わらない）"
        if (ph, pw) == (0, 0):
            return line + f"（周りを埋めないので、縦横が {kh - 1} ずつ縮む）"
        return line
    if isinstance(module, POOLS):
        (kh, kw), stride = _pair(module.kernel_size), _pair(module.stride or module.kernel_size)
        how = "最大値だけ残し" if isinstance(module, nn.MaxPool2d) else "平均を取り"
        shrink = "半分" if stride == (2, 2) else f"1/{stride[0]}"
        return f"{kh}×{kw} の中の{how}、縦横を{shrink}にする"
    if isinstance(module, nn.Linear):
        return f"{module.in_features} 個の数すべてに重みを掛けて足し、{module.out_features} 個の数を作る"
    if isinstance(module, nn.Dropout):
        return f"学習中だけ、ランダムに {module.p:.0%} の値を 0 にする"
    return {nn.BatchNorm2d: "値の大きさをそろえて学習を安定させる",
            nn.ReLU: "負の値を 0 にする（模様が「ない」ところを消す）",
            nn.Tanh: "値を -1〜1 に押し込む",
            nn.Flatten: "縦×横×チャンネルの数を 1 列に並べる"}.get(type(module), "")


SHAPES_TAKE = "モデル（またはモデルの名前）と、あれば入力の形 input_shape（例: (1, 1, 28, 28)）"


@explained_arguments(SHAPES_TAKE)
def layer_table(model, input_shape=(1, 1, 28, 28)):
    """Return one row per layer: its kind, what it does, its output shape, its parameters, its name in ``model``.

    >>> [row["層"] for row in layer_table(OriginalCNN())]
    ['畳み込み', 'バッチ正規化', 'ReLU', '最大プーリング', '平らにする', '全結合']
    >>> layer_table(OriginalCNN())[0]["働き"]
    '5×5 のフィルタ 32 枚を画像の上で滑らせ、線や角などの模様を探す（周りを 2 ピクセル 0 で埋める padding で、縦横は変わらない）'

    Introduced in the lesson: main.ipynb §4.
    """
    model = module_of(model, "layer_table")
    modules = dict(model.named_modules())
    rows = []
    for name, shape in _shapes(model, input_shape):
        module = modules[name]
        rows.append({"層": layer_kind(module), "働き": _does(module), "出力の形": shape,
                     "パラメータ数": count_parameters(module), "名前": name})
    return rows


@explained_arguments(SHAPES_TAKE)
def first_block(model, input_shape=(1, 1, 28, 28)):
    """Return ``[(name, kind), ...]`` of the layers an image meets first: the first convolution and the layers after
    it up to the next convolution or the classifier. Found by running ``model`` once, so it follows the forward
    pass of any model, not the order its layers were defined in. A model without convolutions (``mlp``) has no
    filters or feature maps to show: :class:`ArgumentError`, one line saying so.

    >>> first_block(OriginalCNN())
    [('conv.0', '畳み込み'), ('conv.1', 'バッチ正規化'), ('conv.2', 'ReLU'), ('conv.3', '最大プーリング')]

    Introduced in the lesson: main.ipynb §6.
    """
    model = module_of(model, "first_block")
    modules, block = dict(model.named_modules()), []
    for name, _ in _shapes(model, input_shape):
        module = modules[name]
        if isinstance(module, (nn.Flatten, nn.Linear)) or (block and isinstance(module, nn.Conv2d)):
            if block:
                break
            continue
        if block or isinstance(module, nn.Conv2d):
            block.append((name, layer_kind(module)))
    if not block:
        raise ArgumentError(no_convolution(model))
    return block


def no_convolution(model):
    """The line saying that ``model`` has no convolution, so the lesson's filters and feature maps need a CNN."""
    name = next((n for n, cls in MODELS.items() if type(model) is cls), type(model).__name__)
    return (f"このモデル（{name}）には畳み込み層がないので、フィルタも特徴マップもありません。"
            "この節は CNN で試してください（例: make_config(model=\"quick_cnn\") で学習したモデル）。")


def first_convolution(model):
    """Return the first convolution an image meets in ``model`` (:class:`ArgumentError` for a model without one,
    as :func:`first_block`).

    Introduced in the lesson: main.ipynb §6.
    """
    model = module_of(model, "first_convolution", names=False)
    return model.get_submodule(first_block(model)[0][0])


@explained_arguments(SHAPES_TAKE)
def layer_shapes(model, input_shape=(1, 1, 28, 28)):
    """Return ``[(layer name, output shape without the batch), ...]`` for each leaf layer of ``model`` (a model, or a
    registered model's name) on a dummy input.

    >>> [shape for _, shape in layer_shapes(OriginalCNN())][-3:]
    [(32, 14, 14), (6272,), (10,)]
    >>> layer_shapes("original_cnn") == layer_shapes(OriginalCNN())
    True
    """
    return _shapes(module_of(model, "layer_shapes"), input_shape)


def _shapes(model, input_shape):
    """:func:`layer_shapes` of a module, errors left to the function a student called; the dummy input has the
    number type of the model's weights (a half-precision model gets half-precision zeros)."""
    first = next((p for p in model.parameters() if p.is_floating_point()), None)
    shapes = []
    hooks = [m.register_forward_hook(lambda m, i, o, name=name: shapes.append((name, tuple(o.shape[1:]))))
             for name, m in model.named_modules() if not list(m.children())]
    try:
        with evaluation_mode(model):
            model(torch.zeros(input_shape, device=device_of(model), dtype=first.dtype if first is not None else None))
    finally:
        for h in hooks:
            h.remove()
    return shapes
