"""Shared fixtures: the real MNIST copy (never skipped under CI=true), one model trained on it, and a real Docker
engine with the lesson image built on it (tests/engine.py; test_docker.py and test_hub.py share them)."""

import os
from pathlib import Path

import pytest

from mnist_lab.data import ENV_ROOT, RAW_FILES, load_mnist, raw_dir

REPO = Path(__file__).resolve().parents[1]


def _mnist_root():
    return Path(os.environ.get(ENV_ROOT) or REPO / "data")


@pytest.fixture(scope="session")
def mnist_root():
    """The folder holding MNIST/raw/*: $MNIST_LAB_DATA, else ./data. Missing data fails under CI, skips elsewhere."""
    root = _mnist_root()
    if not all((raw_dir(root) / name).is_file() for name in RAW_FILES):
        message = f"real MNIST not found under {root}; set {ENV_ROOT} to a folder holding MNIST/raw/"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return root


@pytest.fixture(scope="session")
def mnist(mnist_root):
    return load_mnist(mnist_root, download=False)


@pytest.fixture(scope="session")
def trained(mnist, tmp_path_factory):
    """``(model, history, checkpoint path)`` of one quick-preset run on the real data (about 5 s on 2 cores)."""
    from mnist_lab import build_model, fit, make_config, save_checkpoint

    config = make_config("quick")
    model = build_model(config.model, seed=config.seed)
    history = fit(model, mnist, config, device="cpu", progress=False)
    path = save_checkpoint(tmp_path_factory.mktemp("run") / "model.pt", model, vars(config))
    return model, history, path


def _cuda():
    from mnist_lab_deploy.settings import load

    return load()["CUDA"]


LESSON_IMAGE = f"mnist-lab-aoi:{_cuda()}"  # built once; tagged as ren's (compose) and as the class's (hub) too


@pytest.fixture(scope="session")
def engine():
    from engine import docker_engine

    with docker_engine() as running:
        yield running


@pytest.fixture(scope="session")
def image(engine, tmp_path_factory):
    """The Dockerfile as it is, built on the engine with a Debian stand-in base and the local torch wheels."""
    from engine import STANDIN, build_image, import_standin, wheel_index

    import_standin(engine, STANDIN, tmp_path_factory.mktemp("standin"))
    with wheel_index() as index:
        build_image(engine, REPO, LESSON_IMAGE, STANDIN, index)
    for tag in (f"mnist-lab-ren:{_cuda()}", f"mnist-lab-class:{_cuda()}"):  # every layer from the cache: the same image
        engine.docker("tag", LESSON_IMAGE, tag)
    return LESSON_IMAGE


REAL_MNIST = {"mnist_root", "mnist", "trained"}


def pytest_collection_modifyitems(items):
    """Every test that reads the real MNIST (and so may train on it) is ``slow``: ``-m "not slow"`` leaves them out."""
    for item in items:
        if REAL_MNIST & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
