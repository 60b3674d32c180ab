"""mnist_lab_deploy/lesson.py: the lesson goes into a student's volume on first start; their edits survive restarts and image
updates; files they did not touch follow the image."""

import re

from mnist_lab_deploy import lesson


def write(root, files):
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_first_start_copies_the_whole_lesson(tmp_path):
    image, work = tmp_path / "image", tmp_path / "work"
    work.mkdir()
    write(image, {"main.ipynb": "v1", "mnist_lab/train.py": "loop v1", "mnist_lab/__pycache__/x.pyc": "junk"})
    done = lesson.synced(image, work)
    assert done == {"main.ipynb": "copied", "mnist_lab/train.py": "copied"}
    assert (work / "mnist_lab/train.py").read_text() == "loop v1" and not (work / "mnist_lab/__pycache__").exists()
    assert lesson.synced(image, work) == {"main.ipynb": "same", "mnist_lab/train.py": "same"}  # a restart: nothing


def test_an_image_update_keeps_the_students_edits_and_updates_the_rest(tmp_path):
    image, work = tmp_path / "image", tmp_path / "work"
    work.mkdir()
    write(image, {"main.ipynb": "v1", "mnist_lab/train.py": "loop v1"})
    lesson.synced(image, work)
    (work / "main.ipynb").write_text("v1 + my notes")
    write(image, {"main.ipynb": "v2", "mnist_lab/train.py": "loop v2", "mnist_lab/new.py": "new"})
    done = lesson.synced(image, work)
    assert done == {"main.ipynb": "offered", "mnist_lab/train.py": "updated", "mnist_lab/new.py": "copied"}
    assert (work / "main.ipynb").read_text() == "v1 + my notes"
    assert (work / "main.ipynb.new").read_text() == "v2"  # the new lesson beside the student's
    assert (work / "mnist_lab/train.py").read_text() == "loop v2"
    (work / "main.ipynb.new").write_text("v2, read and annotated")
    assert lesson.synced(image, work)["main.ipynb"] == "kept"
    assert (work / "main.ipynb.new").read_text() == "v2, read and annotated"  # offered once, not again


def test_a_deleted_file_comes_back_and_the_students_own_files_are_left_alone(tmp_path):
    image, work = tmp_path / "image", tmp_path / "work"
    work.mkdir()
    write(image, {"main.ipynb": "v1"})
    lesson.synced(image, work)
    (work / "main.ipynb").unlink()
    write(work, {"my_experiment.ipynb": "mine"})
    assert lesson.synced(image, work) == {"main.ipynb": "copied"}
    assert (work / "main.ipynb").read_text() == "v1" and (work / "my_experiment.ipynb").read_text() == "mine"


def test_main_says_what_it_did_in_one_line(tmp_path, capsys):
    image, work = tmp_path / "image", tmp_path / "work"
    work.mkdir()
    write(image, {"a.txt": "a", "b.txt": "b"})
    def said():
        assert lesson.main([str(image), str(work)]) == 0
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert re.search(r"[\u3040-\u30ff]", line) and "copied" not in line, line
        return line

    assert "2" in said() and ".new" not in said()  # copied, then the same image again: nothing offered
    (work / "a.txt").write_text("mine")
    write(image, {"a.txt": "a2"})
    assert ".new" in said() and ".new" not in said()  # offered once, then not again


def test_a_new_version_the_student_worked_in_is_kept_like_their_other_files(tmp_path):
    lesson_v = {v: tmp_path / v for v in ("v1", "v2", "v3")}
    for v, root in lesson_v.items():
        write(root, {"main.ipynb": v})
    work = tmp_path / "work"
    work.mkdir()
    lesson.synced(lesson_v["v1"], work)
    (work / "main.ipynb").write_text("mine")
    lesson.synced(lesson_v["v2"], work)
    (work / "main.ipynb.new").write_text("my work continued in the new version")
    lesson.synced(lesson_v["v3"], work)
    lesson.synced(lesson_v["v3"], work)
    texts = sorted(p.read_text() for p in work.iterdir() if p.name.startswith("main.ipynb"))
    assert texts == ["mine", "my work continued in the new version", "v3"]


