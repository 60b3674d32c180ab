"""The run folder that ``train`` writes and ``evaluate``/``report`` read: ``model.pt`` + ``results.json``.

``results.json``, the run's record, holds its figures, its config and its :class:`~mnist_lab.history.History`, as
strict JSON (a NaN is written as ``null``); older versions named it ``metrics.json``, which is still read. A run folder appears whole or not at all, and everything about the place is
checked before training (:func:`new_run`):

- a symbolic link is followed: the run is written where it points (a dangling link included) and the link stays;
- a folder that must stay where it is (a mount point such as a Docker volume or a mounted share, the current
  folder, a folder whose parent is not ours) is written *into*: the files are staged in a hidden folder inside it
  and moved in one by one, ``results.json`` last;
- anywhere else the files are staged in a hidden folder beside the target, on the same file system, and that
  folder is renamed into place at the end (should that rename be refused after all, the files are moved in).

An existing run is replaced only when asked (``force``): it is moved aside first, the new one moved in, the old one
removed. Every hidden folder is locked while its run is alive; one left by a killed run (``kill -9``, a power cut)
is named and cleaned up by the next run into the same place, and an old run left aside is put back.
"""

import contextlib
import errno
import fcntl
import json
import math
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .checkpoint import RUN_RECORDS, write_checkpoint
from .console import one_line
from .errors import UserError
from .files import atomic_file, current_umask, fsync_dir, hidden_prefix, locked_by_attribute, os_error
from .history import History
from .interrupts import uninterrupted

RECORD, OLD_RECORD = RUN_RECORDS  # the run's record; the name older versions wrote, still read
RUN_FILES = ("model.pt", RECORD)
FIGURES = ("training_curves.png", "predictions.png", "confusion_matrix.png", "misclassified.png")
STAGED, ASIDE = "partial", "replaced"  # the hidden folders: a run being written, an old run being replaced
CANNOT_RENAME = (errno.EBUSY, errno.EXDEV, errno.EPERM, errno.EACCES, errno.EINVAL)
# what tempfile.mkdtemp makes for a run (".run.partial-x1y2z3w4"), and files.atomic_file for a file (".model.pt.partial-...")
HIDDEN = re.compile(r"\.(?:(?P<name>.+)\.)?(?P<kind>partial|replaced)-[a-z0-9_]{8}")


def is_run(folder):
    """Whether ``folder`` holds a run (its two files, maybe with report figures) and nothing else (but for a file
    system's ``lost+found`` at a mount point, and the hidden folders of a run being written)."""
    names = {p.name for p in entries(folder)}
    has_record = RECORD in names or OLD_RECORD in names
    return "model.pt" in names and has_record and names <= {*RUN_FILES, OLD_RECORD, *FIGURES}


def record_path(run_dir):
    """Return the path of the run's record in ``run_dir``: ``results.json``, or an older run's ``metrics.json``."""
    run_dir = Path(run_dir)
    return run_dir / OLD_RECORD if not (run_dir / RECORD).exists() and (run_dir / OLD_RECORD).exists() else run_dir / RECORD


def entries(folder):
    """The entries of ``folder`` that belong to no run of this module and to no file system."""
    folder = Path(folder)
    skip = {"lost+found"} if _is_mount(folder) else set()
    return [p for p in folder.iterdir() if p.name not in skip and not HIDDEN.fullmatch(p.name)]




@dataclass(frozen=True)
class Target:
    """Where a run goes: ``named`` as the user wrote it (for messages), ``path`` with every link resolved, and
    whether the run is staged ``inside`` the folder (it must stay where it is) or beside it."""

    named: Path
    path: Path
    inside: bool

    def hidden(self, kind):
        """Return ``(folder, prefix)`` for a new hidden folder of ``kind`` (STAGED or ASIDE)."""
        if self.inside:
            return self.path, f".{kind}-"
        return self.path.parent, hidden_prefix(self.path.name, kind)


def target(out):
    """Return the :class:`Target` for ``--out`` ``out``: links resolved, and where the files will be staged."""
    named = Path(out)
    try:
        path = Path(os.path.realpath(named, strict=True))
    except FileNotFoundError:  # a new folder, or a link to one that does not exist yet
        path = Path(os.path.realpath(named))
    except OSError as e:  # a loop of links, no permission to look
        raise os_error(e, named, "使えません") from e
    inside = path.is_dir() and (_is_mount(path) or _holds_cwd(path) or not os.access(path.parent, os.W_OK))
    return Target(named, path, inside)


