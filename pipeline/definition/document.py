"""``build_definition(cfg)``: the pipeline definition JSON, byte-identical for the same code and config.

The SDK's JSON already has stable content once code is content-addressed (``pipeline/definition/code.py``);
this module fixes the formatting (sorted keys, two-space indent, trailing newline) so the text itself is
stable and diffs well, and quiets the SDK's build-time chatter. ``cached_build_definition`` answers from
``pipeline.answer_cache`` when nothing that shapes the definition changed (``builder_modules``).
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.answer_cache import cached_text, digest, versions
from pipeline.config import PipelineConfig
from pipeline.definition.code import CodeArchive, package_code
from pipeline.definition.sdk import offline, skipping_unused_imports


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
    from pipeline.definition.build import get_pipeline

    with quiet_sdk(), offline(), skipping_unused_imports():
        pipeline = get_pipeline(cfg, role_arn=role_arn, code=code)
        raw = pipeline.definition()
    return canonical_json(json.loads(raw))


#: The repository the builder modules are read from (a test points it at an edited copy).
SOURCE_ROOT = Path(__file__).resolve().parents[2]
#: Where building starts: every module these import, at any depth and lazily or not, shapes a definition.
BUILD_ENTRIES = (
    "pipeline.definition.document",
    "pipeline.definition.build",
    "pipeline.definition.deploy_pipeline",
)
#: Our packages: imports of anything else (the SDK, botocore) are covered by ``BUILD_DISTRIBUTIONS``.
OWN_PACKAGES = ("pipeline", "steps", "training_code")
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


def _module_file(root: Path, module: str) -> Path | None:
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports_of(path: Path, module: str) -> set[str]:
    """Our modules that ``path`` imports (relative imports resolved; ``from p import m`` read as ``p.m``)."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            source = ".".join(part for part in (base, node.module or "") if part)
            found.add(source)
            found.update(f"{source}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in OWN_PACKAGES}


def builder_modules(root: Path) -> dict[str, Path]:
    """Every module of ours that building a definition can run, by following imports from
    ``BUILD_ENTRIES`` (with the packages that hold them): exactly the code the cache key must cover,
    however deep it sits, and nothing the CLI or the engines add beside it."""
    found: dict[str, Path] = {}
    pending = list(BUILD_ENTRIES)
    while pending:
        module = pending.pop()
        if module in found:
            continue
        path = _module_file(root, module)
        if path is None:
            continue  # a name imported from a module, not a module
        found[module] = path
        parts = module.split(".")
        pending += [".".join(parts[:end]) for end in range(1, len(parts))]  # the packages run first
        pending += sorted(_imports_of(path, module))
    return dict(sorted(found.items()))


def builder_sources_digest(root: Path | None = None) -> str:
    root = root or SOURCE_ROOT
    hasher = hashlib.sha256()
    for module, path in builder_modules(root).items():
        hasher.update(f"{module}\0".encode())
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
