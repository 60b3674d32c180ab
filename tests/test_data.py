import io
import shutil
import tempfile
import urllib.error
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from invariants import assert_one_japanese_line, run_main, stray_folders

from mnist_lab import UserError
from mnist_lab import data as D


def copy_raw(mnist_root, tmp_path):
    D.raw_dir(tmp_path).mkdir(parents=True)
    for name in D.RAW_FILES:
        shutil.copy(D.raw_dir(mnist_root) / name, D.raw_dir(tmp_path) / name)
    return tmp_path


def test_real_data_shapes_and_normalisation(mnist):
    assert mnist.X_train.shape == (60000, 1, 28, 28) and mnist.X_test.shape == (10000, 1, 28, 28)
    assert mnist.y_train.dtype == torch.int64 and set(mnist.y_test.unique().tolist()) == set(range(10))
    assert abs(mnist.X_train.mean().item()) < 1e-3 and abs(mnist.X_train.std().item() - 1) < 1e-3
    assert len(mnist.y_val) == 0 and mnist.eval_split()[0] == "test"


def test_validation_split_is_fixed_and_disjoint(mnist_root):
    a = D.load_mnist(mnist_root, val_size=5000, seed=3, download=False)
    b = D.load_mnist(mnist_root, val_size=5000, seed=3, download=False)
    assert len(a.y_val) == 5000 and len(a.y_train) == 55000 and a.eval_split()[0] == "val"
    assert torch.equal(a.X_val, b.X_val)
    full = D.load_mnist(mnist_root, download=False)
    # every training image lands in exactly one of the two parts: the pixel sums add up
    assert torch.allclose(a.X_train.sum() + a.X_val.sum(), full.X_train.sum(), rtol=1e-5)
    c = D.load_mnist(mnist_root, val_size=5000, seed=4, download=False)
    assert not torch.equal(a.y_val, c.y_val)


def test_val_size_out_of_range(mnist_root):
    with pytest.raises(UserError, match="検証データ"):
        D.load_mnist(mnist_root, val_size=60000, download=False)


def test_normalize_roundtrip():
    images = torch.randint(0, 256, (4, 28, 28), dtype=torch.uint8)
    assert torch.allclose(D.denormalize(D.normalize(images)), images.float() / 255, atol=1e-6)


def test_shuffled_batches_cover_every_sample_once():
    X = torch.arange(10.0).view(10, 1, 1, 1)
    y = torch.arange(10)
    seen = [b for _, yb in D.shuffled_batches(X, y, 3, torch.Generator().manual_seed(0)) for b in yb.tolist()]
    assert sorted(seen) == list(range(10)) and seen != list(range(10))
    again = [b for _, yb in D.shuffled_batches(X, y, 3, torch.Generator().manual_seed(0)) for b in yb.tolist()]
    assert again == seen


def test_mnist_folder_precedence(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(D.ENV_ROOT, raising=False)
    assert str(D.mnist_folder()) == "mnist_data"
    monkeypatch.setenv(D.ENV_ROOT, str(tmp_path))
    assert D.mnist_folder() == tmp_path
    assert str(D.mnist_folder("elsewhere")) == "elsewhere"


def test_missing_files_offline_say_where_to_put_them(tmp_path):
    with pytest.raises(UserError) as e:
        D.ensure_mnist(tmp_path, download=False)
    message = str(e.value)
    assert str(D.raw_dir(tmp_path)) in message and all(name in message for name in D.RAW_FILES)
    assert "\n" not in message


def test_failed_download_gives_the_same_clear_message(tmp_path, monkeypatch):
    import torchvision.datasets

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets, "MNIST", no_network)
    with pytest.raises(UserError, match="4つのファイル"):
        D.ensure_mnist(tmp_path, download=True)


