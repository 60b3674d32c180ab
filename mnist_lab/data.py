"""MNIST as whole tensors: verify the raw files, load each split once, normalise once, slice batches.

No ``DataLoader`` and no per-sample ``ToTensor`` in the training loop: the 60,000 training images fit in 188 MB as
float32, so a batch is just ``X[idx]`` for a slice ``idx`` of a random permutation.
"""

import contextlib
import hashlib
import operator
import os
import shlex
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .device import usable_device
from .errors import UserError, checked_seed
from .files import os_error
from .paths import env_path, user_path

MEAN, STD = 0.1307, 0.3081  # of the MNIST training pixels, scaled to [0, 1]
DEFAULT_FOLDER = "mnist_data"  # the MNIST folder when none is named (`data` is the lesson's tensors, MNISTData)
OLD_DEFAULT_FOLDER = "data"  # where older versions downloaded MNIST; still read when it holds it
ENV_ROOT = "MNIST_LAB_DATA"

# The uncompressed IDX files as torchvision lays them out, with their sizes and published MD5 sums.
RAW_FILES = {
    "train-images-idx3-ubyte": (47_040_016, "6bbc9ace898e44ae57da46a324031adb"),
    "train-labels-idx1-ubyte": (60_008, "a25bea736e30d166cdddb491f175f624"),
    "t10k-images-idx3-ubyte": (7_840_016, "2646ac647ad5339dbf082846283269ea"),
    "t10k-labels-idx1-ubyte": (10_008, "27ae3e4e09519cfbb04c329615203637"),
}

NAMED_BY = "--mnist-dir（load_mnist では root）"  # where a user names the MNIST folder, in a message
LEGACY_FILES = ("training.pt", "test.pt")  # MNIST/processed/ of torchvision before 0.9.1


def mnist_folder(root=None):
    """Return the MNIST folder (the ``root`` holding ``MNIST/raw/``): ``root`` if given, else ``$MNIST_LAB_DATA``,
    else ``./mnist_data`` (or ``./data``, where older versions downloaded it, when only that holds MNIST). A leading
    ``~`` is the home folder (:func:`~mnist_lab.paths.user_path`).

    Introduced in the lesson: main.ipynb §5.
    """
    if root is not None and not isinstance(root, (str, bytes, os.PathLike)):
        raise UserError(f"MNIST のフォルダは \"mnist_data\" のような文字列で指定してください（今は {type(root).__name__}）。")
    if root or env_path(ENV_ROOT):
        return Path(user_path(os.fsdecode(root)) if root else env_path(ENV_ROOT))
    if not Path(DEFAULT_FOLDER).exists() and raw_dir(OLD_DEFAULT_FOLDER).is_dir():
        return Path(OLD_DEFAULT_FOLDER)
    return Path(DEFAULT_FOLDER)


data_root = mnist_folder  # its older name, still called by older copies of the lesson


def raw_dir(root):
    return Path(root) / "MNIST" / "raw"


def _md5(path):
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_problem(path, size, md5):
    """Return why the raw file at ``path`` is unusable (Japanese), or ``None`` when it is the right file."""
    if not path.is_file():
        return f"{path} がありません"
    actual = path.stat().st_size
    if actual != size:
        return f"{path} の大きさが {actual} バイトです（正しくは {size} バイト）"
    try:
        if _md5(path) != md5:
            return f"{path} のチェックサム（MD5）が一致しません"
    except OSError as e:
        raise os_error(e, path, "読めません") from e
    return None


def _missing_message(folder, missing, downloaded):
    files = f"4つのファイル（{'、'.join(RAW_FILES)}）"
    if downloaded and len(missing) < len(RAW_FILES):  # most of it is there: name what is not
        return (f"MNIST のファイル {'、'.join(missing)} が {folder}/ になく、ダウンロードもできませんでした（インターネットに"
                f"つながっているか確かめてください）。ほかのファイルと同じ場所に置いてから、やり直してください。")
    if downloaded:
        return (f"MNIST をダウンロードできませんでした（インターネットにつながっているか確かめてください）。つながらない"
                f"マシンでは、{files}を {folder}/ に置くか、それがある場所を環境変数 {ENV_ROOT} に設定してから、"
                "やり直してください。")
    return (f"MNIST のファイル {'、'.join(missing)} が {folder}/ にありません（ダウンロードはしない設定です）。{files}を"
            f"そこに置くか、それがある場所を環境変数 {ENV_ROOT} に設定してから、やり直してください。")


