"""The libraries' per-user folders when the home folder cannot hold them: read-only (a read-only tmpfs, which stops
root too), missing inside a read-only one, "inside" a regular file, or unknown; and that nothing changes when it can."""

import os
import pwd
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from test_targets import IN_CI, IS_ROOT, tmpfs

from mnist_lab import paths
from mnist_lab.paths import HOME_FOLDERS, usable_home_folders

REPO = Path(__file__).resolve().parents[1]
XDG = ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME")
HOMES = ["under-a-file", "read-only", "missing-in-read-only", "unknown"]


def unusable_home(tmp_path, shape, monkeypatch):
    """A home folder nothing can be written under (the caller unmounts ``tmp_path / "ro"`` if it was mounted);
    ``unknown``: no ``HOME`` and a user id the system does not know (a container started with ``--user``)."""
    if shape == "unknown":
        def no_such_user(uid):
            raise KeyError(f"getpwuid(): uid not found: {uid}")

        monkeypatch.setattr(pwd, "getpwuid", no_such_user)
        return None
    if shape == "under-a-file":
        (tmp_path / "file").write_text("")
        return tmp_path / "file" / "home"
    if not IS_ROOT:
        if IN_CI:
            pytest.fail("CI runs as root: the read-only home folder must be tested there")
        pytest.skip("mounting needs root; the home under a file was tested")
    home = tmpfs(tmp_path / "ro", size="1m", readonly=True)
    return home if shape == "read-only" else home / "missing"


@pytest.fixture
def clean_environment(monkeypatch):
    """No library folder chosen by the environment (monkeypatch puts back whatever the test changes)."""
    for name in (*HOME_FOLDERS, *XDG):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(paths, "_private", [])  # this test's own private folder
    return monkeypatch


@pytest.mark.parametrize("shape", HOMES)
def test_folders_the_home_cannot_hold_go_to_one_private_folder(tmp_path, clean_environment, shape):
    home = unusable_home(tmp_path, shape, clean_environment)
    try:
        if home is None:
            clean_environment.delenv("HOME", raising=False)
        else:
            clean_environment.setenv("HOME", str(home))
        assert usable_home_folders() == []
        # the folder each library now uses: the one its variable names, else its default (Jupyter's runtime
        # folder is in its data folder)
        folders = {name: Path(os.environ.get(name) or HOME_FOLDERS[name]()[0]) for name in HOME_FOLDERS}
        private = Path(os.environ["MPLCONFIGDIR"]).parent
        assert all(folder.is_relative_to(private) for folder in folders.values()), folders
        assert len(set(folders.values())) == len(folders), folders
        assert stat.S_IMODE(private.stat().st_mode) & 0o077 == 0  # other users of a shared server cannot look in
        assert home is None or not private.is_relative_to(home)
        for folder in folders.values():
            (folder / "written").write_text("ok")
    finally:
        if (tmp_path / "ro").is_dir():
            subprocess.run(["umount", "-l", str(tmp_path / "ro")], check=False)


def test_folders_that_can_be_written_are_left_as_they_are(tmp_path, clean_environment):
    """A home folder that can hold them: the libraries' own folders, made if missing; a variable set to a folder
    that can be written is kept, one set to a place nothing can be written is replaced."""
    home = tmp_path / "home"  # missing: made as the libraries would make it
    (tmp_path / "file").write_text("")
    clean_environment.setenv("HOME", str(home))
    clean_environment.setenv("IPYTHONDIR", str(tmp_path / "mine"))
    clean_environment.setenv("MPLCONFIGDIR", str(tmp_path / "file" / "mpl"))
    assert usable_home_folders() == []
    assert os.environ["IPYTHONDIR"] == str(tmp_path / "mine") and (tmp_path / "mine").is_dir()
    assert not Path(os.environ["MPLCONFIGDIR"]).is_relative_to(tmp_path) and Path(os.environ["MPLCONFIGDIR"]).is_dir()
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"):
        assert name not in os.environ
    for folder in (".jupyter", ".local/share/jupyter/runtime"):
        assert (home / folder).is_dir() and not list((home / folder).iterdir())  # the test file is gone
    assert not (home / ".ipython").exists() and not (home / ".config").exists()  # set: their defaults untouched


def test_the_private_folder_goes_when_the_process_ends(tmp_path):
    (tmp_path / "file").write_text("")
    env = {**{k: v for k, v in os.environ.items() if k not in {*HOME_FOLDERS, *XDG}},
           "HOME": str(tmp_path / "file" / "home"), "PYTHONPATH": str(REPO)}
    code = ("import os; from mnist_lab.paths import usable_home_folders; usable_home_folders(); "
            "print(os.environ['JUPYTER_DATA_DIR']); open(os.path.join(os.environ['IPYTHONDIR'], 'x'), 'w').close()")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                            check=True)
    folder = Path(result.stdout.strip())
    assert folder.name and folder.is_relative_to(tempfile.gettempdir()) and not folder.parent.exists()


def test_with_no_temporary_folder_either_the_variables_are_returned(tmp_path, clean_environment):
    def refuse(*args, **kwargs):
        raise FileNotFoundError(2, "No usable temporary directory found")

    (tmp_path / "file").write_text("")
    clean_environment.setenv("HOME", str(tmp_path / "file" / "home"))
    clean_environment.setattr(tempfile, "mkdtemp", refuse)
    assert usable_home_folders(["MPLCONFIGDIR", "IPYTHONDIR"]) == ["MPLCONFIGDIR", "IPYTHONDIR"]
    assert "MPLCONFIGDIR" not in os.environ and "IPYTHONDIR" not in os.environ
