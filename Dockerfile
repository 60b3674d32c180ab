# GPU JupyterLab for the MNIST lesson, one container per student, two ways (README「Docker で使う」):
# - standalone: `start-notebook` (docker-compose.yml) mounts your clone at /work; JUPYTER_TOKEN guards it;
# - spawned by the class's hub (hub/): `start-singleuser`, jupyterhub-singleuser behind the hub's login; /work is
#   the student's own volume, and the lesson (copied below) is put into it without overwriting their edits.
# The command chooses the mode (docker/start-notebook, docker/start-singleuser), as in Jupyter Docker Stacks.
# PyTorch's CUDA wheels bring their own CUDA runtime: the host needs only the NVIDIA driver and the NVIDIA
# Container Toolkit.
#
# Build arguments, each written once in hub/.env (both compose files pass them; none has a default here):
#   BASE_IMAGE    the base, pinned by digest (CI builds this file on a Debian stand-in)
#   CUDA          cu126 | cu118 (old drivers, >= 450) | cu128 ...  -> the PyTorch wheel index to install from
#   JUPYTER_PORT  the port the Jupyter server listens on inside the container
# The packages are pinned by docker/requirements.lock.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}

ARG CUDA
ARG JUPYTER_PORT
ARG TORCH_VERSION=2.7.1
ARG TORCHVISION_VERSION=0.22.1
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/${CUDA}
# Only for an index that holds torch but not its dependencies (CI's local wheels): where to find the rest.
ARG TORCH_EXTRA_INDEX_URL=

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp/home \
    MPLCONFIGDIR=/tmp/matplotlib \
    MNIST_LAB_DATA=/work/data \
    JUPYTER_PORT=${JUPYTER_PORT}

# nss_wrapper: a passwd entry for whatever UID the container runs as (docker/entrypoint.sh).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libnss-wrapper \
 && rm -rf /var/lib/apt/lists/*

# The lesson's packages exactly as locked (docker/install.sh, shared with the hub's image), then PyTorch from its
# CUDA index: what torch shares with the lesson (numpy, pillow, sympy...) is already there at the locked version and
# stays; only torch's own CUDA packages are added.
COPY docker/install.sh docker/requirements.lock /tmp/install/
RUN : "${CUDA:?build argument CUDA (hub/.env)}" "${JUPYTER_PORT:?build argument JUPYTER_PORT (hub/.env)}" \
 && /tmp/install/install.sh locked
RUN if [ -n "$TORCH_EXTRA_INDEX_URL" ]; then export PIP_EXTRA_INDEX_URL="$TORCH_EXTRA_INDEX_URL"; fi \
 && pip install --index-url "$TORCH_INDEX_URL" torch==${TORCH_VERSION} torchvision==${TORCHVISION_VERSION} \
 && pip check

# JupyterLab's server and UI settings: the port, no root, idle kernels culled, kernel shut down with its tab.
COPY docker/jupyter_server_config.py /opt/venv/etc/jupyter/jupyter_server_config.py
COPY docker/overrides.json /opt/venv/share/jupyter/lab/settings/overrides.json
# The deployment's package (the lesson into /work, the kernels' GPU share), installed as in the hub's image. Every
# kernel keeps to its share of the GPU's memory (MNIST_LAB_GPU_MEMORY_SHARE) and says so in one line.
COPY docker/install.sh /tmp/install/
COPY mnist_lab_deploy /tmp/install/mnist_lab_deploy
RUN /tmp/install/install.sh package
COPY docker/ipython_kernel_config.py /opt/venv/etc/ipython/
COPY docker/healthcheck.py /opt/healthcheck.py
COPY docker/entrypoint.sh /opt/entrypoint.sh
COPY docker/start-notebook docker/start-singleuser /usr/local/bin/
# The lesson, for servers spawned by the hub (a standalone server mounts your clone at /work instead).
COPY main.ipynb README.md /opt/mnist-lab/lesson/
COPY mnist_lab /opt/mnist-lab/lesson/mnist_lab
COPY resources /opt/mnist-lab/lesson/resources

# A non-root default user (the hub's servers run as it); docker-compose.yml runs the container as the student's
# own UID:GID instead. /work belongs to it, so that a student's new volume there does too.
RUN useradd --uid 1000 --user-group --no-create-home --shell /bin/bash student \
 && mkdir -p /work /tmp/home \
 && chown 1000:1000 /work \
 && chmod 1777 /tmp/home \
 && chmod 755 /opt/entrypoint.sh
USER 1000:1000
WORKDIR /work
EXPOSE ${JUPYTER_PORT}
HEALTHCHECK --interval=30s --timeout=5s --start-period=40s --retries=3 CMD ["python", "/opt/healthcheck.py"]
ENV LD_PRELOAD=libnss_wrapper.so NSS_WRAPPER_PASSWD=/tmp/passwd NSS_WRAPPER_GROUP=/etc/group
ENTRYPOINT ["/opt/entrypoint.sh"]
CMD ["start-notebook"]
