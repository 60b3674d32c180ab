"""IPython kernel settings baked into the image (/opt/venv/etc/ipython/, read by every IPython kernel there).

Every kernel loads docker/gpu_share.py (copied beside this file): PyTorch's memory on the GPU capped at the student's
share (MNIST_LAB_GPU_MEMORY_SHARE), lazily, and a CUDA out-of-memory error shown as one Japanese line."""

import os
import sys

c = get_config()  # noqa: F821 -- provided by IPython when it loads this file

sys.path.append(os.path.dirname(os.path.abspath(__file__)))  # gpu_share.py lies beside this file
c.InteractiveShellApp.extensions = ["gpu_share"]
