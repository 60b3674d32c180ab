"""Saving and loading checkpoints: ``state_dict`` + model name + config + results, never a pickled model.

Loading uses ``torch.load(weights_only=True)``, so a checkpoint can only hold tensors and plain data and cannot run
code when it is opened. Saving is atomic (:mod:`mnist_lab.files`): a crash or a full disk leaves the old file whole.
"""

import dataclasses
import io
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch

from .device import usable_device
from .errors import UserError, short
from .files import atomic_file, file_problem, os_error, writable_path
from .models import MODELS, RENAMED_MODELS, build_model, model_name, module_of
from .paths import user_path

FORMAT = "mnist_lab/1"


class Checkpoint(dict):
    """A checkpoint as :func:`read_checkpoint` returns it: a dict, where ``ckpt["metrics"]`` (what older versions
    called ``"results"``) still reads the results, so that a lesson saved before the rename still runs."""

    def __missing__(self, key):
        if key == "metrics" and "results" in self:
            return self["results"]
        raise KeyError(key)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp"}  # a picture given as the model
MAKE_ONE = "`mnist-lab train`（または `python -m mnist_lab train`）が書いた model.pt を指定してください。"


RUN_RECORDS = ("results.json", "metrics.json")  # the record train writes beside model.pt (metrics.json: older runs)
PACKAGE = Path(os.path.realpath(Path(__file__).parent))  # never saved into: the package's files (the app's pad_model.pt)


def save_checkpoint(path, model, config=None, results=None):
    """Write ``model``'s weights with its registry name, its training config and results to ``path``.

    ``results`` (such as ``{"test_accuracy": 0.99}``) is what the run measured; older versions stored it under
    ``"metrics"``, which :func:`read_checkpoint` still reads as ``"results"``. A run folder written by ``train``
    (model.pt beside its record, results.json) is refused before anything is written: its record, its figures
    and ``evaluate``/``report`` would describe another model than the one saved there.

    Introduced in the lesson: main.ipynb §11.
    """
    if not isinstance(model, torch.nn.Module) or isinstance(path, torch.nn.Module):
        raise UserError("save_checkpoint(保存先のパス, モデル) の順に渡してください（例: save_checkpoint(\"model.pt\", model)）。")
    model = unwrapped(model)
    folder = writable_path(_path(path)).parent
    if (folder / "model.pt").is_file() and any((folder / name).is_file() for name in RUN_RECORDS):
        other = folder.with_name(f"{folder.name}-2") / "model.pt"
        raise UserError(f"{folder} は学習結果のフォルダ（model.pt と記録 results.json がある）なので、そこには保存しません（記録や"
                        f"図と合わなくなります）。別の保存先（例: {other}）を指定するか、学習し直すなら train --force を使ってください。")
    real = writable_path(_path(path))
    _check_replaceable(real, path)
    _note_other_recipe(model, config)
    aside = _kept_aside(real, results) if real.is_file() and _WRITTEN.get(real) != _identity(real) else None
    try:
        written = write_checkpoint(path, model, config, results)
    except BaseException:
        if aside is not None:  # nothing was replaced: the copy kept aside goes again
            aside[0].unlink(missing_ok=True)
        raise
    if aside is not None:
        print(f"お知らせ: 前からあった {path}（{aside[1]}）は {aside[0]} に残しました。")
    _WRITTEN[real] = _identity(real)
    return written


_WRITTEN = {}  # real path -> the identity of the checkpoint this process last wrote there (see load_checkpoint)
SUFFIXES = (".pt", ".pth")  # what a checkpoint's name ends with: never main.ipynb, notes.txt, a picture...


def unfinished(ckpt):
    """One Japanese sentence when ``ckpt``'s training was a ``--dry-run`` or was stopped (its answers mean little),
    else ``None``: ``predict``, ``evaluate`` and the app say it beside their answers."""
    results = ckpt.get("results") if isinstance(ckpt.get("results"), dict) else {}
    if results.get("dry_run"):
        return "このモデルは --dry-run（1 バッチだけ）で学習したものです。答えに意味はありません。"
    if results.get("interrupted"):
        return "このモデルの学習は途中で止められました。答えは最後まで学習したモデルより当たりません。"
    return None


