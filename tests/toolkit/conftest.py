"""The toolkit tests need AWS's container toolkits (the ``toolkits`` extra, which ``make test`` installs).

Without them the tests skip on a developer's machine, naming the install command; in CI (``CI`` set)
a missing toolkit is an error, so the contract is never silently untested there.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

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
