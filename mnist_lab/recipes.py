"""Recipes: what decides a training run (:class:`TrainConfig`), the named presets, and checking them.

A preset is a whole recipe: choosing one chooses every value in it; :func:`make_config` changes only the values
you name. ``MNIST_LAB_<FIELD>`` environment variables change the values you do not name, without editing code: CI
runs the notebook (and the Docker image's copy of it) fast with ``MNIST_LAB_EPOCHS=1``, and the notebook's cells
stay exactly what a student reads.
"""

import difflib
import numbers
import os
import sys
from dataclasses import dataclass, fields, replace
from types import SimpleNamespace

import numpy as np

from .errors import OFF, ON, UserError, checked_seed
from .models import THRESHOLD_MODELS, checked_model_name

SCHEDULES = ("constant", "onecycle", "cosine", "step")
MAX_LR = 10.0  # Adam diverges far below this; above it a float32 weight update overflows
# The presets use 64 and 128. At 2048 an epoch of MNIST's 60,000 training images is only 30 steps (too few for a
# learning-rate schedule to do its work), and one training step of the `best` preset's ensemble already needs
# about 3.7 GB of memory on a CPU (extrapolated from 1.2 GB at batch 256 and 2.2 GB at 1024, measured peak RSS): a
# larger batch only risks running a laptop out of memory (all 60,000 images at once took 24 GB) and is never more
# accurate.
MAX_BATCH_SIZE = 2048
MAX_EPOCHS = 1_000_000  # also the most a run's recorded history may hold (mnist_lab.history)


@dataclass(frozen=True, init=False)
class TrainConfig:
    """Everything that decides a training run (saved in every checkpoint and ``results.json``).

    Made with the values named, the others as below: ``TrainConfig(model="mlp", epochs=2)``. Every value is checked
    when it is made (:func:`checked_config`), so a recipe that exists can be trained.
    """

    model: str = "quick_cnn"
    epochs: int = 1
    batch_size: int = 128
    lr: float = 0.01  # Adam's learning rate; the peak rate for the one-cycle schedule
    schedule: str = "onecycle"  # constant | onecycle | cosine (to 0 over the run) | step (x0.1 at 1/3 and 2/3)
    seed: int = 0  # the random seed: initial weights, batch order, augmentation, validation split
    val_size: int = 0  # training images held out for validation (0: watch the test set, choose nothing by it)
    augment: bool = False  # random rotations, shifts and scalings of every batch (mnist_lab.augment)
    drawings: bool = False  # augment like digits drawn on a pad instead: slant, stretch, stroke width, wobble
    patience: int = 0  # early stopping: stop after this many epochs without a lower validation loss (0: off)
    ema: float = 0.0  # decay of an exponential moving average of the weights, e.g. 0.999 (0: off)
    not_digits: float = 0.0  # generated non-digits (and typeset digits) added to each batch, per image (0: off)

    def __init__(self, *args, **values):
        if args:
            raise UserError("TrainConfig には値を名前付きで渡してください（例: TrainConfig(model=\"quick_cnn\", epochs=2)）。"
                            "ふつうは make_config(\"quick\", epochs=2) を使います。")
        _check_names(values, "TrainConfig")
        defaults = {f.name: f.default for f in fields(self)}
        for name, value in _checked_values({**defaults, **values}).items():
            object.__setattr__(self, name, value)  # frozen: set once, here


def _refuse_change(config, name, value=None):
    """``config.lr = 0.001`` (a recipe is made once and never changed): one line saying how to make a changed copy."""
    raise UserError(f"レシピの値は後から変えられません。config = make_config(PRESET, {name}=...) か "
                    f"dataclasses.replace(config, {name}=...) で、値を変えた新しいレシピを作ってください。")


def _refuse_index(config, key):
    """``config["lr"]``: a recipe's values are attributes."""
    raise UserError(f"レシピの値は config[{_shown(key)}] ではなく config.{key if isinstance(key, str) and key.isidentifier() else 'lr'} "
                    "のように読みます。")


TrainConfig.__setattr__ = _refuse_change  # set after the dataclass is made: frozen dataclasses may not define it
TrainConfig.__delattr__ = _refuse_change
TrainConfig.__getitem__ = _refuse_index
TrainConfig.__setitem__ = _refuse_change