def _note_other_recipe(model, config):
    """One note when the recipe saved with ``model`` names another model (a checkpoint of one preset loaded while
    the lesson's PRESET is another): the file would say the model was trained by a recipe it was not."""
    named = config.get("model") if isinstance(config, dict) else None
    own = next((name for name, cls in MODELS.items() if type(model) is cls), None)
    if isinstance(named, str) and own is not None and RENAMED_MODELS.get(named, named) != own:
        print(f"お知らせ: 保存するモデルは {own} ですが、一緒に保存するレシピ config は {named} のものです。"
              f"レシピも合わせるなら、そのモデルを学習したときの config を渡してください。")


def _check_replaceable(real, path):
    """Refuse a name with spaces around a part, a name that is no checkpoint's, a place inside the package (its
    bundled pad_model.pt: the app would describe the student's model as the bundled one), and an existing file that
    is no checkpoint of ours (a notebook, a student's notes, weights saved alone): :class:`UserError`, one line,
    before anything is written."""
    parts = Path(os.fsdecode(path)).parts
    if any(part != part.strip() for part in parts):  # "model.pt " from an input method: a name nobody means
        raise UserError(f"保存先 {os.fsdecode(path)!r} の名前の前か後ろに空白があります。空白を消して "
                        f"{os.path.join(*(part.strip() for part in parts))!r} のようにしてください。")
    if real.is_relative_to(PACKAGE):
        raise UserError(f"{path} は mnist_lab パッケージの中（同梱のモデルなどの置き場所）なので、そこには保存しません。"
                        f"別の名前（例: runs/notebook/{real.name}）にしてください。")
    if _path(path).suffix.lower() not in SUFFIXES and real.suffix.lower() not in SUFFIXES:
        raise UserError(f"{path} はチェックポイントの名前になりません。model.pt のように .pt で終わる名前にしてください"
                        "（例: runs/notebook/model.pt）。")
    if not real.is_file():
        return
    try:
        old = _unpickled(real)
    except UserError:
        old = None
    if isinstance(old, dict) and old.get("format") == FORMAT:
        return
    other = real.with_name(f"{real.stem}-2{real.suffix or '.pt'}")
    what = ("別の版の mnist_lab のチェックポイント" if isinstance(old, dict) and str(old.get("format")).startswith("mnist_lab/")
            else "torch.save(model.state_dict()) で保存した重みだけのファイル" if isinstance(old, dict) and old
            and all(isinstance(v, torch.Tensor) for v in old.values()) else "チェックポイントではないファイル")
    raise UserError(f"{path} には{what}があるので、上書きしません。別の名前（例: {other}）にしてください。")


def _kept_aside(real, results):
    """Keep the checkpoint at ``real``, which this kernel did not write (a model saved before a restart, or by
    another notebook), as ``NAME.previous.pt`` (``-2``, ``-3``... when taken), a second name for the same file, so
    that writing the new one replaces only the name ``real``; return ``(that path, what the checkpoint is)``.
    ``None`` when the new ``results`` are as accurate as the old (Restart and Run All: nothing to lose, and no pile
    of copies)."""
    old = _unpickled(real)
    accuracy = _accuracy(old.get("results") or old.get("metrics"))
    if accuracy is not None and _accuracy(results) is not None and _accuracy(results) >= accuracy:
        return None
    what = f"{old.get('model')}" + (f"、正解率 {accuracy:.2%}" if accuracy is not None else "")
    aside = next(p for p in (real.with_name(f"{real.stem}.previous{real.suffix}"),
                             *(real.with_name(f"{real.stem}.previous-{i}{real.suffix}") for i in range(2, 10_000)))
                 if not os.path.lexists(p))
    try:
        try:
            os.link(real, aside)
        except OSError:  # a file system without hard links
            shutil.copy2(real, aside)
    except OSError as e:
        aside.unlink(missing_ok=True)
        raise os_error(e, aside, "作れません") from e  # a read-only folder: said before anything is replaced
    return aside, what


