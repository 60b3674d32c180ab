"""Saving and loading checkpoints: ``state_dict`` + model name + config + metrics, never a pickled model.

Loading uses ``torch.load(weights_only=True)``, so a checkpoint can only hold tensors and plain data and cannot run
code when it is opened.
"""

import pickle
import warnings
from pathlib import Path

import torch

from .errors import UserError
from .models import MODELS, build_model, model_name

FORMAT = "mnist_lab/1"


def save_checkpoint(path, model, config=None, metrics=None):
    """Write ``model``'s weights with its registry name, its training config and metrics to ``path``."""
    name = model_name(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    torch.save({"format": FORMAT, "model": name, "state_dict": state,
                "config": dict(config or {}), "metrics": dict(metrics or {})}, path)
    return path


def read_checkpoint(path):
    """Return the checkpoint dict stored at ``path``; :class:`UserError` if it is missing or not ours."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"チェックポイント {path} が見つかりません。パスを確かめるか、先に `python -m mnist_lab train` で作ってください。")
    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol warning would only confuse a student
            warnings.simplefilter("ignore", UserWarning)
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as e:
        raise UserError(f"{path} は mnist_lab のチェックポイントとして読めません（壊れているか別の形式です）。"
                        "`python -m mnist_lab train` が書いた model.pt を指定してください。") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or ckpt.get("model") not in MODELS:
        raise UserError(f"{path} は mnist_lab のチェックポイントではありません。"
                        "`python -m mnist_lab train` が書いた model.pt を指定してください。")
    return ckpt


def load_checkpoint(path, model=None, device="cpu"):
    """Return ``(model, checkpoint dict)`` with the weights stored at ``path`` loaded, in eval mode.

    Without ``model`` a fresh one of the stored architecture is built. With ``model``, its architecture must be the
    stored one, else :class:`UserError` says which architecture the file holds.
    """
    ckpt = read_checkpoint(path)
    name = ckpt["model"]
    if model is None:
        model = build_model(name)
    elif type(model) is not MODELS[name]:
        raise UserError(f"{path} は '{name}' モデルのチェックポイントですが、{type(model).__name__} に読み込もうとしました。"
                        f"build_model('{name}') で作ったモデルに読み込むか、model を指定せずに読み込んでください。")
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise UserError(f"{path} の重みが '{name}' モデルの形に合いません（別のバージョンで保存された可能性があります）。"
                        "もう一度学習し直してください。") from e
    return model.to(device).eval(), ckpt
