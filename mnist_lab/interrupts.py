"""Stopping a command from outside: Ctrl+C (SIGINT), ``kill``, ``docker stop`` or the hub's idle culler (SIGTERM)
and a closed terminal or SSH session (SIGHUP) all stop it the same way.

The first of these signals raises :class:`Interrupted`, a ``KeyboardInterrupt``, in the main thread, so training
stops exactly as after Ctrl+C: the model goes back to the last finished epoch and the run is saved. After that
first signal, and while a run is being saved (:meth:`Signals.hold`), signals are only recorded, so a save is never
cut in half. The command then ends with status 128 + the signal's number, as a shell reports a process that a
signal ended. A signal that was ignored when the command started (``nohup`` ignores SIGHUP) stays ignored.
"""

import contextlib
import signal
import sys
import threading

from .errors import UserError

NAMES = ("SIGINT", "SIGTERM", "SIGHUP")
RESTART = ("読み込みの途中で止めたので、PyTorch などが読みかけのままです（このままでは読み込めません）。"
           "Kernel → Restart Kernel してから、上から順に実行し直してください。")
HALF_LOADED = ("torch", "numpy")  # cut while loading, these cannot be loaded again in the same process
_cut = []  # not empty once an import of mnist_lab was cut halfway in this process: that is never undone


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread by the first SIGINT, SIGTERM or SIGHUP."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


class StoppedBeforeStart(KeyboardInterrupt):
    """■ (or a signal) came before the work had begun, so nothing changed. Still a ``KeyboardInterrupt`` (the
    command ends as after Ctrl+C), but a notebook shows its one line instead of a traceback."""

    def _render_traceback_(self):
        return [f"\x1b[1;33m中断:\x1b[0m {self}"]


class LoadCut(KeyboardInterrupt):
    """■ (or Ctrl+C) came while ``import mnist_lab`` was loading PyTorch and the other libraries. Python cannot undo
    a half-loaded PyTorch, so every later import in this process would fail in English: a notebook shows this one
    line (restart the kernel) instead of a traceback. Still a ``KeyboardInterrupt``, as the ■ was."""

    def _render_traceback_(self):
        return [f"\x1b[1;33m中断:\x1b[0m {self}"]


class RestartNeeded(UserError):
    """mnist_lab is imported again in a process where an earlier import was cut (:class:`LoadCut`)."""


def load_cut():
    """Record that this process's import of mnist_lab was cut halfway; return the :class:`LoadCut` to raise."""
    _cut.append(True)
    return LoadCut(RESTART)


def check_loadable():
    """Raise :class:`RestartNeeded` when an earlier import of mnist_lab was cut (:func:`load_cut`), or PyTorch or
    NumPy were left half loaded (their modules loaded, not the package: ■ on a student's own ``import torch``)."""
    prefixes = tuple(f"{name}." for name in HALF_LOADED if name not in sys.modules)
    if _cut or (prefixes and any(name.startswith(prefixes) for name in list(sys.modules))):
        raise RestartNeeded(RESTART)


@contextlib.contextmanager
def before_start(what):
    """Within the block (the preparations before some work), ■ raises :class:`StoppedBeforeStart` with ``what``,
    the line that says what was left as it was."""
    try:
        yield
    except StoppedBeforeStart:
        raise
    except KeyboardInterrupt as e:
        raise StoppedBeforeStart(what) from e


class Signals:
    """What :func:`stop_on_signals` saw: ``received`` is the first signal's number, or ``None``."""

    def __init__(self):
        self.received, self.holding = None, False

    def hold(self):
        """From now on a signal is only recorded (the work left must finish: saving a finished run)."""
        self.holding = True

    def exit_status(self, default=0):
        return 128 + self.received if self.received else default

    def name(self):
        return signal.Signals(self.received).name if self.received else ""

    def _handle(self, signum, frame):
        first = self.received is None
        if first:
            self.received = signum
        if first and not self.holding:
            raise Interrupted(signum)


@contextlib.contextmanager
def stop_on_signals(then_ignore=False):
    """Within the block, SIGINT, SIGTERM and SIGHUP stop the work as described above; yields the :class:`Signals`.
    Afterwards the earlier handlers are back, or, with ``then_ignore`` (the block was the whole command and only
    exiting is left), the signals are ignored, so that a late Ctrl+C cannot interrupt Python's own clean-up.
    Outside the main thread (where Python cannot handle signals) nothing changes."""
    state = Signals()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    previous = {}
    for name in NAMES:
        number = getattr(signal, name, None)
        if number is not None and signal.getsignal(number) is not signal.SIG_IGN:
            previous[number] = signal.signal(number, state._handle)
    try:
        yield state
    finally:
        state.hold()
        for number, handler in previous.items():
            after = signal.SIG_IGN if then_ignore else handler
            signal.signal(number, signal.SIG_DFL if after is None else after)


@contextlib.contextmanager
def uninterrupted():
    """Ctrl+C, SIGTERM and SIGHUP wait until the block is done (the signal is delivered right after it): a hidden
    folder is never left half made or half removed, a training's wrap-up never half done."""
    try:
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
    except (AttributeError, OSError, ValueError):  # a system without it
        blocked = None
    try:
        yield
    finally:
        if blocked is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
