"""The lesson's deployment, beside the lesson's package (``mnist_lab`` never imports it).

- :mod:`.settings`: the deployment's settings, written once in ``hub/.env`` and read from there by every mode;
- :mod:`.gpu_policy`: which GPU a student gets and each one's share of its memory (``make_env`` and the hub);
- :mod:`.gpu_share`: the IPython extension that keeps every kernel of the image to that share;
- :mod:`.make_env`: a student's ``.env`` for the standalone compose file (``python3 -m mnist_lab_deploy.make_env``);
- :mod:`.kube`: the Kubernetes values checked against the settings;
- :mod:`.lock`: the two images' lock files;
- :mod:`.hub`: the class's JupyterHub (accounts, network fence, disk watch, the students' messages).

:mod:`.settings`, :mod:`.gpu_policy` and :mod:`.make_env` are standard library only: make_env runs with a server's own
``python3``. Both images install this package (docker/install.sh).
"""