def _mount_points():
    """The mount points the kernel lists for this process (bind mounts of one file system included)."""
    try:
        with open("/proc/self/mountinfo", "rb") as f:
            fields = [line.split() for line in f]
    except OSError:
        return set()
    unescape = re.compile(rb"\\([0-7]{3})")
    return {os.fsdecode(unescape.sub(lambda m: bytes([int(m.group(1), 8)]), f[4])) for f in fields if len(f) > 4}


def _is_mount(path):
    return os.path.ismount(path) or str(path) in _mount_points()


def _holds_cwd(path):
    try:
        cwd = Path.cwd().resolve()
    except OSError:
        return False
    return cwd == path or path in cwd.parents


def check_out_dir(out, force=False):
    """Raise :class:`UserError` unless a run may be written at ``out`` (a path or a :class:`Target`)."""
    place = out if isinstance(out, Target) else target(out)
    out, path = place.named, place.path
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {out} はファイルです。結果を書くフォルダの名前を指定してください。")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise UserError(f"--out {out} の途中の {existing} はファイルです。フォルダの名前を指定してください。")
    if existing != path and _safe_is_run(existing):
        raise UserError(f"--out {out} は学習結果のフォルダ {existing} の中です。別の場所を指定してください。")
    try:
        found = entries(path) if path.is_dir() else []
    except OSError as e:
        raise os_error(e, out, "読めません") from e
    if found and not all(p.name in (*RUN_FILES, OLD_RECORD, *FIGURES) and p.is_file() for p in found):
        raise UserError(f"{out} には学習結果ではないファイルがあるので使いません。新しいフォルダの名前を --out に指定してください。")
    if found and not force:
        raise UserError(f"{out} には前の学習結果があります。残すなら別の --out を指定し、上書きするなら --force を付けてください。")
    locked = next((p for p in (path, *found) if found and locked_by_attribute(p)), None)
    if locked is not None:
        raise UserError(f"{locked} には変更できない属性（chattr +i か +a）が付いているので、--force でも前の学習結果を置き換え"
                        f"られません。別の --out を指定するか、属性を外してください（例: chattr -ia {locked}）。")


def _safe_is_run(folder):
    try:
        return is_run(folder)
    except OSError:
        return False


def finished_run(folder):
    """Whether ``folder`` holds a run whose training finished (no ``--dry-run``, not stopped): a run that only
    another finished one may replace. A record that cannot be read counts as finished (it is kept)."""
    if not _safe_is_run(folder):
        return False
    try:
        results = json.loads(record_path(folder).read_text(encoding="utf-8-sig"))
    except (OSError, ValueError, RecursionError):
        return True
    return not (isinstance(results, dict) and (results.get("dry_run") or results.get("interrupted")))


def run_holding(path):
    """Return the run folder that ``path`` is or lies in (links resolved), or ``None``: a place where writing
    anything else would make an earlier run no run folder any more."""
    path = Path(os.path.realpath(path))
    return next((folder for folder in (path, *path.parents) if _safe_is_run(folder)), None)


class _Locked:
    """A new hidden folder of ``kind`` for ``place``, locked (flock) for as long as this process holds it."""

    def __init__(self, place, kind, mode=None):
        folder, prefix = place.hidden(kind)
        with uninterrupted():
            try:
                self.path = Path(tempfile.mkdtemp(prefix=prefix, dir=folder))
                if mode is not None:
                    os.chmod(self.path, mode)
                self.fd = os.open(self.path, os.O_RDONLY)
            except OSError as e:
                with contextlib.suppress(OSError, AttributeError):
                    os.rmdir(self.path)
                raise os_error(e, place.named, "作れません") from e
            with contextlib.suppress(OSError):  # a file system without locks: the folder is never taken as stale
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release(self):
        with uninterrupted():
            shutil.rmtree(self.path, ignore_errors=True)
            os.close(self.fd)


