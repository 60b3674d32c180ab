"""IPython kernel settings baked into the image (/opt/venv/etc/ipython/, read by every IPython kernel there).

Every kernel loads mnist_lab_deploy.gpu_share (installed in the image, docker/install.sh): PyTorch's memory on the
GPU capped at the student's share (MNIST_LAB_GPU_MEMORY_SHARE), lazily, and a CUDA out-of-memory error shown as
one Japanese line."""

c = get_config()  # noqa: F821 -- provided by IPython when it loads this file

c.InteractiveShellApp.extensions = ["mnist_lab_deploy.gpu_share"]
