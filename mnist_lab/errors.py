"""The exception types for mistakes a user can fix.

Library code raises :class:`UserError` with a one-line Japanese message that says what is wrong and how to fix it;
the CLI prints that line and exits with status 2 instead of showing a traceback, and a notebook shows that line
alone, in red, where a traceback would be (IPython asks an exception for ``_render_traceback_``).
"""

import functools
import operator
import os

DEBUG_ENV = "MNIST_LAB_DEBUG"
OFF = ("", "0", "false", "no", "off")  # what switches a setting off (an empty value only MNIST_LAB_DEBUG)
ON = ("1", "true", "yes", "on")  # what switches an MNIST_LAB_<FIELD> boolean on


def debugging(environ=None):
    """Whether ``MNIST_LAB_DEBUG`` asks for the full tracebacks: set to anything but empty, 0, false, no or off.

    >>> debugging({"MNIST_LAB_DEBUG": "Off"}), debugging({"MNIST_LAB_DEBUG": "1"}), debugging({})
    (False, True, False)
    """
    environ = os.environ if environ is None else environ
    return environ.get(DEBUG_ENV, "").strip().lower() not in OFF


class UserError(Exception):
    """A problem with the user's input or environment, explained in one line of Japanese."""

    def _render_traceback_(self):
        """What Jupyter shows instead of a traceback: the one line, as the CLI prints it."""
        return [f"\x1b[1;31mエラー:\x1b[0m {self}"]


class TrainingDiverged(UserError):
    """The training loss became NaN or infinite: the run is stopped at once instead of training on garbage."""

    def __init__(self, step, loss, lr):
        super().__init__(f"学習の {step} ステップ目で損失が {loss} になりました（発散）。学習率を下げてやり直してください"
                         f"（例: --lr {lr / 10:g}）。")
        self.step = step


class ArgumentError(UserError, ValueError):
    """A notebook-facing function was given something it cannot use: one line naming the function and what it takes."""


def explained_arguments(takes):
    """Decorate a function a student calls so that arguments it cannot use raise :class:`ArgumentError` (one line:
    the function, the error's kind, and ``takes``, what to pass) instead of an English error from NumPy, PyTorch
    or matplotlib. Errors that are no one's argument (a user error already, running out of memory) pass as they are."""
    def decorate(function):
        @functools.wraps(function)
        def checked(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except UserError:
                raise
            except (TypeError, ValueError, IndexError, AttributeError, KeyError, RuntimeError, ZeroDivisionError,
                    OverflowError) as e:
                text = str(e).splitlines()[0][:120] if str(e) else ""
                if "out of memory" in text or "can't allocate memory" in text:
                    raise
                raise ArgumentError(f"{function.__name__} に渡したものが使えません（{type(e).__name__}: {text}）。"
                                    f"渡すのは {takes} です。") from e
        return checked
    return decorate


def short(value, limit=40):
    """A one-line text of at most ``limit`` characters for any value (a tensor, a model, a whole checkpoint), for
    messages that show what was passed; never raises.

    >>> short(list(range(100)))
    '[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11...'
    """
    try:
        text = " ".join(repr(value).split())
    except Exception:  # noqa: BLE001 -- a value whose repr fails is still named by its type
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def whole_number(value):
    """``value`` as an int when it is one whole number: an int, a NumPy integer, or an integer scalar tensor or
    array (``y_hat[0]``, a 0-d tensor, is a digit as ``3`` is); else ``None`` (True/False, fractions, a list
    or a tensor of several numbers, a string).

    >>> import torch
    >>> whole_number(torch.tensor(7)), whole_number(torch.tensor([7])), whole_number(True), whole_number(3.0)
    (7, None, None, None)
    """
    if isinstance(value, bool) or "bool" in str(getattr(value, "dtype", "")) or getattr(value, "ndim", 0) != 0:
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def checked_seed(seed):
    """Return ``seed`` as the int ``torch.manual_seed`` takes (0 <= seed < 2**64; a NumPy or PyTorch integer too);
    else :class:`UserError`, one line."""
    try:
        value = operator.index(seed)
    except TypeError:
        value = -1
    if not 0 <= value < 2**64:
        raise UserError(f"乱数の種 seed は 0 以上 2**64 未満の整数にしてください（例: 0。今は {seed!r}）。")
    return value