def _checked_root(root):
    """Return the MNIST folder; :class:`UserError` when it is a file, unreadable, or a folder named by the user that
    does not exist (a typo must not silently become a new download folder)."""
    source = root_source(root)
    root = mnist_folder(root)
    if root.exists() and not root.is_dir():
        raise UserError(f"{source + ' の ' if source else ''}{root} はファイルです。MNIST のフォルダ（中に MNIST/raw/ が"
                        f"ある場所）を {source or NAMED_BY} に指定してください。")
    if source and not root.exists():
        spaces = "（前後に空白があります）" if str(root) != str(root).strip() else ""
        raise UserError(f"{source} の MNIST のフォルダ「{root}」{spaces}がありません。パスを確かめてください（そこに"
                        f"ダウンロードするなら、先に `mkdir -p {shlex.quote(str(root))}` してください）。")
    for folder in (root, raw_dir(root)):
        try:
            if folder.is_dir():
                os.listdir(folder)
        except OSError as e:
            raise os_error(e, folder, "読めません") from e
    if (root / "model.pt").is_file() and any((root / name).is_file() for name in ("results.json", "metrics.json")):
        raise UserError(f"{root} は学習結果のフォルダです（MNIST を置く場所ではありません）。MNIST のフォルダを "
                        f"{source or NAMED_BY} に指定してください（そこにダウンロードすると学習結果が壊れます）。")
    return root


def root_source(root):
    """Return where the MNIST folder was named, in words for a message: ``--mnist-dir`` (or the lesson's ``root``),
    the environment variable, or ``None`` for the default folder."""
    if root is not None and str(root):
        return NAMED_BY
    return f"環境変数 {ENV_ROOT}" if env_path(ENV_ROOT) else None


def ensure_mnist(root=None, download=True):
    """Make sure the four raw MNIST files are present and intact under ``root``; return the root.

    Downloads through torchvision when files are missing and ``download`` is true. Raises :class:`UserError`
    naming the missing or wrong file and saying what to do.
    """
    root = _checked_root(root)
    folder = raw_dir(root)
    _check_layout(root, folder)
    if download and not all((folder / name).is_file() for name in RAW_FILES):
        _check_writable(folder)
        _download(root)
    missing = [name for name in RAW_FILES if not (folder / name).is_file()]
    if missing:
        raise UserError(_missing_message(folder, missing, download))
    for name, spec in RAW_FILES.items():
        problem = file_problem(folder / name, *spec)
        if problem:
            raise UserError(f"{problem}。このファイルを削除して再実行すると取り直します（オフラインなら正しいファイルをコピーしてください）。")
    return root


