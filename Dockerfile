# GPU JupyterLab for the MNIST lesson: one container per student, started with `docker compose up -d`.
# PyTorch's CUDA wheels bring their own CUDA runtime: the host needs only the NVIDIA driver and the NVIDIA
# Container Toolkit (see README「Docker で使う」).
#
#   CUDA=cu126 (default) | cu118 (old drivers, >= 450) | cu128 ...   -> the PyTorch wheel index to install from
#   BASE_IMAGE                                                       -> CI builds this file on a Debian stand-in
ARG BASE_IMAGE=python:3.11.11-slim-bookworm
FROM ${BASE_IMAGE}

ARG CUDA=cu126
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
    MNIST_LAB_DATA=/work/data

# nss_wrapper: a passwd entry for whatever UID the container runs as (docker/entrypoint.sh).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libnss-wrapper \
 && rm -rf /var/lib/apt/lists/*

# PyTorch first, from its CUDA index; then the lesson's packages (requirements.txt keeps that torch).
RUN python3 -m venv "$VIRTUAL_ENV" \
 && if [ -n "$TORCH_EXTRA_INDEX_URL" ]; then export PIP_EXTRA_INDEX_URL="$TORCH_EXTRA_INDEX_URL"; fi \
 && pip install --index-url "$TORCH_INDEX_URL" torch==${TORCH_VERSION} torchvision==${TORCHVISION_VERSION}
COPY requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# JupyterLab's server and UI settings: token required, no root, idle kernels culled, kernel shut down with its tab.
COPY docker/jupyter_server_config.py /opt/venv/etc/jupyter/jupyter_server_config.py
COPY docker/overrides.json /opt/venv/share/jupyter/lab/settings/overrides.json
COPY docker/healthcheck.py /opt/healthcheck.py
COPY docker/entrypoint.sh /opt/entrypoint.sh

# A non-root default user; docker-compose.yml runs the container as the student's own UID:GID instead.
RUN useradd --uid 1000 --user-group --no-create-home --shell /bin/bash student \
 && mkdir -p /work /tmp/home \
 && chmod 1777 /tmp/home \
 && chmod 755 /opt/entrypoint.sh
USER 1000:1000
WORKDIR /work
EXPOSE 8888
HEALTHCHECK --interval=30s --timeout=5s --start-period=40s --retries=3 CMD ["python", "/opt/healthcheck.py"]
ENV LD_PRELOAD=libnss_wrapper.so NSS_WRAPPER_PASSWD=/tmp/passwd NSS_WRAPPER_GROUP=/etc/group
ENTRYPOINT ["/opt/entrypoint.sh"]
CMD ["jupyter", "lab"]
