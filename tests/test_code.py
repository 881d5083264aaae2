"""Content-addressed packaging of training_code/: same sources, same bytes, same URIs."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

from pipeline.config import LOCAL_CONFIG, load_config
from pipeline.definition.code import pack, package_code


def _write_tree(root: Path) -> None:
    (root / "pkg").mkdir(parents=True)
    (root / "train.py").write_text("print('train')\n")
    (root / "pkg" / "helper.py").write_text("X = 1\n")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"\x00compiled")
    (root / "stale.pyc").write_bytes(b"\x00")


def test_archive_is_deterministic_and_normalised(tmp_path: Path) -> None:
    _write_tree(tmp_path / "a")
    first = package_code(tmp_path / "a")
    (tmp_path / "a" / "train.py").touch()  # a new mtime must not change anything
    second = package_code(tmp_path / "a")
    assert first.data == second.data and first.sha256 == second.sha256

    assert gzip.decompress(first.data)  # valid gzip
    assert first.data[4:8] == b"\x00\x00\x00\x00", "gzip header mtime must be 0"
    with tarfile.open(fileobj=io.BytesIO(first.data)) as archive:
        members = archive.getmembers()
        assert [m.name for m in members] == ["pkg/helper.py", "train.py"]
        assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 for m in members)
        assert archive.extractfile("train.py").read() == b"print('train')\n"


def test_content_change_changes_hash_and_uris(tmp_path: Path) -> None:
    _write_tree(tmp_path / "a")
    before = package_code(tmp_path / "a")
    (tmp_path / "a" / "pkg" / "helper.py").write_text("X = 2\n")
    after = package_code(tmp_path / "a")
    assert before.sha256 != after.sha256
    cfg = load_config(LOCAL_CONFIG)
    assert after.sourcedir_uri(cfg) == f"{cfg.project.s3_root}/code/{after.sha256}/sourcedir.tar.gz"
    assert after.source_prefix_uri(cfg) == f"{cfg.project.s3_root}/code/{after.sha256}/source"
    plan = after.staging_plan(cfg)
    assert plan[after.sourcedir_uri(cfg)] == after.data
    assert plan[f"{after.source_prefix_uri(cfg)}/pkg/helper.py"] == b"X = 2\n"
    assert len(plan) == 3


def test_pack_order_does_not_depend_on_insertion() -> None:
    assert pack({"b": b"2", "a": b"1"}) == pack({"a": b"1", "b": b"2"})


def test_missing_or_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        package_code(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty"):
        package_code(tmp_path / "empty")


def test_shipped_training_code_packs() -> None:
    code = package_code()
    assert "train.py" in code.files and not any("__pycache__" in name for name in code.files)
