"""Put the lesson into a student's own folder, never overwriting their work.

The image carries the lesson (main.ipynb, mnist_lab/, resources/, README.md) in ``/opt/mnist-lab/lesson``; a
server spawned by the hub works in ``/work``, the student's own volume. At every start:

- a lesson file the folder does not have is copied in (the first start copies them all);
- a file the student has not changed since it was copied is brought up to date when the image has a newer one;
- a file the student changed is kept as it is; the image's new version is left beside it as ``NAME.new``
  (once: a later start with the same image leaves that ``.new`` alone).

"Changed" means: different from what was copied last time, recorded in ``.mnist-lab-lesson.json`` in the folder.
Standard library only; run by docker/start-singleuser as the student.

    python -m mnist_lab_deploy.lesson /opt/mnist-lab/lesson /work
"""

import hashlib
import json
import shutil
import sys
from pathlib import Path

RECORD = ".mnist-lab-lesson.json"


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def lesson_files(lesson):
    """The lesson's files, relative to ``lesson``, sorted."""
    return sorted(p.relative_to(lesson) for p in lesson.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def synced(lesson, work):
    """Bring ``work`` up to date with ``lesson`` (rules above); return ``{relative path: what happened}``."""
    record_path = work / RECORD
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    done = {}
    for name in lesson_files(lesson):
        source, target, key = lesson / name, work / name, name.as_posix()
        new, have = digest(source), digest(target) if target.exists() else None
        if have is None:
            done[key] = "copied"
        elif have == new:
            done[key] = "same"
        elif have == record.get(key):
            done[key] = "updated"  # untouched by the student: the image's newer version replaces it
        else:
            done[key] = "kept"  # the student's own version stays
            if new not in (record.get(key), record.get(key + ".new")):  # offered once, not at every start
                shutil.copyfile(source, target.with_name(target.name + ".new"))
                record[key + ".new"] = new
            continue
        if done[key] != "same":
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        record[key] = new
    record_path.write_text(json.dumps(record, indent=1, sort_keys=True))
    return done


def main(argv):
    lesson, work = map(Path, argv)
    done = synced(lesson, work)
    counts = {what: sum(1 for v in done.values() if v == what) for what in ("copied", "updated", "kept")}
    print(f"lesson: {counts['copied']} copied, {counts['updated']} updated, {counts['kept']} of yours kept "
          f"(their new version beside them as .new)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
