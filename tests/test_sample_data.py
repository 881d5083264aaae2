"""The synthetic data set: deterministic bytes, the dogImages layout, and the optional broken files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.sample_data import MARKER, breed_folder, write_sample_data

SMALL = {"classes": 2, "per_class": 4, "sides": (40, 64)}


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_layout_counts_and_sizes(tmp_path: Path) -> None:
    summary = write_sample_data(tmp_path / "d", classes=3, per_class=8, seed=1, sides=(50, 70))
    root = tmp_path / "d"
    for split, expected in {"train": 8, "valid": 2, "test": 2}.items():
        folders = sorted(path.name for path in (root / split).iterdir())
        assert folders == ["001.Affenpinscher", "002.Afghan_hound", "003.Airedale_terrier"]
        for folder in folders:
            files = sorted((root / split / folder).iterdir())
            assert len(files) == expected
            for file in files:
                with Image.open(file) as image:
                    assert image.format == "JPEG" and image.mode == "RGB"
                    assert all(50 <= side <= 70 for side in image.size)
    assert "3 breeds" in summary and "24 train" in summary and "6 valid" in summary


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    write_sample_data(tmp_path / "a", seed=3, **SMALL)
    write_sample_data(tmp_path / "b", seed=3, **SMALL)
    write_sample_data(tmp_path / "c", seed=4, **SMALL)
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    assert tree_digest(tmp_path / "a") != tree_digest(tmp_path / "c")


def colour_histogram(path: Path) -> np.ndarray:
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.int64) // 64
    bins = np.bincount((pixels[..., 0] * 16 + pixels[..., 1] * 4 + pixels[..., 2]).ravel(), minlength=64)
    return bins / bins.sum()


def test_breeds_are_told_apart_by_a_nearest_centroid_on_colour(sample_dataset: Path) -> None:
    """The breeds are learnable: even a colour-histogram nearest-centroid classifier separates them."""
    folders = sorted(path.name for path in (sample_dataset / "train").iterdir())
    centroids = np.stack(
        [
            np.mean([colour_histogram(p) for p in (sample_dataset / "train" / f).iterdir()], axis=0)
            for f in folders
        ]
    )
    hits = total = 0
    for label, folder in enumerate(folders):
        for path in (sample_dataset / "test" / folder).iterdir():
            distances = np.abs(centroids - colour_histogram(path)).sum(axis=1)
            hits += int(np.argmin(distances) == label)
            total += 1
    assert total == 16
    assert hits / total >= 0.75


def test_bad_files_are_written(tmp_path: Path) -> None:
    summary = write_sample_data(tmp_path / "d", with_bad_files=True, **SMALL)
    train = tmp_path / "d" / "train"
    assert (train / breed_folder(0) / "bad_zero_byte.jpg").stat().st_size == 0
    assert (train / breed_folder(0) / "odd_greyscale.png").exists()  # 2 classes: files wrap around
    assert Image.open(train / breed_folder(1) / "odd_cmyk.jpg").mode == "CMYK"
    assert Image.open(train / breed_folder(1) / "odd_rgba.png").mode == "RGBA"
    assert not (train / breed_folder(0) / "bad_not_an_image.jpg").read_bytes().startswith(b"\xff\xd8")
    with pytest.raises(OSError):
        Image.open(train / breed_folder(1) / "bad_truncated.jpg").load()
    assert "6 odd files" in summary


def test_refuses_a_foreign_non_empty_folder_and_keeps_its_files(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not empty"):
        write_sample_data(tmp_path, **SMALL)
    assert (tmp_path / "mine.txt").read_text() == "precious"
    assert not (tmp_path / "train").exists()


def test_rerun_replaces_its_own_sample(tmp_path: Path) -> None:
    write_sample_data(tmp_path, classes=3, per_class=4, sides=(40, 64))
    write_sample_data(tmp_path, **SMALL)
    assert (tmp_path / MARKER).is_file()
    assert len(list((tmp_path / "train").iterdir())) == 2


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="classes"):
        write_sample_data(tmp_path, classes=1)
    with pytest.raises(ValueError, match="per_class"):
        write_sample_data(tmp_path, per_class=0)
