"""What the CLI prints can never fail, so that nothing can go wrong after a run is safely written.

A path with bytes that are not UTF-8 (a file name from another system) cannot be encoded for a strict UTF-8
terminal; a pipe closed by ``head``, or a terminal gone with its SSH session, refuses every write. Within
:func:`safe_output`, ``sys.stdout`` and ``sys.stderr`` show such bytes as ``\\xNN`` escapes, drop what cannot be
written, and never raise; and a background thread's error (a TensorBoard writer on a full disk) prints no
traceback: the main thread reports what matters in one line. What was dropped is remembered (:func:`lost_output`),
so that a command whose result is what it prints can still fail when that could not be written.
"""

import contextlib
import errno
import os
import re
import sys
import threading
import unicodedata

from .errors import debugging


def printable(text, encoding="utf-8"):
    """Return ``text`` with what ``encoding`` cannot write escaped: undecodable bytes of a file name as ``\\xNN``.

    >>> printable("run-\\udcff/model.pt")
    'run-\\\\xff/model.pt'
    """
    try:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeError:
        pass
    return text.encode(encoding or "utf-8", "backslashreplace").decode(encoding or "utf-8")


def one_line(text):
    r"""Return ``text`` on one line: control characters and line breaks (a newline in a file name) as escapes.

    >>> one_line("runs/a\nb を作れません")
    'runs/a\\nb を作れません'
    """
    breaks = ("Cc", "Zl", "Zp")
    return "".join(ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch) in breaks else ch
                   for ch in text)


_SURROGATE = re.compile("[\ud800-\udfff]")


class SafeStream:
    """Wraps a text stream: writes that cannot be encoded are escaped, writes that fail are dropped (``error`` keeps
    the first failure)."""

    def __init__(self, stream):
        self.stream, self.broken, self.error = stream, False, None
        if stream is None:  # Python found the descriptor closed (`>&-`): as if every write failed with EBADF
            self.broken, self.error = True, OSError(errno.EBADF, os.strerror(errno.EBADF))

    def write(self, text):
        if not self.broken:
            if _SURROGATE.search(text):  # a file name's undecodable byte: \xff, as on every stream, not \udcff
                text = printable(text, getattr(self.stream, "encoding", None))
            try:
                self.stream.write(text)
            except UnicodeError:
                self._try(lambda: self.stream.write(printable(text, getattr(self.stream, "encoding", None))))
            except (OSError, ValueError) as e:
                self._lose(e)
        return len(text)

    def flush(self):
        if not self.broken:
            self._try(self.stream.flush)

    def _try(self, action):
        try:
            action()
        except (OSError, ValueError, UnicodeError) as e:
            self._lose(e)

    def _lose(self, error):
        """The stream is gone (closed pipe, hung-up terminal, full disk): point its descriptor at /dev/null, so that
        Python's own flush at exit cannot fail either."""
        self.broken, self.error = True, error
        with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)

    def isatty(self):
        return not self.broken and self.stream.isatty()

    def __getattr__(self, name):
        if self.stream is None:
            raise AttributeError(name)
        return getattr(self.stream, name)


def occupy_closed_descriptors():
    """Open the null device on a closed descriptor 1 or 2 (``>&-``, ``2>&-``), so that no file the command opens
    (a model being saved) gets that number, where a library's own writes to stdout or stderr would land in it."""
    for fd in (1, 2):
        try:
            os.fstat(fd)
        except OSError as e:
            if e.errno != errno.EBADF:
                continue
            with contextlib.suppress(OSError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                if devnull != fd:
                    os.dup2(devnull, fd)
                    os.close(devnull)


def lost_output(stream):
    """Flush ``stream`` (``sys.stdout`` within :func:`safe_output`) and return the error that made it drop output
    (an ``OSError``: ``EPIPE`` for a reader that closed the pipe, ``ENOSPC`` for a full disk...), or ``None``."""
    if not isinstance(stream, SafeStream):
        return None
    stream.flush()
    return stream.error if stream.broken else None


@contextlib.contextmanager
def safe_output():
    """Within the block, printing never raises and background threads print no tracebacks."""
    streams, hook = (sys.stdout, sys.stderr), threading.excepthook
    occupy_closed_descriptors()
    sys.stdout, sys.stderr = SafeStream(sys.stdout), SafeStream(sys.stderr)
    if not debugging():
        threading.excepthook = lambda args: None  # the main thread meets the same error and explains it
    try:
        yield
    finally:
        for wrapper in (sys.stdout, sys.stderr):
            if isinstance(wrapper, SafeStream):
                wrapper.flush()
        sys.stdout, sys.stderr = streams
        threading.excepthook = hook
