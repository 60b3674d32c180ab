"""Files that are whole or absent: written to a temporary name, flushed to disk, then renamed into place.

A crash, Ctrl+C or a full disk while writing leaves the previous file (or none) and no half-written one. OS errors
become one Japanese line (:func:`os_error`) saying what happened to which path and what to do.
"""

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from .errors import UserError

DISK_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
NO_PERMISSION = (errno.EACCES, errno.EPERM)


def os_error(e, path, action="書けません"):
    """Return a :class:`UserError` explaining ``e`` (an ``OSError`` on ``path``) in one line."""
    if e.errno in DISK_FULL:
        return UserError(f"ディスクがいっぱいで {path} を書けません。空きを作ってからやり直してください"
                         "（前からあったファイルはそのままです）。")
    if e.errno in NO_PERMISSION:
        return UserError(f"{path} は権限がなくて{action}。自分が読み書きできる場所を指定するか、権限を確かめてください。")
    if e.errno == errno.EROFS:
        return UserError(f"{path} は読み取り専用の場所にあるので{action}。書き込める場所を指定してください。")
    if e.errno in (errno.ENOTDIR, errno.EEXIST):
        return UserError(f"{path} の途中にフォルダでなくファイルがあるので{action}。パスを確かめてください。")
    if e.errno == errno.ELOOP:
        return UserError(f"{path} のシンボリックリンクが輪になっているので{action}。リンク先を確かめてください。")
    if e.errno == errno.ENAMETOOLONG:
        return UserError(f"{path} は名前が長すぎるので{action}。短い名前にしてください。")
    return UserError(f"{path} を{action}（{e.strerror or type(e).__name__}）。パスと空き容量を確かめてください。")


def file_problem(path, what):
    """Return a :class:`UserError` saying why ``path`` is no regular file to read as ``what`` (Japanese, e.g.
    "画像ファイル"), or ``None`` when it is one: a folder, a device or pipe, a link to nowhere, a missing file."""
    path = Path(path)
    if path.is_dir():
        return UserError(f"{path} はフォルダです。{what}を指定してください。")
    if path.is_file():
        return None
    if path.exists():
        return UserError(f"{path} は普通のファイルではありません（デバイスやパイプなど）。{what}を指定してください。")
    if path.is_symlink():
        return UserError(f"{path} はリンクですが、リンク先がないか、リンクが輪になっています。{what}を指定してください。")
    return UserError(f"{path} が見つかりません。パスを確かめてください。")


def current_umask():
    """Return the process's umask (what a new file's or folder's mode leaves out), without changing it."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii", errors="replace") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere the only way to read it is to set it, briefly
    os.umask(mask)
    return mask


def fsync_dir(path):
    """Flush a folder's entries (a rename in it) to disk, where the system allows it."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_file(path, mode="wb"):
    """Yield a file open for writing under a temporary name beside ``path``; rename it to ``path`` only when the
    block ends without an error, after flushing it to disk. OS errors become :func:`os_error`'s ``UserError``."""
    path = Path(path)
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    except OSError as e:
        raise os_error(e, path) from e
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, 0o666 & ~current_umask())  # as open() would have made it (mkstemp makes 0600)
        os.replace(temporary, path)
        fsync_dir(path.parent)
    except OSError as e:
        raise os_error(e, path) from e
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