def test_a_failed_download_leaves_nothing_it_made(tmp_path, monkeypatch):
    """torchvision makes MNIST/raw/ and starts a file before the network fails: neither may stay behind (an empty
    folder looks as if the data were there); what was there before stays."""
    import torchvision.datasets

    def half_download(root, train=True, download=False):
        D.raw_dir(root).mkdir(parents=True, exist_ok=True)
        (D.raw_dir(root) / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b partial")
        raise urllib.error.URLError("the network went away")

    monkeypatch.setattr(torchvision.datasets, "MNIST", half_download)
    fresh = tmp_path / "fresh"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(D.ENV_ROOT, raising=False)
    with pytest.raises(UserError, match="4つのファイル") as e:
        D.ensure_mnist(download=True)  # ./mnist_data, made by the download
    assert not (tmp_path / "mnist_data").exists() and "--mnist-dir" not in str(e.value)
    D.raw_dir(fresh).mkdir(parents=True)
    (D.raw_dir(fresh) / "notes.txt").write_text("mine")
    with pytest.raises(UserError):
        D.ensure_mnist(fresh, download=True)
    assert sorted(p.name for p in D.raw_dir(fresh).iterdir()) == ["notes.txt"]


def test_truncated_file_is_named(mnist_root, tmp_path):
    root = copy_raw(mnist_root, tmp_path)
    path = D.raw_dir(root) / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(UserError, match="t10k-labels-idx1-ubyte の大きさ"):
        D.ensure_mnist(root, download=False)


def test_corrupted_file_is_named(mnist_root, tmp_path):
    root = copy_raw(mnist_root, tmp_path)
    path = D.raw_dir(root) / "train-labels-idx1-ubyte"
    content = bytearray(path.read_bytes())
    content[100] ^= 0xFF
    path.write_bytes(bytes(content))
    with pytest.raises(UserError, match="train-labels-idx1-ubyte のチェックサム") as e:
        D.ensure_mnist(root, download=False)
    assert "削除" in str(e.value)


def test_head_keeps_the_first_samples(mnist):
    small = mnist.head(7, 3)
    assert len(small.y_train) == 7 and len(small.y_test) == 3 and torch.equal(small.y_test, mnist.y_test[:3])


@pytest.mark.parametrize("named, layout", [("d/MNIST/raw", "d/MNIST/raw/{}"), ("d/MNIST", "d/MNIST/raw/{}"),
                                           ("d", "d/MNIST/raw/{}.gz"), ("d", "d/MNIST/raw/{}/"),
                                           ("d", "d/MNIST/{}"), ("d", "d/mnist/raw/{}"), ("d", "d/mnist/{}"),
                                           ("d", "d/raw/{}"), ("d", "d/{}"), ("d", "d/MNIST/raw/{}.gz once")])
def test_files_placed_wrongly_are_named_without_trying_a_download(tmp_path, monkeypatch, named, layout):
    """Files in a folder a little off (no raw/, lower case, not unpacked, one of them still packed): the message
    names where they are or the file to unpack, instead of blaming the network after a download attempt."""
    from mnist_lab import data as data_module
    from mnist_lab.data import RAW_FILES, ensure_mnist

    monkeypatch.setattr(data_module, "_download", lambda root: pytest.fail("a download hides the mistake"))
    for i, name in enumerate(RAW_FILES):
        shape = layout.removesuffix(" once")
        path = tmp_path / (shape if i == 0 or shape == layout else "d/MNIST/raw/{}").format(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir() if layout.endswith("/") else path.write_bytes(b"")
    with pytest.raises(UserError) as refused:
        ensure_mnist(tmp_path / named, download=True)
    if named != "d":
        assert str(tmp_path / "d") in str(refused.value)  # the folder to name instead
    elif "{}." not in layout and not layout.endswith("/"):
        assert str(tmp_path / layout.removesuffix("{}")).rstrip("/") in str(refused.value)  # where the files are
    elif layout.endswith("once"):
        assert next(iter(RAW_FILES)) in str(refused.value)  # the one file to unpack


def test_one_missing_file_is_named_when_no_download_can_bring_it(mnist_root, tmp_path, monkeypatch):
    root = copy_raw(mnist_root, tmp_path)
    (D.raw_dir(root) / "t10k-labels-idx1-ubyte").unlink()
    monkeypatch.setattr(D, "_download", lambda root: None)  # offline: the download brought nothing
    with pytest.raises(UserError) as refused:
        D.ensure_mnist(root, download=True)
    assert "t10k-labels-idx1-ubyte" in str(refused.value) and "train-images-idx3-ubyte" not in str(refused.value)


def test_head_refuses_what_is_no_count(mnist):
    for n in (-1, 5.5, "3", None):
        with pytest.raises(UserError):
            mnist.head(n, 3)
    for n in (-1, 5.5, "3"):
        with pytest.raises(UserError):
            mnist.head(3, n)
    assert len(mnist.head(7).y_test) == 7  # no n_test: as many as n_train


def legacy_junk():
    """What an older torchvision's ``MNIST/processed/training.pt`` or ``test.pt`` may hold when broken: nothing,
    random bytes, the start of a real torch file, or a whole torch file of the wrong thing."""
    def saved(value):
        buffer = io.BytesIO()
        torch.save(value, buffer)
        return buffer.getvalue()

    return st.one_of(st.just(b""), st.binary(max_size=64),
                     st.integers(1, 200).map(lambda n: saved((torch.zeros(3, 28, 28), torch.zeros(3)))[:n]),
                     st.sampled_from([saved({}), saved(torch.arange(5)), saved((torch.zeros(2, 28, 28),))]))


def with_legacy(root, training, test):
    legacy = root / "MNIST" / "processed"
    legacy.mkdir(parents=True, exist_ok=True)
    (legacy / "training.pt").write_bytes(training)
    (legacy / "test.pt").write_bytes(test)
    return root


def linked_raw(mnist_root, root):
    D.raw_dir(root).mkdir(parents=True)
    for name in D.RAW_FILES:
        (D.raw_dir(root) / name).symlink_to(D.raw_dir(mnist_root) / name)
    return root


@settings(max_examples=8, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(training=legacy_junk(), test=legacy_junk())
def test_broken_files_of_an_older_torchvision_beside_good_raw_files_are_not_read(mnist_root, mnist, training, test):
    """The verified raw files are what is read, whatever ``MNIST/processed/`` holds (torchvision preferred it)."""
    with tempfile.TemporaryDirectory() as folder:
        root = with_legacy(linked_raw(mnist_root, Path(folder)), training, test)
        images, labels = D.read_split(D.ensure_mnist(root, download=False), train=False)
        assert torch.equal(D.normalize(images), mnist.X_test) and torch.equal(labels, mnist.y_test)


def test_evaluate_with_broken_older_torchvision_files_reads_the_raw_ones(mnist_root, tmp_path):
    from mnist_lab import build_model, make_config, save_checkpoint

    config = make_config("quick")
    checkpoint = save_checkpoint(tmp_path / "model.pt", build_model(config.model), vars(config))
    root = with_legacy(linked_raw(mnist_root, tmp_path / "bm"), b"", b"\x80\x02junk")
    code, out, err = run_main(["evaluate", "--mnist-dir", root, "--device", "cpu", checkpoint])
    assert code == 0 and "10000" in out, err


@settings(max_examples=6, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(training=legacy_junk(), test=legacy_junk(), command=st.sampled_from(["train", "evaluate"]))
def test_only_files_of_an_older_torchvision_is_one_line_before_training(monkeypatch, training, test, command):
    """Without raw files, torchvision would load the old files (or fail on them) instead of downloading: one line
    saying what to remove, no download tried, and no run folder made."""
    monkeypatch.setattr(D, "_download", lambda root: pytest.fail("torchvision would read the old files"))
    with tempfile.TemporaryDirectory() as folder:
        root = with_legacy(Path(folder) / "bm", training, test)
        out = Path(folder) / "run"
        argv = (["train", "--dry-run", "--out", out] if command == "train" else ["evaluate", Path(folder) / "model.pt"])
        if command == "evaluate":
            from mnist_lab import build_model, save_checkpoint

            save_checkpoint(argv[-1], build_model("quick_cnn"), {})
        code, _, err = run_main([*argv, "--mnist-dir", root, "--device", "cpu"])
        assert code == 2 and "processed" in assert_one_japanese_line(err), err
        assert not out.exists() and not stray_folders(folder)


def test_a_read_only_empty_folder_is_not_reported_as_no_internet(tmp_path, monkeypatch):
    """An empty MNIST folder on a read-only mount (a share given read-only): the download cannot write there, and
    the message says so instead of blaming the network; no download is tried."""
    import subprocess

    folder = tmp_path / "ro"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(folder)], check=True)
    try:
        monkeypatch.setattr(D, "_download", lambda root: pytest.fail("a download cannot write there"))
        with pytest.raises(UserError) as read_only:
            D.ensure_mnist(folder, download=True)
    finally:
        subprocess.run(["umount", str(folder)], check=True)
    monkeypatch.setattr(D, "_download", lambda root: None)  # what a failed download leaves: nothing
    with pytest.raises(UserError) as offline:
        D.ensure_mnist(folder, download=True)
    assert str(folder) in str(read_only.value) and str(read_only.value) != str(offline.value)
    assert "\n" not in str(read_only.value)


def test_a_run_folder_named_as_the_mnist_folder_is_refused_before_any_download(tmp_path, monkeypatch):
    """A download would put MNIST into the run folder, which would then no longer be one."""
    from test_faults import previous_run, snapshot

    run = previous_run(tmp_path / "run")
    before = snapshot(run)
    monkeypatch.setattr(D, "_download", lambda root: pytest.fail("the run folder would get MNIST in it"))
    with pytest.raises(UserError) as refused:
        D.ensure_mnist(run, download=True)
    assert str(run) in str(refused.value) and "\n" not in str(refused.value)
    assert snapshot(run) == before


def test_a_device_for_the_data_is_one_line_before_anything_is_read(tmp_path):
    """``load_mnist(device="cuda")``: one line (the data stays on the CPU), before any folder is made or read."""
    from invariants import assert_japanese_message

    for keywords in ({"device": "cuda"}, {"batch_size": 64}):
        with pytest.raises(UserError) as refused:
            D.load_mnist(tmp_path / "nowhere", **keywords)
        assert_japanese_message(refused.value)
    assert list(tmp_path.iterdir()) == []