def _unlocked(folder):
    """Whether no live process holds ``folder``'s lock (the run that made it is gone)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _leftovers(folder):
    """Yield ``(hidden folder or file, kind, name)`` for each hidden folder in ``folder``, and each temporary file
    of :func:`~mnist_lab.files.atomic_file`, that no live process holds (``name``: the run or file it belongs to
    beside it, or ``None`` for a folder inside a run folder)."""
    try:
        found = [(p, HIDDEN.fullmatch(p.name)) for p in folder.iterdir()]
    except OSError:
        return
    for path, match in found:
        if not match or path.is_symlink() or not (path.is_dir() or path.is_file() and match["kind"] == STAGED):
            continue
        if _unlocked(path):
            yield path, match["kind"], match["name"]


def clean_leftovers(place, folders=None):
    """Remove the hidden folders and files that a killed run or report left beside or inside ``place`` (or in
    ``folders``), naming each on stderr, and put back an old run that was moved aside when the run replacing it did
    not finish."""
    for folder in folders or {place.path.parent, place.path}:
        for hidden, kind, name in list(_leftovers(folder)):
            try:
                with uninterrupted():
                    _clean_leftover(hidden, kind, _run_of(hidden, kind, folder, name))
            except OSError as e:
                _note(f"前に止まった学習が残したフォルダ {hidden} を片付けられませんでした（{e.strerror}）。")


def _run_of(hidden, kind, folder, name):
    """The run a hidden folder in ``folder`` belongs to: ``folder`` itself (one inside a run folder, no ``name``),
    else the run beside it; an old run moved aside is the one folder it holds (its name in full, where the hidden
    folder's own name has it cut short when it was long)."""
    if not name:
        return folder
    held = list(hidden.iterdir()) if kind == ASIDE and hidden.is_dir() else []
    return folder / held[0].name if len(held) == 1 and held[0].is_dir() else folder / name


def clean_stale_files(folder):
    """Remove the temporary files in ``folder`` that a killed command left (naming each on stderr)."""
    for hidden, kind, name in list(_leftovers(Path(folder))):
        if not hidden.is_dir():
            with contextlib.suppress(OSError), uninterrupted():
                _clean_leftover(hidden, kind, name)


def _clean_leftover(hidden, kind, run):
    if not hidden.is_dir():  # a file that a killed command was writing
        hidden.unlink()
        _note(f"前に止まったコマンドの書きかけのファイル {hidden} を削除しました。")
        return
    if kind == STAGED:
        if all(p.name in RUN_FILES or p.name.startswith(".") for p in hidden.iterdir()):  # only what a run writes
            shutil.rmtree(hidden)
            _note(f"前に止まった学習の書きかけ {hidden} を削除しました。")
        return
    old = hidden / run.name if hidden.parent == run.parent else hidden
    if old.is_dir() and any(old.iterdir()):
        if old != hidden and not run.exists():  # moved aside, the new run never moved in
            os.replace(old, run)
            _note(f"置き換えの途中で止まった前の学習結果を {run} に戻しました。")
        elif old == hidden and not all((run / name).is_file() for name in RUN_FILES):
            for name in RUN_FILES:
                with contextlib.suppress(FileNotFoundError):
                    (run / name).unlink()
            _move_files(old, run)
            _note(f"置き換えの途中で止まった前の学習結果を {run} に戻しました。")
        else:
            _note(f"置き換え済みの前の学習結果 {hidden} を削除しました。")
    shutil.rmtree(hidden)


def _note(text):
    print(one_line(f"お知らせ: {text}"), file=sys.stderr)


def _check_space(folder, needed, out):
    with contextlib.suppress(OSError):
        stat = os.statvfs(folder)
        if stat.f_bavail * stat.f_frsize < needed:
            raise os_error(OSError(errno.ENOSPC, "No space left on device"), out)


class NewRun:
    """What :func:`new_run` yields: ``staging``, the hidden folder to write the run into, and ``final``, where the
    run is once the block has ended (the ``--out`` given, unless something appeared there meanwhile)."""

    def __init__(self, staging, final):
        self.staging, self.final = staging, final
        self.keep_old = False  # set it when the run was stopped early: it never replaces a whole earlier run


@contextlib.contextmanager
def new_run(out, force=False, needed=0):
    """Check ``out``, then yield a :class:`NewRun` whose ``staging`` folder the run is written into; when the block
    ends without an error, its files become the run at ``out`` (replacing an old run only with ``force``); on any
    error it is removed, with the folders made for it.

    Checked before the block runs (so before any training): the place itself (:func:`check_out_dir`), that a folder
    can be made there, and that ``needed`` bytes are free on its file system. Should something appear at ``out``
    while the block runs (another training into the same place), the run is kept beside it, as ``out-2``...
    """
    place = target(out)
    clean_leftovers(place)
    check_out_dir(place, force)
    made = [p for p in place.path.parents if not p.exists()]
    staging, done = None, False
    try:
        try:
            place.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise os_error(e, place.named, "作れません") from e
        staging = _Locked(place, STAGED, mode=0o777 & ~current_umask())
        _check_space(staging.path, needed, place.named)
        run = NewRun(staging.path, place.named)
        yield run
        run.final = _move_into_place(staging.path, place, force and not run.keep_old, run.keep_old)
        done = True
    finally:
        if staging is not None:
            staging.release()
        for folder in made if not done else ():  # the parents made for a run that never came, deepest first
            with contextlib.suppress(OSError), uninterrupted():
                folder.rmdir()


@contextlib.contextmanager
def run_lock(folder_fd, waiting=None):
    """Hold the lock of the run folder open as ``folder_fd`` (flock on the folder itself): ``train`` holds it while
    it replaces a run, ``report`` while it writes figures, so that a folder's figures always come from its model.
    ``waiting`` is a note to print should the other one hold it now. Without locks (some network file systems) the
    block runs unlocked."""
    try:
        fcntl.flock(folder_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        if waiting:
            _note(waiting)
        fcntl.flock(folder_fd, fcntl.LOCK_EX)
    except OSError:
        pass
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(folder_fd, fcntl.LOCK_UN)


@contextlib.contextmanager
def _locked_if_there(path):
    """Hold the lock of the run folder at ``path`` for the block, when there is a folder there."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        yield
        return
    try:
        with run_lock(fd, f"{path} に report が図を書いているので、終わるのを待ちます。"):
            yield
    finally:
        os.close(fd)


def _move_into_place(staging, place, force, stopped=False):
    """Make the files in ``staging`` the run at ``place``; return where the run is (the name the user gave). A run
    that was ``stopped`` early goes beside an earlier run rather than over it. The run folder there is locked
    meanwhile (:func:`run_lock`): a report that is writing its figures finishes first."""
    with _locked_if_there(place.path):
        return _move_locked(staging, place, force, stopped)


def _move_locked(staging, place, force, stopped):
    try:
        check_out_dir(place, force)  # again: something may have appeared there while training
    except UserError:
        beside = None if place.inside else _beside(place)
        if beside is None:
            raise
        _note(f"途中で止めた学習なので {place.named} の前の結果は残し、この結果は {beside.named} に保存します。" if stopped
              else f"学習のあいだに {place.named} に別のものが置かれたので、この結果は {beside.named} に保存します。")
        place = beside
    fsync_dir(staging)
    if not place.inside:
        try:
            with uninterrupted():
                _swap_folder(staging, place)
            return place.named
        except OSError as e:
            if e.errno not in CANNOT_RENAME or not place.path.is_dir():
                raise os_error(e, place.named, "書けません") from e
    with uninterrupted():
        _swap_files(staging, place)  # the folder must stay: its files are replaced instead
    return place.named


def _beside(place):
    """The first free ``NAME-2``, ``NAME-3``... beside ``place`` (a run found its place taken), or None."""
    for i in range(2, 100):
        path = place.path.with_name(f"{place.path.name}-{i}")
        if not os.path.lexists(path):
            return Target(path, path, False)
    return None


def _swap_folder(staging, place):
    """Rename ``staging`` to the target; an old run there is moved aside first and removed last. An OSError
    leaves everything as it was."""
    out, aside = place.path, None
    if out.is_dir() and any(out.iterdir()):
        aside = _Locked(place, ASIDE)
        try:
            os.replace(out, aside.path / out.name)
        except OSError:
            aside.release()
            raise
    elif out.is_dir():
        out.rmdir()
    try:
        os.replace(staging, out)
    except OSError:
        if aside is not None:
            os.replace(aside.path / out.name, out)
            aside.release()
        elif not out.exists():
            out.mkdir()
        raise
    fsync_dir(out.parent)
    if aside is not None:
        aside.release()
        if aside.path.exists():  # something in it could not be removed after all
            _note(f"置き換えた前の学習結果を消しきれず、{aside.path} に残っています。要らなければ消してください。")


def _swap_files(staging, place):
    """Move the run's files from ``staging`` into the target folder (``results.json`` last); an old run's files are
    moved aside first and put back if anything fails."""
    out, aside = place.path, None
    old = [name for name in (*RUN_FILES, OLD_RECORD, *FIGURES) if (out / name).exists()]
    try:
        if old:
            aside = _Locked(place, ASIDE)
            for name in old:
                _move(out / name, aside.path / name)
        _move_files(staging, out)
    except (OSError, UserError) as e:
        for name in RUN_FILES:
            with contextlib.suppress(FileNotFoundError):
                (out / name).unlink()
        if aside is not None:
            _move_files(aside.path, out)
        raise e if isinstance(e, UserError) else os_error(e, place.named, "書けません") from e
    finally:
        if aside is not None:
            aside.release()


def _move_files(source, folder):
    for path in sorted(source.iterdir(), key=lambda p: p.name in (RECORD, OLD_RECORD)):  # the record last: run whole
        _move(path, folder / path.name)
    fsync_dir(folder)


def _move(source, destination):
    """Rename ``source`` to ``destination``, or copy it there whole (another file system) and remove it."""
    try:
        os.replace(source, destination)
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
        with open(source, "rb") as f, atomic_file(destination) as g:
            shutil.copyfileobj(f, g)
        source.unlink()


def strict_json(value):
    """Return ``value`` with every NaN or infinity replaced by ``None``, so that ``json.dumps`` writes strict JSON.

    >>> strict_json({"loss": float("nan"), "records": [1.0, float("inf")]})
    {'loss': None, 'records': [1.0, None]}
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def write_run(folder, model, config, results, history):
    """Write ``model.pt`` and ``results.json`` (``results`` + ``config`` + ``history``) into ``folder``."""
    folder = Path(folder)
    results = strict_json({**results, "config": dict(config)})
    write_checkpoint(folder / "model.pt", model, config, results)
    text = json.dumps({**results, "history": strict_json(history.to_dict())}, indent=2, allow_nan=False,
                      ensure_ascii=False)
    with atomic_file(folder / RECORD, "w") as f:
        f.write(text + "\n")


def read_run(run_dir):
    """Return ``(results dict, History)`` of a run folder (``results.json``, or an older run's ``metrics.json``);
    :class:`UserError` saying what is wrong otherwise.

    Everything is checked here, before anything slow (loading MNIST) happens: the files, the JSON, and every
    record of the history (:meth:`History.from_dict` with ``strict``).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        if run_dir.exists():
            raise UserError(f"{run_dir} はファイルです。train の --out で指定したフォルダを指定してください。")
        raise UserError(f"{run_dir} というフォルダがありません{_left_aside(run_dir)}。train の --out で指定したフォルダを指定してください。")
    path = record_path(run_dir)
    odd = [p.name for p in (run_dir / "model.pt", path) if p.exists() and not p.is_file()]
    if odd:
        raise UserError(f"{run_dir} の {'、'.join(odd)} がファイルではありません（フォルダなど）。train が書いたフォルダを"
                        "指定するか、学習をやり直してください。")
    missing = [p.name for p in (run_dir / "model.pt", path) if not p.is_file()]
    if missing:
        raise UserError(f"{run_dir} に {'、'.join(missing)} がありません{_left_aside(run_dir)}。"
                        "`mnist-lab train --out フォルダ` が書いたフォルダを指定してください。")
    results = _record(path)
    if not isinstance(results, dict) or not isinstance(results.get("history"), dict):
        raise UserError(f"{path} に学習の履歴（history）がありません（古い形式か壊れています）。学習をやり直してください。")
    try:
        history = History.from_dict(results["history"], strict=True)
    except ValueError as e:
        raise UserError(f"{path} の学習の履歴が壊れています（{e}）。学習をやり直すか、手で直した所を元に戻してください。") from e
    return results, history


def _record(path):
    """The JSON in the run's record ``path`` (a BOM, as Windows editors write one, is skipped); :class:`UserError`
    otherwise, pointing at the place a hand edit broke: the model is fine, only the record needs undoing."""
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as e:
        raise os_error(e, path, "読めません") from e
    except UnicodeDecodeError as e:
        raise UserError(f"{path} が UTF-8 ではありません（{e.start + 1} バイト目）。手で書き換えて別の文字コード（Shift_JIS など）で"
                        "保存したなら、UTF-8 で保存し直すか書き換えを元に戻してください。") from e
    except json.JSONDecodeError as e:
        raise UserError(f"{path} が JSON として読めません（{e.lineno} 行目 {e.colno} 文字目: {e.msg}）。手で書き換えたなら、その所を"
                        "元に戻してください（モデルの model.pt はそのままです）。書き換えていないなら学習をやり直してください。") from e
    except (ValueError, RecursionError) as e:  # nested too deeply, a number too long...
        raise UserError(f"{path} が壊れています（JSON として読めません）。手で書き換えたなら元に戻し、書き換えていないなら"
                        "学習をやり直してください。") from e


def _left_aside(run_dir):
    """A note naming the old run that an interrupted replacement left aside, if there is one."""
    prefix = hidden_prefix(run_dir.name, ASIDE)
    try:
        beside = [p / run_dir.name for p in run_dir.parent.iterdir() if p.name.startswith(prefix)]
    except OSError:
        beside = []
    copies = sorted(p for p in beside if p.is_dir())
    copies += sorted(p for p in run_dir.glob(f".{ASIDE}-*") if record_path(p).is_file()) if run_dir.is_dir() else []
    return f"（置き換えの途中で止まったようです。前の結果は {copies[-1]} に残っています）" if copies else ""
