"""Paths as a user writes them, read the same way wherever they come from.

A shell expands ``~`` only when it is unquoted at the start of a word: ``--out "~/x"``, ``MNIST_LAB_DATA="~/mnist"``
in a ``.env`` file or ``%env`` in a notebook reach the program as they are. Every path a user gives (a command-line
argument, an ``MNIST_LAB_*`` environment variable, a folder passed to a lesson function) goes through
:func:`user_path`, so ``~`` means the home folder everywhere, and never a folder literally named ``~``.

The libraries keep folders of their own in the home folder too (matplotlib's font cache, Jupyter's and IPython's
files). When it cannot hold them (read-only, missing, unknown), :func:`usable_home_folders` points them elsewhere
before the libraries load, so a command behaves and prints as it does with a usable home folder.
"""

import atexit
import os
import shutil
import tempfile


def user_path(path):
    """Return ``path`` (``str``, ``bytes`` or path-like) with a leading ``~`` or ``~user`` expanded as a shell would.

    >>> user_path("~/mnist") == os.path.join(os.path.expanduser("~"), "mnist")
    True
    >>> user_path("runs/~x")
    'runs/~x'
    """
    return os.path.expanduser(os.fspath(path))


def env_path(name, environ=None):
    """Return the path set in the environment variable ``name`` (expanded by :func:`user_path`), or ``None`` when it
    is unset or empty."""
    value = (os.environ if environ is None else environ).get(name)
    return user_path(value) if value else None


def _in_home(*parts):
    """``~/parts...``, or ``None`` when this process has no home folder (no ``HOME``, and a user id the system does
    not know, as in a container started with ``--user``)."""
    home = os.path.expanduser("~")
    return os.path.join(home, *parts) if os.path.isabs(home) else None


def _xdg(variable, default, name):
    """``name`` in the folder the XDG variable names (read as the libraries read it), else in ``~/default``."""
    base = os.environ.get(variable) or _in_home(default)
    return base and os.path.join(base, name)


def _jupyter_data():
    return os.environ.get("JUPYTER_DATA_DIR") or _xdg("XDG_DATA_HOME", ".local/share", "jupyter")


# The per-user folders of the libraries the commands use, by the environment variable that chooses each: the
# folders the library uses while it is unset (on Linux). matplotlib's config and cache; Jupyter's config (written
# once, when Jupyter finds an IPython folder to migrate), data (the notebooks' signatures: Voilà signs the app's
# page) and runtime folders; IPython's profiles (the app's kernels).
HOME_FOLDERS = {
    "MPLCONFIGDIR": lambda: [_xdg("XDG_CONFIG_HOME", ".config", "matplotlib"),
                             _xdg("XDG_CACHE_HOME", ".cache", "matplotlib")],
    "JUPYTER_CONFIG_DIR": lambda: [_in_home(".jupyter")],
    "JUPYTER_DATA_DIR": lambda: [_jupyter_data()],
    "JUPYTER_RUNTIME_DIR": lambda: [_jupyter_data() and os.path.join(_jupyter_data(), "runtime")],
    "IPYTHONDIR": lambda: [_in_home(".ipython")],
}
_private = []  # the one private temporary folder of this process, once made


def _usable(folder):
    """Whether ``folder`` is a folder this process can write into, made if it is missing (tried for real: root
    passes every permission check, a read-only file system or a file in the way still stops it)."""
    if not folder:
        return False
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def usable_home_folders(variables=tuple(HOME_FOLDERS)):
    """Point each environment variable in ``variables`` (keys of :data:`HOME_FOLDERS`) whose folder (the one it
    names, or the library's default under the home folder) cannot be made or written at a folder of its own in one
    private temporary folder, removed when this process ends; child processes (the app's kernels) inherit it.

    Without that, a read-only, missing or unset home folder makes matplotlib print English warnings and the app's
    page fail (Jupyter cannot keep its notebook signatures). Return the variables that still have no usable folder
    (none unless no temporary folder can be made either: ``TMPDIR``, ``/tmp`` and the working folder unwritable)."""
    left = []
    for variable in variables:
        if all(_usable(folder) for folder in ([os.environ[variable]] if os.environ.get(variable)
                                              else HOME_FOLDERS[variable]())):
            continue
        try:
            if not _private:
                _private.append(tempfile.mkdtemp(prefix="mnist-lab-"))
                atexit.register(shutil.rmtree, _private[0], ignore_errors=True)
            folder = os.path.join(_private[0], variable.lower())
            os.makedirs(folder, exist_ok=True)
        except OSError:
            left.append(variable)
            continue
        os.environ[variable] = folder
    return left