def _check_layout(root, folder):
    """Mistakes in placing the files that a download would only hide behind "no internet": the folder named is
    the one holding the files (or MNIST/ itself), the files are still .gz, a folder has a data file's name, or only
    the ``MNIST/processed/`` files of older torchvision are there (torchvision would load them, even broken, rather
    than download)."""
    for name in RAW_FILES:
        if (folder / name).exists() and not (folder / name).is_file():
            raise UserError(f"{folder / name} はファイルではありません。消して、MNIST のファイルを置き直してください。")
    if all((folder / name).is_file() for name in RAW_FILES):
        return
    for place in (root, root / "raw", *_other_cases(root)):
        if all((place / name).is_file() for name in RAW_FILES):
            right = place.parent.parent if place.name == "raw" and place.parent.name == "MNIST" else None
            up = "2 つ上" if place == root else "1 つ上"  # root is MNIST/raw itself, or MNIST
            raise UserError(f"MNIST のファイルは {place} にあります。" + (
                f"データのフォルダには {up}の {right} を指定してください（その中の MNIST/raw/ を読みます）。" if right else
                f"{folder}/ に移してから、もう一度実行してください。"))
    packed = [name for name in RAW_FILES if not (folder / name).exists() and (folder / f"{name}.gz").is_file()]
    if packed:
        which = "" if len(packed) == len(RAW_FILES) else f"（{'、'.join(packed)}）"
        raise UserError(f"{folder} の MNIST のファイル{which}が .gz のままです。展開してください（例: gunzip {folder}/*.gz）。")
    legacy = root / "MNIST" / "processed"
    if any((legacy / name).exists() for name in LEGACY_FILES):  # torchvision would load them instead of downloading
        raise UserError(f"{folder}/ のファイルがそろっていません（{legacy}/ は古い torchvision の形式で、使いません）。"
                        f"{legacy}/ を削除して再実行すると MNIST を取り直します（ネットにつながらないなら 4 つのファイルを"
                        f" {folder}/ に置いてください）。")


def _check_writable(folder):
    """:class:`UserError` when the download could not write into ``folder`` (its nearest existing folder is
    read-only: a read-only mount, no permission), which would otherwise look like no internet."""
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"MNIST のファイルがそろっていませんが、{existing} に書き込めないのでダウンロードできません"
                        f"（読み取り専用）。4 つのファイル（{'、'.join(RAW_FILES)}）を {folder}/ に置くか、書き込めるフォルダを"
                        f" --mnist-dir か環境変数 {ENV_ROOT} に指定してください。")


def _other_cases(root):
    """Where the files end up when a folder is named or made a little wrong: ``MNIST/`` without ``raw/``, and
    ``MNIST`` or ``raw`` spelt in other cases (``mnist/raw``: a case-sensitive file system sees other folders)."""
    places = [root / "MNIST"]
    with contextlib.suppress(OSError):
        for top in root.iterdir():
            if top.name.lower() == "mnist" and top.is_dir():
                places += [top, *(p for p in top.iterdir() if p.name.lower() == "raw" and p.is_dir())]
    return [p for p in places if p != raw_dir(root)]


def _download(root):
    """Fetch MNIST through torchvision into ``root``. When that fails (no network) nothing it made is left behind:
    no empty ``MNIST/raw/`` that would look as if the data were there, no half-downloaded file."""
    from torchvision.datasets import MNIST

    made = [p for p in (root, root / "MNIST", raw_dir(root)) if not p.exists()]
    before = set(raw_dir(root).iterdir()) if raw_dir(root).is_dir() else set()
    try:
        MNIST(root, train=True, download=True)
        MNIST(root, train=False, download=True)
    except (OSError, RuntimeError):  # URLError is an OSError; torchvision raises RuntimeError when all mirrors fail
        if raw_dir(root).is_dir():
            for path in set(raw_dir(root).iterdir()) - before:
                if path.is_file():
                    path.unlink()
        for path in reversed(made):
            with contextlib.suppress(OSError):  # not empty: something else is in it, keep it
                path.rmdir()


