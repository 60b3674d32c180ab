"""mnist_lab_deploy/lesson.py: the lesson goes into a student's volume on first start; their edits survive restarts and image
updates; files they did not touch follow the image."""

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
    assert done == {"main.ipynb": "kept", "mnist_lab/train.py": "updated", "mnist_lab/new.py": "copied"}
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
    assert lesson.main([str(image), str(work)]) == 0
    assert capsys.readouterr().err.strip().startswith("lesson: 2 copied, 0 updated, 0 of yours kept")
