"""What every bad input and fault must leave behind, as assertions the property tests share.

- the exit status says what happened (0, 2 for a mistake the user can fix, 128 + N for signal N);
- a failure is exactly one line on stderr, in Japanese, with no traceback (lines starting ``お知らせ:`` are notes
  about something the program did, such as cleaning up after a killed run, and are allowed besides);
- an earlier run is byte for byte what it was, and no hidden staging folder or temporary file is left anywhere.
"""

import contextlib
import io
import os
import re
from pathlib import Path

from mnist_lab.runs import HIDDEN

JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


def problem_lines(err):
    """The lines of ``err`` that are not blank and not notes."""
    return [line for line in err.splitlines() if line.strip() and not line.startswith("お知らせ: ")]


def assert_one_japanese_line(err, prefix="エラー: "):
    lines = problem_lines(err)
    assert "Traceback" not in err and "Exception in thread" not in err, err
    assert len(lines) == 1, err
    assert lines[0].startswith(prefix) and JAPANESE.search(lines[0]), lines[0]
    return lines[0]


def assert_japanese_message(exception):
    """An exception meant for a student: one line of Japanese."""
    text = str(exception)
    assert text and "\n" not in text and JAPANESE.search(text), repr(text)


def snapshot(folder):
    folder = Path(folder)
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def stray_folders(root):
    """Hidden staging or aside folders, and temporary files being written, anywhere under ``root`` (links are not
    followed)."""
    found = []
    for folder, names, files in os.walk(root):
        found += [Path(folder, n) for n in names + files if HIDDEN.fullmatch(n)]
    return found


def run_main(argv):
    """Run the CLI in this process: ``(exit status, stdout, stderr)``; argparse's exits count as statuses."""
    from mnist_lab.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([os.fsdecode(a) if isinstance(a, bytes) else str(a) for a in argv])
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue()
