"""Shared fixtures: one tiny synthetic dog-breed data set per test session, built once and reused.

Tests must not modify ``sample_dataset``; copy it first (``shutil.copytree``) when a test needs to.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.sample_data import write_sample_data

SAMPLE_CLASSES = 4
SAMPLE_PER_CLASS = 16  # 16 train, 4 valid, 4 test per breed
SAMPLE_SIDES = (48, 96)


@pytest.fixture(scope="session")
def sample_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-breed ImageFolder (train/valid/test) of 48-96 px JPEGs, clean (no bad files)."""
    root = tmp_path_factory.mktemp("sample_dataset")
    write_sample_data(root, classes=SAMPLE_CLASSES, per_class=SAMPLE_PER_CLASS, seed=0, sides=SAMPLE_SIDES)
    return root


PREPROCESSED_IMAGE_SIZE = 32


@pytest.fixture(scope="session")
def preprocessed_dataset(sample_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``sample_dataset`` after ``preprocess.py``: ``data/{train,valid,test}/`` and ``stats/`` at 32 px.

    These are the ``train``/``valid``/``test`` and ``stats`` channels a training or evaluation job gets.
    """
    from training_code import preprocess

    root = tmp_path_factory.mktemp("preprocessed_dataset")
    preprocess.run(sample_dataset, root / "data", root / "stats", PREPROCESSED_IMAGE_SIZE, num_workers=2)
    return root


@pytest.fixture(scope="session", autouse=True)
def answer_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Cached definitions and model lists go to a folder of this session, not the user's ~/.cache."""
    import os

    from pipeline.answer_cache import CACHE_ENV

    folder = tmp_path_factory.mktemp("answer_cache")
    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = previous