def normalize(images):
    """Turn pixel images ``(N, 28, 28)`` or ``(N, 1, 28, 28)`` (uint8 0-255 as MNIST stores them, or floats in 0-255
    or 0-1; a tensor or a NumPy array) into float ``(N, 1, 28, 28)`` with MNIST's mean 0 and std 1. Images with
    negative values are normalised already: :class:`UserError`, one line, rather than normalised twice."""
    X = images if isinstance(images, torch.Tensor) else _pixels(images)
    if X.ndim not in (3, 4) or tuple(X.shape[-2:]) != (28, 28) or (X.ndim == 4 and X.shape[1] != 1):
        raise UserError(f"normalize に渡した画像の形 {tuple(X.shape)} は N×28×28（か N×1×28×28）ではありません。")
    if X.dtype == torch.uint8 and (not X.numel() or X.max() > 1):  # MNIST's own pixels: every training image
        return ((X.float() / 255 - MEAN) / STD).reshape(len(X), 1, 28, 28)
    if X.is_complex():
        raise UserError("normalize に渡した画像が複素数です。0〜255 か 0〜1 の画素の画像を渡してください。")
    X = X.to(torch.float64)  # bool, 0/1 masks, 16-bit pixels...: read as numbers
    if X.numel() and not torch.isfinite(X).all():
        raise UserError("normalize に渡した画像に NaN か無限大が入っています。数だけの画像を渡してください。")
    if X.numel() and X.min() < 0:
        raise UserError("normalize に渡した画像には負の値があります。もう正規化されているなら、そのまま使ってください。")
    top = float(X.max()) if X.numel() else 1.0
    scale = 1 if top <= 1 else 255 if top <= 255 else 65535  # 0-1 (a mask too), 0-255, or 16-bit pixels
    return ((X / scale - MEAN) / STD).float().reshape(len(X), 1, 28, 28)


def _pixels(images):
    """``images`` (a NumPy array, a list) as a tensor; :class:`UserError` when they are no numbers."""
    try:
        return torch.as_tensor(np.asarray(images))
    except (TypeError, ValueError, RuntimeError) as e:
        raise UserError(f"normalize には画像のテンソルか NumPy の配列を渡してください（今は {type(images).__name__}）。") from e


def denormalize(X):
    """Undo :func:`normalize`: pixel values back in [0, 1], shape ``(N, 28, 28)``."""
    return (X * STD + MEAN).clamp(0, 1).squeeze(1)


@dataclass
class MNISTData:
    """The MNIST splits as tensors: ``X_*`` normalised ``(N, 1, 28, 28)``, ``y_*`` int64 labels.

    ``X_val``/``y_val`` are empty unless a validation split was carved from the training set.
    """

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_val: torch.Tensor
    y_val: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor

    def to(self, device):
        """Return the same data on ``device`` (a no-op for tensors already there); a device this machine lacks or a
        name that is none is :class:`UserError`, one line."""
        device = usable_device(device)
        return MNISTData(**{k: v.to(device) for k, v in vars(self).items()})

    def head(self, n_train, n_test=None):
        """Return only the first ``n_train`` training and ``n_test`` (default: as many) val/test samples (for
        ``--dry-run``)."""
        n_test = n_train if n_test is None else n_test
        for name, n in (("n_train", n_train), ("n_test", n_test)):
            try:
                if operator.index(n) >= 0:
                    continue
            except TypeError:
                pass
            raise UserError(f"head の {name} は 0 以上の整数（残す枚数）にしてください（今は {n!r}）。例: data.head(1000, 200)")
        return replace(self, X_train=self.X_train[:n_train], y_train=self.y_train[:n_train],
                       X_val=self.X_val[:n_test], y_val=self.y_val[:n_test],
                       X_test=self.X_test[:n_test], y_test=self.y_test[:n_test])

    def with_validation(self, val_size, seed=0):
        """Return the data with ``val_size`` training images moved to the validation split (the same images every
        time for the same ``seed``, on every device); unchanged when it already has a validation split."""
        try:
            val_size = operator.index(val_size)  # an int, a NumPy or a PyTorch integer
        except TypeError:
            raise UserError(f"検証データの数 val_size は整数にしてください（今は {val_size!r}）。例: 5000") from None
        seed = checked_seed(seed)
        if len(self.y_val) or not val_size:
            return self
        if not 0 < val_size < len(self.y_train):
            raise UserError(f"検証データの数 {val_size} は 0 以上 {len(self.y_train)} 未満にしてください。")
        order = torch.randperm(len(self.y_train), generator=torch.Generator().manual_seed(seed)).to(self.y_train.device)
        val, train = order[:val_size], order[val_size:]
        return replace(self, X_train=self.X_train[train], y_train=self.y_train[train],
                       X_val=self.X_train[val], y_val=self.y_train[val])

    def eval_split(self):
        """Return ``(name, X, y)`` of the split used to watch training: validation if there is one, else test."""
        if len(self.y_val):
            return "val", self.X_val, self.y_val
        return "test", self.X_test, self.y_test

    def __repr__(self):
        return f"MNISTData(train={len(self.y_train)}, val={len(self.y_val)}, test={len(self.y_test)})"