def _check_names(values, where):
    """Raise :class:`UserError` naming the names in ``values`` that are no field of :class:`TrainConfig`."""
    known = [f.name for f in fields(TrainConfig)]
    unknown = [name for name in values if name not in known]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), known, n=1)
        hint = f"（{close[0]} のことですか）" if close else ""
        raise UserError(f"{where} に {', '.join(_shown(n) for n in unknown[:3])} という設定はありません{hint}。"
                        f"使えるのは {', '.join(known)} です。")


def _shown(value, width=40):
    """``value`` as a short one-line text for a message."""
    try:
        text = " ".join(repr(value).split())
    except Exception:  # noqa: BLE001 - a broken __repr__ must not hide the message
        text = f"<{type(value).__name__}>"
    return text if len(text) <= width else text[: width - 3] + "..."


def _typed(name, kind, value):
    """``value`` as the plain ``kind`` (bool, int, float or str) the field ``name`` holds: a NumPy number becomes a
    Python one; anything else (a string for a number, "False" for False, 3.0 for 3) is a :class:`UserError`."""
    now = f"今は {_shown(value)}、{'文字列' if isinstance(value, str) else type(value).__name__}"
    if kind is bool:
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        raise UserError(f"{name} は True か False にしてください（{now}。文字列や数ではなく True / False で）。")
    if kind is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
            return int(value)
        raise UserError(f"{name} は整数にしてください（{now}）。")
    if kind is float:
        if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
            try:
                return float(value)
            except OverflowError:  # an integer too large for a float: out of every range below
                return float("inf") if value > 0 else float("-inf")
        raise UserError(f"{name} は数にしてください（{now}）。")
    if isinstance(value, str):
        return str(value)
    raise UserError(f"{name} は文字列にしてください（{now}）。")


def _checked_values(values):
    """Return the recipe ``values`` (every field of :class:`TrainConfig`) each as its field's type and an older
    model name replaced by the current one, if every value is usable; else :class:`UserError` saying which is not."""
    config = SimpleNamespace(**{f.name: _typed(f.name, f.type, values[f.name]) for f in fields(TrainConfig)})
    printable = config.model.isprintable()  # else no model's name: shown escaped, on one line
    config.model = checked_model_name(config.model if printable else config.model.encode("unicode_escape").decode())
    config.seed = checked_seed(config.seed)  # checked before any data is loaded
    if config.schedule not in SCHEDULES:
        raise UserError(f"学習率スケジュール {_shown(config.schedule)} はありません。{', '.join(SCHEDULES)} のどれかです。")
    for name, most in (("epochs", MAX_EPOCHS), ("batch_size", MAX_BATCH_SIZE)):
        if not 1 <= getattr(config, name) <= most:
            raise UserError(f"{name} は 1 以上 {most:,} 以下の整数にしてください（今は {getattr(config, name)}）。")
    if not 0 < config.lr <= MAX_LR:
        raise UserError(f"学習率 lr は 0 より大きく {MAX_LR:g} 以下の数にしてください（例: 0.01。今は {config.lr}）。")
    if config.val_size < 0:
        raise UserError(f"val_size は 0 以上にしてください（今は {config.val_size}）。")
    if not 0 <= config.ema < 1:
        raise UserError(f"ema は 0 以上 1 未満にしてください（例: 0.999。今は {config.ema}）。")
    if config.patience < 0:
        raise UserError(f"patience は 0 以上にしてください（今は {config.patience}）。")
    if not 0 <= config.not_digits <= 1:
        raise UserError(f"not_digits は 0 以上 1 以下にしてください（例: 0.25。今は {config.not_digits}）。")
    if config.not_digits and config.model not in THRESHOLD_MODELS:
        raise UserError(f"数字でない画像を教える（not_digits）のは、「数字ではない」の境目を持つモデル（{', '.join(THRESHOLD_MODELS)}）"
                        f"だけです。model を {THRESHOLD_MODELS[0]} にするか、not_digits を 0 にしてください（今は {config.model}）。")
    if config.not_digits and not config.val_size:
        raise UserError("数字でない画像を教えるとき（not_digits）は、「数字ではない」の境目を決める検証データが要ります。"
                        "val_size（--val-size）を 1 以上にしてください（テストデータで決めるのは反則です）。")
    if config.patience and not config.val_size:
        raise UserError("早期終了（patience）には検証データが要ります。val_size（--val-size）を 1 以上にしてください"
                        "（テストデータで止めどころを選ぶのは反則です）。")
    return vars(config)


