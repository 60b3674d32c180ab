"""Put the lesson into a student's own folder, never overwriting their work.

The image carries the lesson (main.ipynb, mnist_lab/, resources/, README.md) in ``/opt/mnist-lab/lesson``; a
server spawned by the hub works in ``/work``, the student's own volume. At every start:

- a lesson file the folder does not have is copied in (the first start copies them all);
- a file the student has not changed since it was copied is brought up to date when the image has a newer one;
- a file the student changed is kept as it is; the image's new version is left beside it as ``NAME.new``
  (once: a later start with the same image leaves that ``.new`` alone; "offered" in what :func:`synced` returns,
  else "kept").

"Changed" means: different from what was copied last time, recorded in ``.mnist-lab-lesson.json`` in the folder.
Standard library only; run by docker/start-singleuser as the student.

    python -m mnist_lab_deploy.lesson /opt/mnist-lab/lesson /work
"""

import errno
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

from .usage import Parser

RECORD = ".mnist-lab-lesson.json"


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def lesson_files(lesson):
    """The lesson's files, relative to ``lesson``, sorted."""
    return sorted(p.relative_to(lesson) for p in lesson.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def read_record(path):
    """The record of what was copied last time; ``{}`` when it is missing or unreadable (then every changed file is
    kept as the student's, the safe side)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def copied(source, target):
    """Copy ``source`` to ``target`` whole or not at all: into a hidden file beside it, then renamed over it, so a
    full disk never leaves a cut-off lesson file (which the next start would keep as the student's own)."""
    partial = target.with_name(f".{target.name}.partial")
    try:
        shutil.copyfile(source, partial)
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def offered(source, target, new, record, key):
    """Leave the image's ``new`` version beside the student's changed ``target``, once per version: as
    ``NAME.new``, or ``NAME.new2``... when the student changed the ``.new`` offered before (theirs, kept too).
    Return whether it did (False: this version was offered before)."""
    if new in (record.get(key), record.get(key + ".new")):
        return False
    for n in range(1, 100):
        spare, spare_key = (target.with_name(f"{target.name}.new{n if n > 1 else ''}"), f"{key}.new{n if n > 1 else ''}")
        if not spare.exists() or (spare.is_file() and digest(spare) == record.get(spare_key)):
            copied(source, spare)
            record[spare_key] = record[key + ".new"] = new
            return True
    return False


def sync_one(source, target, key, record):
    """Bring one lesson file up to date (rules above); return what happened."""
    new, have = digest(source), digest(target) if target.exists() else None
    if have == new:
        record[key] = new
        return "same"
    if have is not None and have != record.get(key):
        # the student's own version stays; "offered" when the image's new one was just put beside it
        return "offered" if offered(source, target, new, record, key) else "kept"
    target.parent.mkdir(parents=True, exist_ok=True)
    copied(source, target)  # new, or untouched by the student: the image's version
    record[key] = new
    return "copied" if have is None else "updated"


def synced(lesson, work):
    """Bring ``work`` up to date with ``lesson`` (rules above); return ``{relative path: what happened}``. A path
    that cannot be written (a folder where a file should be) is left out with one line, and the rest goes on."""
    record_path = work / RECORD
    record, done = read_record(record_path), {}
    for name in lesson_files(lesson):
        try:
            done[name.as_posix()] = sync_one(lesson / name, work / name, name.as_posix(), record)
        except OSError as e:
            print(f"lesson: {name.as_posix()} を置けませんでした（{e.strerror or e}。前からあったものはそのままです）。"
                  f"{fix_for(e, name)}、サーバーを起動し直してください。", file=sys.stderr)
    try:
        record_path.write_text(json.dumps(record, indent=1, sort_keys=True))
    except OSError as e:
        print(f"lesson: {RECORD} を書けませんでした（{e.strerror or e}）。/work に空きと書く権限があるか確かめてください。",
              file=sys.stderr)
    return done


def fix_for(error, name):
    """What the student does about ``error`` (an OSError) before the next start, for the lesson file ``name``."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return "/work の空きを作ってから"
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        folder = "/work" if name.parent == Path(".") else f"/work/{name.parent.as_posix()}"
        return (f"{folder} とその中の {name.name} に書く権限があるか ls -l で確かめて直してから（自分のものなら chmod u+rwx、"
                "ほかの人のものなら管理者に頼んで）")
    return "同じ名前のフォルダーやファイルを別の名前に変えてから"


def summary(done):
    """What :func:`synced` did (its ``done``), in one Japanese line for the server's log."""
    n = {what: sum(1 for v in done.values() if v == what) for what in ("copied", "updated", "kept", "offered")}
    said = [f"{n['copied']} 個を新しく置き" if n["copied"] else "", f"{n['updated']} 個を新しい版にし" if n["updated"] else "",
            f"あなたが変えた {n['kept'] + n['offered']} 個はそのままにし" if n["kept"] + n["offered"] else "",
            f"そのうち {n['offered']} 個の新しい版を横に .new の付いた名前で置き" if n["offered"] else ""]
    said = "、".join(part for part in said if part)
    return f"lesson: 授業のファイル: {said}ました。" if said else "lesson: 授業のファイルは最新です（変更なし）。"


def main(argv):
    p = Parser(prog="python3 -m mnist_lab_deploy.lesson",
               description="イメージの授業のファイルを学生のフォルダに置く（学生が変えたファイルはそのまま）")
    p.add_argument("lesson", type=Path, help="イメージの中の授業のフォルダ（例: /opt/mnist-lab/lesson）")
    p.add_argument("work", type=Path, help="学生のフォルダ（例: /work）")
    args = p.parse_args(argv)
    print(summary(synced(args.lesson, args.work)), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
