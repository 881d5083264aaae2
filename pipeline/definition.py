"""``build_definition(cfg)``: the pipeline definition JSON, byte-identical for the same code and config.

The SDK's JSON already has stable content once code is content-addressed (``pipeline/code.py``); this
module fixes the formatting (sorted keys, two-space indent, trailing newline) so the text itself is
stable and diffs well, and quiets the SDK's build-time chatter. ``cached_build_definition`` answers
from ``pipeline.answer_cache`` when nothing that shapes the definition changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.answer_cache import cached_text, digest, versions
from pipeline.code import CodeArchive, package_code
from pipeline.config import PipelineConfig
from pipeline.sdk import offline, skipping_unused_imports


@contextmanager
def quiet_sdk() -> Iterator[None]:
    """Silence what the SDK prints while building (no-wait warnings, popped job names, config probing)."""
    names = ["sagemaker", "sagemaker.config"]  # the config logger has its own handler and level
    loggers = [logging.getLogger(name) for name in names]
    previous = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, previous, strict=True):
            logger.setLevel(level)


def canonical_json(definition: dict) -> str:
    return json.dumps(definition, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def build_definition(
    cfg: PipelineConfig, role_arn: str | None = None, code: CodeArchive | None = None
) -> str:
    """Build the pipeline and return its definition as canonical JSON text."""
    from pipeline.build import get_pipeline

    with quiet_sdk(), offline(), skipping_unused_imports():
        pipeline = get_pipeline(cfg, role_arn=role_arn, code=code)
        raw = pipeline.definition()
    return canonical_json(json.loads(raw))


#: Where the code that turns a config into a definition lives (top-level modules only: the engine,
#: serving and report subpackages build no definition). Editing any of it is a new cache key.
BUILDER_FOLDERS = (Path(__file__).resolve().parent, Path(__file__).resolve().parent.parent / "steps")
#: Distributions whose code runs while building (the SDK's parts; botocore resolves image URIs).
BUILD_DISTRIBUTIONS = (
    "dogpipe",
    "sagemaker",
    "sagemaker-core",
    "sagemaker-train",
    "sagemaker-mlops",
    "sagemaker-serve",
    "botocore",
)


def builder_sources_digest() -> str:
    hasher = hashlib.sha256()
    for folder in BUILDER_FOLDERS:
        for path in sorted(folder.glob("*.py")):
            hasher.update(f"{folder.name}/{path.name}\0".encode())
            hasher.update(path.read_bytes())
    return hasher.hexdigest()


def definition_cache_key(cfg: PipelineConfig, role_arn: str | None, code: CodeArchive) -> str:
    """The hash of everything that shapes the definition: config, role, training code, the builder
    code, and the versions of dogpipe and the SDK."""
    return digest(
        {
            "config": cfg.model_dump(mode="json"),
            "role_arn": role_arn,
            "code": code.sha256,
            "builders": builder_sources_digest(),
            "versions": versions(*BUILD_DISTRIBUTIONS),
        }
    )


def cached_build_definition(
    cfg: PipelineConfig, role_arn: str | None = None, code: CodeArchive | None = None
) -> str:
    """``build_definition``'s text, from the cache when the same inputs were built before (no SDK
    import then: well under a second instead of several)."""
    code = code or package_code()
    key = definition_cache_key(cfg, role_arn, code)
    return cached_text("definitions", key, lambda: build_definition(cfg, role_arn=role_arn, code=code))