def read_split(root, train):
    """Return the raw ``(images uint8 (N, 28, 28), labels int64 (N,))`` of one split (files must be verified).

    Read from the verified ``MNIST/raw/`` files themselves: torchvision's ``MNIST`` would prefer the
    ``MNIST/processed/*.pt`` files of its older versions when they exist, which nothing here has checked."""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    prefix = "train" if train else "t10k"
    try:
        return (read_image_file(str(raw_dir(root) / f"{prefix}-images-idx3-ubyte")),
                read_label_file(str(raw_dir(root) / f"{prefix}-labels-idx1-ubyte")))
    except OSError as e:
        raise os_error(e, e.filename or raw_dir(root), "読めません") from e


def load_mnist(root=None, val_size=0, seed=0, download=True, **unknown):
    """Load, verify and normalise MNIST once; optionally hold out ``val_size`` training images for validation.

    The validation images are chosen by a permutation seeded with ``seed``, so they are the same every run and on
    every device. The test set is never used to choose anything. Another keyword (``device=``: the data stays on
    the CPU, ``fit`` moves each batch) is :class:`UserError`, one line.

    Introduced in the lesson: main.ipynb §3.
    """
    if unknown:
        why = "データは CPU に読み込み、学習のときに fit(..., device) が GPU に送ります。" if "device" in unknown else ""
        raise UserError(f"load_mnist に {next(iter(unknown))}= は指定できません（指定できるのは root, val_size, seed, "
                        f"download）。{why}")
    val_size = 0 if val_size is None else val_size  # None: the default, as make_config reads it
    if isinstance(val_size, bool) or not isinstance(val_size, int) and not hasattr(val_size, "__index__"):
        raise UserError(f"検証データの数 val_size は整数にしてください（今は {val_size!r}）。例: load_mnist(val_size=5000)")
    root = ensure_mnist(root, download)
    images, labels = read_split(root, train=True)
    if val_size < 0:
        raise UserError(f"検証データの数 {val_size} は 0 以上 {len(labels)} 未満にしてください。")
    test_images, test_labels = read_split(root, train=False)
    X = normalize(images)
    data = MNISTData(X, labels, X[:0], labels[:0], normalize(test_images), test_labels)
    return data.with_validation(val_size, seed)


def shuffled_batches(X, y, batch_size, generator=None):
    """Yield ``(X_batch, y_batch)`` of at most ``batch_size`` samples, in an order drawn from ``generator``.

    The permutation is drawn on the CPU (so a seed gives the same batches on every device) and applied on the data's
    own device. (For a fixed order, ``zip(X.split(n), y.split(n))`` is all it takes.)

    Introduced in the lesson: main.ipynb §5.
    """
    if not isinstance(X, torch.Tensor) or not isinstance(y, torch.Tensor) or len(X) != len(y):
        raise UserError("shuffled_batches には同じ枚数の画像 X とラベル y（テンソル）を渡してください"
                        f"（今は {type(X).__name__} {len(X) if hasattr(X, '__len__') else ''} と {type(y).__name__} "
                        f"{len(y) if hasattr(y, '__len__') else ''}）。例: shuffled_batches(data.X_train, data.y_train, 64)")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UserError(f"shuffled_batches のバッチサイズは 1 以上の整数にしてください（今は {batch_size!r}）。例: 64")
    if generator is not None and not isinstance(generator, torch.Generator):  # a seed: its generator
        generator = torch.Generator().manual_seed(checked_seed(generator))
    order = torch.randperm(len(y), generator=generator).to(y.device)
    return ((X[idx], y[idx]) for idx in order.split(batch_size))
