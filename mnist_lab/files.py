"""Files that are whole or absent: written to a temporary name, flushed to disk, then renamed into place.

A crash, Ctrl+C or a full disk while writing leaves the previous file (or none) and no half-written one. OS errors
become one Japanese line (:func:`os_error`) saying what happened to which path and what to do.

Only a regular file is ever replaced: a folder, a device (``/dev/null``), a pipe or a socket at the path is refused
before anything is written (renaming over it would turn a device node into a file). A symbolic link is followed, as
``open()`` and the run folders (:mod:`mnist_lab.runs`) follow it: the file it points to is written, the link stays.
"""

import contextlib
import errno
import fcntl
import os
import secrets
import stat
import sys
from pathlib import Path

from .errors import UserError
from .interrupts import uninterrupted

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


FS_IOC_GETFLAGS, LOCKED_FLAGS = 0x80086601, 0x10 | 0x20  # Linux: the inode flags; immutable (+i), append-only (+a)


def locked_by_attribute(path):
    """Whether ``path`` carries Linux's immutable or append-only attribute (``chattr +i``/``+a``): not even root can
    remove, rename or replace it. False where the file system or system has no such attributes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        flags = int.from_bytes(fcntl.ioctl(fd, FS_IOC_GETFLAGS, bytes(4)), sys.byteorder)
    except OSError:
        return False
    finally:
        os.close(fd)
    return bool(flags & LOCKED_FLAGS)


def writable_path(path):
    """Return where writing ``path`` puts the file: ``path`` with its links followed (a dangling link included);
    :class:`UserError` if something other than a regular file is there (a folder, a device, a pipe, a socket)."""
    named = Path(path)
    try:
        real = Path(os.path.realpath(named, strict=True))
    except FileNotFoundError:  # a new file, or a link to one that does not exist yet
        real = Path(os.path.realpath(named))
    except OSError as e:  # a loop of links, a file where a folder should be
        raise os_error(e, named) from e
    _check_regular(real, named)
    return real


def _check_regular(real, named, folder_fd=None):
    """Raise :class:`UserError` unless ``real`` (no link; a name in the folder open as ``folder_fd`` if given) is
    missing or a regular file."""
    try:
        mode = os.stat(real, dir_fd=folder_fd).st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        raise os_error(e, named) from e
    if stat.S_ISDIR(mode):
        raise UserError(f"{named} はフォルダなので、そこにファイルは書けません。ファイルの名前を指定してください。")
    if not stat.S_ISREG(mode):
        raise UserError(f"{named} は普通のファイルではない（デバイスやパイプなど）ので書きません（そのままです）。"
                        "書き込むファイルの名前を指定してください。")


TAG = "abcdefghijklmnopqrstuvwxyz0123456789_"  # the characters of the tag, as tempfile's names use
NAME_MAX = 255  # bytes in one name on the usual file systems (ext4, XFS, Btrfs, tmpfs, APFS, NTFS)


def hidden_prefix(name, kind):
    """Return ``.NAME.KIND-``, the start of the name of a hidden file or folder of ``kind`` (``partial``: being
    written, ``replaced``: an old run moved aside) for ``name``, e.g. ``.model.pt.partial-``; a long ``name`` is
    cut short, so that the prefix and an 8-character tag still fit in one name (whatever fits ``name`` fits them)."""
    room = NAME_MAX - len(f"..{kind}-") - 8
    return f".{os.fsdecode(os.fsencode(name)[:room])}.{kind}-"


def _new_temporary(folder_fd, name):
    """Create and lock a new empty temporary file for ``name`` in the folder open as ``folder_fd``; return ``(fd,
    its name)``. The lock (flock) tells a live writer's file from one a killed process left
    (:func:`mnist_lab.runs.clean_leftovers`)."""
    for _ in range(100):
        temporary = hidden_prefix(name, "partial") + "".join(secrets.choice(TAG) for _ in range(8))
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600, dir_fd=folder_fd)
        except FileExistsError:
            continue
        with contextlib.suppress(OSError):  # a file system without locks: the file is never taken as stale
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd, temporary
    raise FileExistsError(errno.EEXIST, "No usable temporary name", name)


@contextlib.contextmanager
def atomic_file(path, mode="wb", folder_fd=None):
    """Yield a file open for writing under a temporary name beside ``path``; rename it to ``path`` only when the
    block ends without an error, after flushing it to disk. OS errors become :func:`os_error`'s ``UserError``.

    ``path`` is checked first (:func:`writable_path`): a link is followed, anything but a regular file refused.
    Everything happens through a descriptor of the folder (``folder_fd``, or one opened here), so that the
    temporary file is removed on any error or signal even when the folder was renamed meanwhile."""
    named, path = Path(path), writable_path(path)
    try:
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY) if folder_fd is None else os.dup(folder_fd)
    except OSError as e:
        raise os_error(e, named) from e
    temporary = None
    try:
        with uninterrupted():  # a signal waits until the temporary file's name is known, so it is always removed
            fd, temporary = _new_temporary(folder, path.name)
            f = os.fdopen(fd, mode)
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, 0o666 & ~current_umask(), dir_fd=folder)  # as open() would make it (created 0600)
        _check_regular(path.name, named, folder)  # again: a pipe or device may have been put there meanwhile
        os.replace(temporary, path.name, src_dir_fd=folder, dst_dir_fd=folder)
        with contextlib.suppress(OSError):
            os.fsync(folder)
    except OSError as e:
        raise os_error(e, named) from e
    finally:
        with uninterrupted():
            if temporary is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary, dir_fd=folder)
            os.close(folder)
