"""mnist_lab: the helper package of the MNIST lesson (data -> model -> train -> metrics -> plots / widgets).

The notebook calls these; the command line is ``mnist-lab`` (or ``python -m mnist_lab``).
"""

import os
import sys

COMMAND = os.path.basename(sys.argv[0]) in ("-m", "mnist-lab")  # the command line, not a notebook or a script
try:
    os.getcwd()
except FileNotFoundError:  # PyTorch's libraries cannot even load from a folder that was deleted
    if COMMAND:
        print("エラー: 今いるフォルダが消されています。cd で別のフォルダに移ってから実行してください。", file=sys.stderr)
        raise SystemExit(2) from None

from .interrupts import check_loadable, load_cut  # the standard library only: PyTorch is not loaded yet

if not COMMAND:  # a kernel where an earlier import was cut halfway: one line saying to restart it
    check_loadable()
try:
    from .checkpoint import load_checkpoint, save_checkpoint
    from .data import MNISTData, load_mnist
    from .device import best_device, describe_device, free_gpu_memory, gpu_memory_mib
    from .errors import UserError
    from .history import History
    from .inference import evaluate, evaluation_mode, predict_proba
    from .metrics import classification_table, confusion_matrix, one_vs_rest
    from .models import MODELS, build_model, count_parameters, layer_shapes
    from .preprocess import preprocess_drawing
    from .recipes import PRESETS, TrainConfig, make_config
    from .train import fit
except KeyboardInterrupt:  # Ctrl+C or ■ while PyTorch still loads
    if not COMMAND:  # a kernel: PyTorch stays half loaded, and only a restart mends that
        raise load_cut() from None
    print("\n中断しました（まだ何も始めていません）。", file=sys.stderr)
    raise SystemExit(130) from None

__all__ = [
    "MODELS", "PRESETS", "History", "MNISTData", "TrainConfig", "UserError", "best_device", "build_model", "classification_table",
    "confusion_matrix", "count_parameters", "describe_device", "evaluate", "evaluation_mode", "fit",
    "free_gpu_memory", "gpu_memory_mib", "layer_shapes", "load_checkpoint", "load_mnist", "make_config",
    "one_vs_rest", "predict_proba", "preprocess_drawing", "save_checkpoint",
]
