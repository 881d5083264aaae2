"""``--data`` staging (content-addressed, symlinks checked, two classes at least) and content digests."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from pipeline.local.data import DataError, latest_data, stage_data
from pipeline.object_store import ObjectStore

DATA_URI = "s3://bucket/datasets/dogImages/"


def image_folder(root: Path, classes: tuple[str, ...] = ("a", "b")) -> Path:
    for split in ("train", "valid", "test"):
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True)
            (folder / "1.jpg").write_bytes(f"{split}-{name}".encode())
    return root


def test_same_content_is_stored_once_and_other_content_elsewhere(tmp_path: Path) -> None:
    store, root = ObjectStore(tmp_path / "root"), tmp_path / "root"
    data = image_folder(tmp_path / "data")
    first, count, copied = stage_data(store, root, data, DATA_URI)
    assert (count, copied) == (6, True) and first.startswith("s3://bucket/datasets/by-content/")
    assert first.endswith("/dogImages/") and store.exists(f"{first}train/a/1.jpg")
    assert stage_data(store, root, shutil.copytree(data, tmp_path / "copy"), DATA_URI) == (first, 6, False)
    (data / "train" / "a" / "2.jpg").write_bytes(b"more")
    second, _, _ = stage_data(store, root, data, DATA_URI)
    assert second != first and store.exists(f"{first}train/a/1.jpg")  # the first stays for its runs
    assert latest_data(store, root, DATA_URI) == second


def test_content_changed_with_same_size_and_mtime_is_a_new_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Digests are remembered by stat; the ctime in that key catches a rewrite that restored mtime."""
    import pipeline.file_digests

    monkeypatch.setattr(pipeline.file_digests, "RACY_WINDOW_S", -1.0)  # remember even fresh files
    store = ObjectStore(tmp_path / "root")
    uri, _, _ = stage_data(store, tmp_path / "root", image_folder(tmp_path / "data"), DATA_URI)
    before = store.fingerprint(uri)
    stored = store.path_for(f"{uri}train/a/1.jpg")
    assert store.digests.digests([stored])  # remembered: a re-run reads nothing
    time.sleep(0.05)  # past the kernel's coarse ctime tick
    status = stored.stat()
    stored.write_bytes(b"X" * status.st_size)  # same size ...
    os.utime(stored, ns=(status.st_atime_ns, status.st_mtime_ns))  # ... and the same mtime
    assert stored.stat().st_mtime_ns == status.st_mtime_ns
    assert store.fingerprint(uri) != before


def test_a_symlink_leaving_the_data_folder_is_refused_naming_it(tmp_path: Path) -> None:
    data = image_folder(tmp_path / "data")
    secret = tmp_path / "secret.txt"
    secret.write_text("not data")
    (data / "train" / "a" / "x.jpg").symlink_to(secret)
    with pytest.raises(DataError, match=r"train/a/x\.jpg links outside the data folder"):
        stage_data(ObjectStore(tmp_path / "root"), tmp_path / "root", data, DATA_URI)


def test_symlinks_inside_are_followed_loops_and_dangling_links_are_one_line_errors(tmp_path: Path) -> None:
    store, root = ObjectStore(tmp_path / "root"), tmp_path / "root"
    data = image_folder(tmp_path / "data")
    (data / "train" / "a" / "same.jpg").symlink_to(data / "train" / "b" / "1.jpg")
    uri, count, _ = stage_data(store, root, data, DATA_URI)
    assert count == 7 and store.path_for(f"{uri}train/a/same.jpg").read_bytes() == b"train-b"
    (data / "train" / "a" / "up").symlink_to(data / "train")
    with pytest.raises(DataError, match=r"train/a/up is a symlink loop"):
        stage_data(store, root, data, DATA_URI)
    (data / "train" / "a" / "up").unlink()
    (data / "train" / "a" / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    with pytest.raises(DataError, match=r"train/a/gone\.jpg is a dangling symlink"):
        stage_data(store, root, data, DATA_URI)


def test_a_data_set_needs_two_classes(tmp_path: Path) -> None:
    data = image_folder(tmp_path / "data", classes=("001.Affenpinscher",))
    with pytest.raises(DataError, match=r"at least two classes .* found 1: 001\.Affenpinscher"):
        stage_data(ObjectStore(tmp_path / "root"), tmp_path / "root", data, DATA_URI)
