"""``build_definition(cfg)``: the pipeline definition JSON, byte-identical for the same code and config.

The SDK's JSON already has stable content once code is content-addressed (``pipeline/code.py``); this
module fixes the formatting (sorted keys, two-space indent, trailing newline) so the text itself is
stable and diffs well, and quiets the SDK's build-time chatter.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from pipeline.code import CodeArchive
from pipeline.config import PipelineConfig
from pipeline.sdk import offline


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

    with quiet_sdk(), offline():
        pipeline = get_pipeline(cfg, role_arn=role_arn, code=code)
        raw = pipeline.definition()
    return canonical_json(json.loads(raw))
