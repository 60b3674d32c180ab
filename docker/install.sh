#!/bin/sh
# Both images' Python (Dockerfile, hub/Dockerfile): a venv with exactly the locked packages (nothing resolved at
# build time: `python3 -m mnist_lab_deploy.lock` made the lock) and the deployment's own package, mnist_lab_deploy.
#   /tmp/install/requirements.lock, /tmp/install/mnist_lab_deploy  ->  $VIRTUAL_ENV
set -eu
python3 -m venv "$VIRTUAL_ENV"
pip install --no-deps -r /tmp/install/requirements.lock
site=$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
cp -r /tmp/install/mnist_lab_deploy "$site/"
find "$site/mnist_lab_deploy" -name __pycache__ -prune -exec rm -rf {} +
rm -rf /tmp/install
