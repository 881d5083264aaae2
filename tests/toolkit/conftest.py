"""The toolkit tests need AWS's container toolkits (the ``toolkits`` extra, which ``make test`` installs).

Without them the tests skip on a developer's machine, naming the install command; in CI (``CI`` set)
a missing toolkit is an error, so the contract is never silently untested there.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from tests.toolkit.jobs import make_source_archive

TOOLKIT_MODULES = (
    "sagemaker_training",
    "sagemaker_pytorch_container",
    "sagemaker_inference",
    "sagemaker_pytorch_serving_container",
    "ts",
)
INSTALL = "make .venv/bin/.installed (or: pip install --no-deps -e '.[toolkits]' as the Makefile does)"


def missing_toolkits() -> list[str]:
    return [name for name in TOOLKIT_MODULES if importlib.util.find_spec(name) is None]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = missing_toolkits()
    if not missing:
        return
    if os.environ.get("CI"):
        raise pytest.UsageError(f"CI runs the toolkit tests, but {', '.join(missing)} is not installed")
    skip = pytest.mark.skip(reason=f"{', '.join(missing)} not installed; {INSTALL}")
    for item in items:
        if "tests/toolkit/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(skip)


@pytest.fixture(scope="module")
def source_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``sourcedir.tar.gz`` of training_code/ (what ``sagemaker_submit_directory`` names)."""
    return make_source_archive(tmp_path_factory.mktemp("code") / "sourcedir.tar.gz", with_requirements=True)


@pytest.fixture(scope="module")
def quick_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same without ``requirements.txt``: the toolkit's pip run (~10 s) is proven once."""
    return make_source_archive(tmp_path_factory.mktemp("quick") / "sourcedir.tar.gz", with_requirements=False)