def _accuracy(results):
    """The test accuracy recorded in ``results`` (a number), or ``None``."""
    value = results.get("test_accuracy") if isinstance(results, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _identity(path):
    """The file at ``path`` as (device, inode, size, modification time), or ``None``: another file has another."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def unwrapped(model):
    """The registered model inside ``model`` (``torch.compile`` keeps it as ``_orig_mod``, ``nn.DataParallel`` as
    ``module``): its weights under their own names; :class:`UserError` for a model :func:`build_model` cannot make
    again, which a checkpoint therefore cannot hold."""
    while type(model) not in MODELS.values() and isinstance(getattr(model, "_orig_mod", getattr(model, "module", None)),
                                                               torch.nn.Module):
        model = getattr(model, "_orig_mod", None) or model.module
    if type(model) not in MODELS.values():
        raise UserError(f"{type(model).__name__} は保存できません: チェックポイントに入るのは build_model で作れるモデル"
                        f"（{', '.join(MODELS)}）の重みです。")
    return model


def write_checkpoint(path, model, config=None, results=None):
    """:func:`save_checkpoint` without the run-folder check: for :func:`mnist_lab.runs.write_run`, which writes a
    run's own model."""
    path = _path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise os_error(e, path.parent, "フォルダを作れません") from e
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    problem = next(filter(None, (_impossible(k, v) for k, v in state.items())), None)
    if problem:  # refused before writing: a saved file always loads
        raise UserError(f"このモデルは保存できません: {problem}。")
    config, results = plain(as_dict(config), "設定 config"), plain(as_dict(results), "結果 results")
    buffer = io.BytesIO()  # torch.save reports a full disk as a RuntimeError: write the bytes ourselves
    torch.save({"format": FORMAT, "model": model_name(model), "state_dict": state, "config": config,
                "results": results}, buffer)
    with atomic_file(path) as f:
        f.write(buffer.getbuffer())
    return path


def as_dict(settings):
    """A config or results as a plain dict: a dict, a dataclass such as TrainConfig (asdict), or nothing."""
    if dataclasses.is_dataclass(settings) and not isinstance(settings, type):
        return dataclasses.asdict(settings)
    try:
        return dict(settings or {})
    except (TypeError, ValueError) as e:
        raise UserError(f"保存する設定と結果は辞書にしてください（今は {type(settings).__name__}）。例: asdict(config)") from e


PLAIN = (type(None), bool, int, float, str)  # what a checkpoint's config and results are made of, with lists and dicts
MAX_DEPTH = 32


def plain(value, where, depth=0):
    """Return ``value`` as the plain data a checkpoint holds and loads again (``weights_only``): None, True/False,
    numbers and strings, in lists and dicts. NumPy and PyTorch numbers become Python numbers, arrays and tensors
    lists, tuples lists, a dataclass (a History, a TrainConfig) the dict of its fields; anything else is a
    :class:`UserError` naming where it is in ``where`` (such as ``"結果 results"``), raised before anything is written.

    >>> import numpy as np
    >>> plain({"test_accuracy": np.float64(0.9), "counts": np.array([1, 2])}, "結果 results")
    {'test_accuracy': 0.9, 'counts': [1, 2]}
    """
    if type(value) in PLAIN:
        return value
    if depth >= MAX_DEPTH:
        raise UserError(f"保存する{where.split('[')[0]} が深く入れ子になりすぎています（自分自身を含んでいませんか）。"
                        "数・文字列のリストや辞書にしてください。")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        pairs = [(plain(k, f"{where} のキー", depth + 1), v) for k, v in value.items()]
        for key, _ in pairs:
            if type(key) not in PLAIN:
                raise UserError(f"保存する{where} のキー {type(key).__name__} は使えません。文字列か数をキーにしてください。")
        return {k: plain(v, f"{where}[{k!r}]", depth + 1) for k, v in pairs}
    if isinstance(value, (list, tuple)):
        return [plain(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, (bool, int, float, str)):  # a subclass (an IntEnum...) as its plain type
        return next(kind for kind in PLAIN[1:] if isinstance(value, kind))(value)
    if isinstance(value, (torch.Tensor, np.ndarray, np.generic)):  # numbers, arrays: numbers and lists
        return plain(value.tolist(), where, depth + 1)
    raise UserError(f"保存する{where} の {type(value).__name__} はチェックポイントに入れられません。"
                    "数・文字列・True/False・None と、それらのリストや辞書にしてください。")


def read_checkpoint(path):
    """Return the checkpoint dict stored at ``path``; :class:`UserError` if it is missing, broken or not ours."""
    path = _path(path)
    if path.is_dir():
        raise UserError(f"{path} はフォルダです。その中の model.pt のように、ファイルを指定してください。")
    if not path.exists() and not path.is_symlink():
        raise UserError(f"チェックポイント {path} が見つかりません。パスを確かめるか、先に学習して作ってください。")
    problem = file_problem(path, "train が書いた model.pt")
    if problem:
        raise problem
    ckpt = _unpickled(path)
    if isinstance(ckpt, dict) and isinstance(ckpt.get("format"), str) and ckpt["format"].startswith("mnist_lab/") \
            and ckpt["format"] != FORMAT:
        raise UserError(f"{path} は別の版の mnist_lab（{ckpt['format']}）で保存されたチェックポイントで、この版では読めません。"
                        "mnist_lab をその版にそろえるか、この版で学習し直してください。")
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError(f"{path} は mnist_lab のチェックポイントではありません。{MAKE_ONE}")
    ckpt = Checkpoint(ckpt)
    if "results" not in ckpt and "metrics" in ckpt:  # what older versions called it
        ckpt["results"] = ckpt.pop("metrics")
    name = ckpt.get("model")
    ckpt["model"] = RENAMED_MODELS.get(name, name) if isinstance(name, str) else None
    if isinstance(ckpt.get("config"), dict) and isinstance(ckpt["config"].get("model"), str):  # the same, in its recipe
        ckpt["config"]["model"] = RENAMED_MODELS.get(ckpt["config"]["model"], ckpt["config"]["model"])
    if isinstance(ckpt["model"], str) and ckpt["model"] not in MODELS and isinstance(ckpt.get("state_dict"), dict):
        raise UserError(f"{path} のモデル {ckpt['model']!r} は、この版の mnist_lab にありません（{', '.join(MODELS)}）。"
                        "新しい版で保存したものなら mnist_lab を新しくするか、この版で学習し直してください。")
    if ckpt["model"] not in MODELS or not isinstance(ckpt.get("state_dict"), dict):
        raise UserError(f"{path} は mnist_lab のチェックポイントではありません。{MAKE_ONE}")
    problem = next(filter(None, (_impossible(k, v) for k, v in ckpt["state_dict"].items())), None)
    if problem:
        raise UserError(f"{path} の{problem}。学習し直すか、train が書いた model.pt を書き換えずに使ってください。")
    return ckpt


def _unpickled(path):
    """What ``torch.load`` reads from ``path`` (weights only: loading never runs code); :class:`UserError` saying
    what the file is when that fails: a whole pickled model, a picture given where the model goes, anything else."""
    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol warning would only confuse a student
            warnings.simplefilter("ignore", UserWarning)
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError as e:
        raise os_error(e, path, "読めません") from e
    except MemoryError:
        raise
    except Exception as e:  # a file that is no checkpoint can make the unpickler fail in any way
        if "Unsupported global" in str(e):  # a whole pickled object, such as torch.save(model)
            raise UserError(f"{path} は torch.save(model) のようにモデルごと保存したファイルです。mnist_lab は安全のため重み"
                            "（state_dict）だけを読みます: save_checkpoint(パス, model) で保存し直すか、train が書いた model.pt "
                            "を使ってください。") from e
        if path.suffix.lower() in IMAGE_SUFFIXES:
            raise UserError(f"{path} は画像で、チェックポイントではありません。チェックポイント（model.pt）を先に、画像をその後に"
                            "指定してください（例: mnist-lab predict runs/quick/model.pt 7.png）。") from e
        raise UserError(f"{path} は mnist_lab のチェックポイントとして読めません（壊れているか別の形式です）。{MAKE_ONE}") from e
    return ckpt


def _impossible(name, value):
    """Why the stored tensor ``name`` cannot come from training (Japanese), or ``None``."""
    if not isinstance(name, str):
        return f"重みの名前 {name!r} が文字列ではありません"
    if not isinstance(value, torch.Tensor):
        return None  # refused as not fitting the model when it is loaded
    if value.layout != torch.strided:
        return f"重み {name} が普通の配列ではありません（{value.layout}）"
    if value.is_meta:  # a model built under torch.device("meta"): shapes only, no numbers
        return f"重み {name} に値が入っていません（meta デバイスの空の配列です）"
    if not (value.is_floating_point() or value.dtype in INTEGERS):
        return f"重み {name} が数の配列ではありません（{value.dtype}）"
    if value.is_floating_point() and not torch.isfinite(value).all() and not _unset(name, value):
        return f"重み {name} に NaN か無限大が入っています（学習が発散したモデルです。学習率を下げてください）"
    if name.endswith(("running_var", "num_batches_tracked")) and bool((value < 0).any()):
        return f"{name} に負の値があります（分散や回数は負になりません。壊れているか手で書き換えられたモデルです）"
    return None


UNSET_WHEN_NAN = ("energy_threshold",)  # NaN: "not set" (models.PadCNN trained without non-digits has no threshold)


def _unset(name, value):
    """Whether ``value`` is a setting that NaN marks as not set (read by :func:`mnist_lab.ood.threshold_of` as
    "no threshold": no "not a digit" warning), rather than a weight broken by a diverged training."""
    return name.rsplit(".", 1)[-1] in UNSET_WHEN_NAN and value.numel() == 1 and bool(torch.isnan(value).all())


INTEGERS = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool)
PROBE = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))  # any inputs: outputs must be numbers