PRESETS = {
    # The original lesson's recipe (the seed document): Adam, lr 0.01, batch 64, constant rate; 3 epochs, as the
    # notebook runs it (the seed ran 10: `--epochs 10`, `make_config("original", epochs=10)`).
    "original": TrainConfig(model="original_cnn", epochs=3, batch_size=64, lr=0.01, schedule="constant"),
    # The fastest recipe to >= 99 % we measured on 2 CPU cores (benchmarks/speed.py): one epoch, one cycle.
    "quick": TrainConfig(model="quick_cnn", epochs=1, batch_size=128, lr=0.01, schedule="onecycle"),
    # The most accurate (benchmarks/best.py): two deeper CNNs voting, augmentation, one cycle; the epoch kept is
    # chosen on 5,000 held-out training images, never on the test set.
    "best": TrainConfig(model="ensemble", epochs=15, batch_size=128, lr=0.005, schedule="onecycle",
                        val_size=5000, augment=True, patience=0),
    # The draw pad's model (benchmarks/pad_model.py): a wider CNN with a "not a digit" threshold, trained on MNIST
    # changed the ways other people's digits differ from it (mnist_lab.augment.like_drawings), on generated
    # non-digits and on MNIST digits drawn again with a pen (mnist_lab.synthetic, mnist_lab.ood); the epoch kept and
    # the threshold are chosen on 5,000 held-out training images. Shipped as mnist_lab/pad_model.pt, made by
    # `python resources/make_pad_model.py`.
    "pad": TrainConfig(model="pad_cnn", epochs=5, batch_size=128, lr=0.01, schedule="onecycle", val_size=5000,
                       drawings=True, not_digits=0.25),
}
RENAMED = {"seed": "original"}  # old preset names that still work, with a notice (models: models.RENAMED_MODELS)


@dataclass(frozen=True)
class PresetFacts:
    """What a preset is for and what it gave when measured: the one place these facts are written. The CLI's help,
    the lesson's table (:func:`preset_table`) and the README's table (:func:`preset_markdown`) are made from them."""

    about: str  # what the recipe is, for a student (Japanese)
    model: str  # the model, in a few words
    accuracy: float  # test accuracy measured with the preset as it is
    accuracy_note: str  # how it was measured, and other runs worth knowing
    time: str  # training time on 2 CPU cores
    time_note: str = ""
    details: str = ""  # more on the recipe, for the tables (not the CLI's help)


FACTS = {
    "original": PresetFacts(
        "元資料の CNN とレシピ。授業と同じエポック数（元資料どおりなら --epochs 10 / make_config(PRESET, epochs=10)）",
        "元資料の CNN: Conv 5×5 ×32 → BN → ReLU → MaxPool → 全結合", 0.9836,
        "10 エポックなら 98.65%、別の CPU では 98.70%", "65 秒",
        "遅い CPU。10 エポックなら 77 秒、遅い CPU では 213 秒。元資料の DataLoader 方式なら 1 エポックで 11〜14 秒"),
    "quick": PresetFacts(
        "速い小さな CNN を 1 エポック（benchmarks/speed.py）", "3×3 畳み込み ×3 段、各段ですぐプーリング", 0.9917,
        "3 シードの平均、最低 99.09%", "4.4 秒", "コマンド全体ではマシンによって 5〜16 秒"),
    "best": PresetFacts(
        "一番正確なレシピ（benchmarks/best.py）。検証の損失が一番小さいエポックを残す。CPU では何十分もかかるので GPU 向け",
        "DeepCNN 2 つの確率の平均（DeepCNN は 3×3 畳み込み 5 段、BatchNorm、Dropout 0.3）", 0.9967,
        "3 シードの平均: 99.65 / 99.70 / 99.66%", "12〜15 分", "学習 1 回 750〜890 秒"),
    "pad": PresetFacts(
        "お絵かきアプリ用: ほかの人の字らしいデータ拡張と、数字でない絵を混ぜる学習（python resources/make_pad_model.py）",
        "quick の 2 倍の幅 + ドロップアウト、「数字でない」の境目付き", 0.9949, "シード 0", "716 秒",
        "2 スレッド、ほかの作業と同時",
        "拡張は 1 にはねと横棒、7 に横棒、回転・傾き・縦横比・太さ・ゆがみ・太いペンで低解像度（半分はそのまま）。数字でない絵は"
        " outlier exposure（重み 0.1）。ペンで描き直した MNIST の字も混ぜる。最後に BatchNorm を数字だけで測り直して 1 エポック"),
}


