#!/bin/sh
# Both images' Python (Dockerfile, hub/Dockerfile), in two steps so that a change to the deployment's code never
# invalidates the layers below it (PyTorch's, in the lesson image):
#   install.sh locked    a venv ($VIRTUAL_ENV) with exactly /tmp/install/requirements.lock (nothing resolved at
#                        build time: `python3 -m mnist_lab_deploy.lock` made it)
#   install.sh package   the deployment's package, /tmp/install/mnist_lab_deploy, into that venv's site-packages
set -eu
case "$1" in
    locked)
        python3 -m venv "$VIRTUAL_ENV"
        pip install --no-deps -r /tmp/install/requirements.lock ;;
    package)
        site=$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
        cp -r /tmp/install/mnist_lab_deploy "$site/"
        find "$site/mnist_lab_deploy" -name __pycache__ -prune -exec rm -rf {} + ;;
    *)
        echo "usage: install.sh locked|package" >&2
        exit 2 ;;
esac
rm -rf /tmp/install