def checkpoint_size(model):
    """Return about how many bytes :func:`save_checkpoint` writes for ``model`` (its weights and some room)."""
    model = module_of(model, "checkpoint_size")
    return sum(t.numel() * t.element_size() for t in model.state_dict().values()) + (64 << 10)


def load_checkpoint(path, model=None, device="cpu"):
    """Return ``(model, checkpoint dict)`` with the weights stored at ``path`` loaded, in eval mode.

    Without ``model`` a fresh one of the stored architecture is built. With ``model``, its architecture must be the
    stored one, else :class:`UserError` says which architecture the file holds.

    Introduced in the lesson: main.ipynb §10.
    """
    device = usable_device("cpu" if device is None else device)  # "meta" or a GPU this machine lacks: one line
    ckpt = read_checkpoint(path)
    real = Path(os.path.realpath(_path(path)))
    if real in _WRITTEN and _identity(real) != _WRITTEN[real]:  # two notebooks saving to the same file
        print(f"お知らせ: {path} は、ここで保存したあとに別のところ（別のノートブックやコマンド）から書き換えられています。"
              f"読み込むのはそのモデル（{ckpt['model']}）で、ここで保存したものではありません。")
    name = ckpt["model"]
    if model is None:
        model = build_model(name)
    elif isinstance(model, (str, torch.device, int)):  # load_checkpoint(path, device): the device in the model's place
        raise UserError(f"load_checkpoint の 2 番目に渡すのはモデルです（今は {short(model)}）。デバイスは "
                        "load_checkpoint(path, device=device) のように device= を付けて渡してください。")
    elif type(model) is not MODELS[name]:
        raise UserError(f"{path} は '{name}' モデルのチェックポイントですが、{type(model).__name__} に読み込もうとしました。"
                        f"build_model('{name}') で作ったモデルに読み込むか、model を指定せずに読み込んでください。")
    try:
        model.load_state_dict(ckpt["state_dict"])
    except (RuntimeError, TypeError, AttributeError) as e:
        raise UserError(f"{path} の重みが '{name}' モデルの形に合いません（別のバージョンで保存された可能性があります）。"
                        "もう一度学習し直してください。") from e
    with torch.no_grad():
        scores = model.eval()(PROBE.to(next(model.parameters()).device))
    if not torch.isfinite(scores).all():
        raise UserError(f"{path} の重みでは、モデルの出力が数になりません（NaN か無限大。値が大きすぎるか壊れています）。"
                        "学習し直したチェックポイントを使ってください。")
    try:
        return model.to(device), ckpt
    except (RuntimeError, AssertionError, ValueError, TypeError) as e:  # no such device here (cuda on a laptop)
        raise UserError(f"デバイス {device} が使えません（{str(e).splitlines()[0][:80] if str(e) else type(e).__name__}）。"
                        "device を指定しないか、best_device() が選ぶデバイスを使ってください。") from e


def _path(path):
    """``path`` as a Path; :class:`UserError` when it is no file name at all (a model passed in its place...)."""
    if not isinstance(path, (str, bytes, os.PathLike)) or not str(path):
        raise UserError(f"ファイルの名前（\"model.pt\" のような文字列）を渡してください（今は {type(path).__name__}）。")
    text = user_path(os.fsdecode(path))  # "~/model.pt" is in the home folder, as everywhere else
    if text.endswith((os.sep, "/")):  # Path() would drop the slash: "runs/nb/" would become a file named nb
        raise UserError(f"{text} はフォルダの名前です。ファイルの名前まで書いてください（例: {text.rstrip('/' + os.sep)}/model.pt）。")
    return Path(text)