def recipe_words(config):
    """Return the recipe of ``config`` in a few Japanese words, e.g. ``'Adam lr 0.01（onecycle）、バッチ 128、1 エポック'``."""
    words = [f"Adam lr {config.lr:g}（{config.schedule}）", f"バッチ {config.batch_size}", f"{config.epochs} エポック"]
    words += ["データ拡張"] * config.augment + ["手書き風のデータ拡張"] * config.drawings
    words += [f"数字でない絵 {config.not_digits:.0%}"] * bool(config.not_digits)
    words += [f"検証 {config.val_size:,} 枚"] * bool(config.val_size)
    return "、".join(words)


def preset_rows():
    """Return one dict per preset (Japanese keys): its model, recipe, what it is, measured accuracy and time."""
    rows = []
    for name, config in PRESETS.items():
        facts = FACTS[name]
        rows.append({"プリセット": name, "モデル": f"{config.model}（{facts.model}）", "レシピ": recipe_words(config),
                     "説明": "。".join(filter(None, (facts.about, facts.details))), "テスト正解率": f"{facts.accuracy:.2%}（{facts.accuracy_note}）",
                     "学習時間（CPU 2 コア）": facts.time + (f"（{facts.time_note}）" if facts.time_note else "")})
    return rows


def preset_table():
    """Return the presets as a table (a pandas DataFrame, one row per preset): model, recipe, accuracy, time.

    Introduced in the lesson: main.ipynb §2.
    """
    import pandas as pd

    return pd.DataFrame(preset_rows()).set_index("プリセット")


def preset_markdown():
    """Return the presets as the Markdown table the README shows (between its ``presets`` markers)."""
    rows = preset_rows()
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(f"`{v}`" if k == "プリセット" else v for k, v in row.items()) + " |" for row in rows]
    return "\n".join(lines)


def preset_help(default="quick"):
    """Return the CLI's help for ``--preset``, made from :data:`PRESETS` and :data:`FACTS`."""
    parts = [f"{name} = {FACTS[name].about}（{c.model}、{c.epochs} エポック、テスト正解率 {FACTS[name].accuracy:.2%}、"
             f"CPU 2 コアで {FACTS[name].time}）" for name, c in PRESETS.items()]
    return f"学習レシピ（既定: {default}）。" + "。".join(parts)


def preset_name(name):
    """Return the preset's current name: an old name is translated with a one-line notice on stderr."""
    if isinstance(name, str) and name in RENAMED:
        print(f"お知らせ: プリセット '{name}' は '{RENAMED[name]}' に名前が変わりました（同じレシピです）。",
              file=sys.stderr)
        return RENAMED[name]
    if not isinstance(name, str) or name not in PRESETS:
        raise UserError(f"プリセット {_shown(name)} はありません。{', '.join(PRESETS)} のどれかを指定してください。")
    return name


def make_config(preset="quick", *extra, environ=None, **changes):
    """Return the preset's :class:`TrainConfig` with the ``changes`` that are not ``None`` applied and checked.

    Fields not named in ``changes`` may be set by ``MNIST_LAB_<FIELD>`` environment variables
    (:func:`with_env_overrides`); a value named here wins over the environment.

    >>> make_config("original", epochs=2).epochs
    2
    >>> make_config("original", environ={"MNIST_LAB_EPOCHS": "1"}).epochs
    1

    Introduced in the lesson: main.ipynb §2.
    """
    if extra:
        raise UserError(f"make_config に 2 つ目の値 {_shown(extra[0])} を名前なしで渡しています。変える設定は "
                        "make_config(\"quick\", model=\"lenet5\", lr=0.005) のように名前を付けて渡してください。")
    _check_names(changes, "make_config")
    base = checked_config(preset) if isinstance(preset, TrainConfig) else PRESETS[preset_name(preset)]  # or a recipe
    named = {k: v for k, v in changes.items() if v is not None}
    from_env = {} if isinstance(preset, TrainConfig) else env_changes(base, environ)  # a recipe keeps its values
    try:
        config = replace(base, **{**from_env, **named})  # checked as it is made (TrainConfig)
    except UserError as e:
        names = [ENV_PREFIX + k.upper() for k in from_env if k not in named]
        if not names:
            raise
        raise UserError(f"{str(e).rstrip('。')}（環境変数 {', '.join(names)} の値も確かめてください）。") from e
    if config.lr > LARGEST_LR:
        print(f"お知らせ: 学習率 lr={config.lr:g} はとても大きい値です（プリセットは 0.005〜0.01）。Adam ではふつう学習が進まず、"
              "正解率が 10 % 前後のままになります。", file=sys.stderr)
    return config