def test_one_path_that_cannot_be_written_is_skipped_and_the_rest_arrives(tmp_path, capsys):
    write(tmp_path / "lesson", {"README.md": "r", "main.ipynb": "m", "mnist_lab/data.py": "d", "z.txt": "z"})
    work = tmp_path / "work"
    (work / "main.ipynb").mkdir(parents=True)  # a folder where a lesson file goes
    (work / "mnist_lab").write_text("a file where the package's folder goes")
    (work / lesson.RECORD).write_text('["not", "a record"')  # truncated
    lesson.main([str(tmp_path / "lesson"), str(work)])
    assert (work / "README.md").read_text() == "r" and (work / "z.txt").read_text() == "z"
    assert (work / "mnist_lab").read_text() == "a file where the package's folder goes"
    said = capsys.readouterr().err.splitlines()
    assert len(said) == 3 and "main.ipynb" in said[0] and "mnist_lab" in said[1]
    assert re.search(r"[\u3040-\u30ff]", said[0])


def test_the_deployment_commands_answer_help_and_usage_mistakes_in_one_japanese_line(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    locks = {p: p.read_bytes() for p in (repo / "docker" / "requirements.lock", repo / "hub" / "requirements.lock")}
    for module in ("lesson", "make_env", "lock", "kube"):
        shown = subprocess.run([sys.executable, "-m", f"mnist_lab_deploy.{module}", "--help"], capture_output=True,
                               text=True, env=env, cwd=tmp_path, timeout=120, check=False)
        assert shown.returncode == 0 and shown.stdout.startswith("使い方: ") and "Traceback" not in shown.stderr, shown
    assert {p: p.read_bytes() for p in locks} == locks  # --help of lock wrote nothing
    for argv in ([], ["only-one"], ["a", "b", "c"]):
        wrong = subprocess.run([sys.executable, "-m", "mnist_lab_deploy.lesson", *argv], capture_output=True, text=True,
                               env=env, cwd=tmp_path, timeout=120, check=False)
        lines = [line for line in wrong.stderr.splitlines() if line.strip()]
        assert wrong.returncode == 2 and len(lines) == 1 and lines[0].startswith("エラー: "), wrong.stderr


def test_a_full_disk_never_leaves_a_cut_off_lesson_file_kept_as_the_students(tmp_path, monkeypatch):
    import errno
    import shutil
    from pathlib import Path

    image, work = tmp_path / "image", tmp_path / "work"
    work.mkdir()
    write(image, {"main.ipynb": "v1", "mnist_lab/train.py": "loop v1"})
    lesson.synced(image, work)
    write(image, {"mnist_lab/train.py": "loop v2, much longer than the free space"})
    real_copy = shutil.copyfile

    def full_disk(source, target):
        Path(target).write_text(Path(source).read_text()[:5])  # what fitted
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", full_disk)
    lesson.synced(image, work)
    assert (work / "mnist_lab/train.py").read_text() == "loop v1"  # whole, the old version
    assert sorted(p.name for p in (work / "mnist_lab").iterdir()) == ["train.py"]  # nothing half written left
    monkeypatch.setattr(shutil, "copyfile", real_copy)
    assert lesson.synced(image, work)["mnist_lab/train.py"] == "updated"  # space again: updated, not "yours"
    assert (work / "mnist_lab/train.py").read_text() == "loop v2, much longer than the free space"


def test_a_permission_problem_gets_other_advice_than_a_name_in_the_way(tmp_path, monkeypatch, capsys):
    """Renaming fixes a folder where a file goes, not a file the student may not write: the two lines advise
    differently (what the OS said aside), each one line, and nothing the student had is lost."""
    import errno
    import shutil

    image, work = tmp_path / "image", tmp_path / "work"
    write(image, {"main.ipynb": "m", "resources/a.png": "a"})
    (work / "main.ipynb").mkdir(parents=True)  # a folder where a lesson file goes
    real_copy = shutil.copyfile

    def refused(source, target):
        if "a.png" in str(target):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_copy(source, target)

    monkeypatch.setattr(shutil, "copyfile", refused)
    lesson.synced(image, work)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and all(re.search(r"[\u3040-\u30ff]", line) for line in lines), lines
    advice = [re.sub(r"（[^）]*）", "", line).replace("resources/a.png", "").replace("main.ipynb", "") for line in lines]
    assert advice[0] != advice[1], lines
    assert (work / "main.ipynb").is_dir() and not (work / "resources" / "a.png").exists()
