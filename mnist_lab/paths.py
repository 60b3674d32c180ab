"""Paths as a user writes them, read the same way wherever they come from.

A shell expands ``~`` only when it is unquoted at the start of a word: ``--out "~/x"``, ``MNIST_LAB_DATA="~/mnist"``
in a ``.env`` file or ``%env`` in a notebook reach the program as they are. Every path a user gives (a command-line
argument, an ``MNIST_LAB_*`` environment variable, a folder passed to a lesson function) goes through
:func:`user_path`, so ``~`` means the home folder everywhere, and never a folder literally named ``~``.
"""

import os


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