def for_model(config, model):
    """Return the recipe ``config`` for another ``model`` (a registered name): the same settings, but non-digits
    are taught only to a model with a place for their threshold (so the lesson's MLP can follow any preset).

    Introduced in the lesson: main.ipynb §6.
    """
    if not isinstance(config, TrainConfig) or not isinstance(model, str):
        raise UserError("for_model には make_config(...) のレシピとモデルの名前を渡してください（今は "
                        f"{type(config).__name__} と {type(model).__name__}）。例: for_model(config, \"mlp\")")
    model = checked_model_name(model)
    return checked_config(replace(config, model=model, not_digits=config.not_digits * (model in THRESHOLD_MODELS)))


def checked_config(config):
    """Return ``config`` (a :class:`TrainConfig`) checked again, as :func:`~mnist_lab.train.fit` does before
    training; :class:`UserError` saying what is wrong with it, or that it is no TrainConfig at all."""
    if not isinstance(config, TrainConfig):
        raise UserError(f"学習のレシピには make_config(...) が返す TrainConfig を渡してください（今は {type(config).__name__}）。"
                        "例: make_config(\"quick\", epochs=2)")
    return TrainConfig(**{f.name: getattr(config, f.name) for f in fields(TrainConfig)})


ENV_PREFIX = "MNIST_LAB_"
LARGEST_LR = 0.1  # above it, make_config says that Adam will most likely not learn (lr=5 stays at 10 %)


def with_env_overrides(config, environ=None):
    """Return ``config`` with the fields set as ``MNIST_LAB_<FIELD>`` in the environment (e.g. ``MNIST_LAB_EPOCHS=1``).

    :func:`make_config` applies it, so CI runs the notebook fast without editing it. Values are checked like
    :func:`make_config`'s.
    """
    return replace(checked_config(config), **env_changes(config, environ))


def env_changes(config, environ=None):
    """Return ``{field: value}`` for every ``MNIST_LAB_<FIELD>`` set in ``environ`` (default: ``os.environ``)."""
    environ = os.environ if environ is None else environ
    _note_misspelt(environ)
    changes = {}
    for f in fields(TrainConfig):
        name = ENV_PREFIX + f.name.upper()
        if name in environ:
            changes[f.name] = _parsed(name, environ[name], type(getattr(config, f.name)))
    return changes


_NOTED = set()  # misspelt variable names already pointed out in this process


def _note_misspelt(environ):
    """Print one note per ``MNIST_LAB_*`` variable that is no setting but nearly the name of one (``MNIST_LAB_EPOCH``):
    a misspelt override would otherwise be ignored without a word. Other ``MNIST_LAB_*`` names (the data folder, the
    deployment's) are left alone."""
    settings = [f.name.upper() for f in fields(TrainConfig)]
    for name in sorted(n for n in environ if n.upper().startswith(ENV_PREFIX) and n not in _NOTED):
        setting = name[len(ENV_PREFIX):].upper()
        close = difflib.get_close_matches(setting, settings, n=1, cutoff=0.8)
        if close and ENV_PREFIX + close[0] != name:
            _NOTED.add(name)
            print(f"お知らせ: 環境変数 {name} は使われません。{ENV_PREFIX}{close[0]} のことなら名前を直してください。",
                  file=sys.stderr)


def _parsed(name, text, kind):
    """Return ``text`` as a value of ``kind`` (bool, int, float or str); :class:`UserError` naming ``name``."""
    words = {**dict.fromkeys(ON, True), **dict.fromkeys(filter(None, OFF), False)}
    try:
        if kind is bool:
            return words[text.lower()]
        return kind(text)
    except (KeyError, ValueError, AttributeError, TypeError) as e:
        raise UserError(f"環境変数 {name}={text!r} は {kind.__name__} になりません。直すか、unset してください。") from e
