"""The built definition is cached by the hash of what shapes it: a hit is byte-identical to a fresh
build, and any change to the config, the code, the role or the builder code misses."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import pipeline.definition.document
from pipeline.cli.main import cli
from pipeline.config import DEFAULT_CONFIG, load_config
from pipeline.definition.code import CODE_DIR, package_code
from pipeline.definition.document import build_definition, definition_cache_key

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """Each real build the CLI makes, in an empty cache."""
    monkeypatch.setenv("DOGPIPE_CACHE_DIR", str(tmp_path / "cache"))
    made: list[str] = []
    real = pipeline.definition.document.build_definition

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(pipeline.definition.document, "build_definition", counting)
    return made


def definition_of(config: Path) -> str:
    result = CliRunner().invoke(cli, ["definition", "--config", str(config)])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_cached_definition_is_byte_identical_to_a_fresh_build(builds: list[str]) -> None:
    first = definition_of(DEFAULT_CONFIG)
    second = definition_of(DEFAULT_CONFIG)
    assert len(builds) == 1  # the second answer came from the cache
    assert second == first == build_definition(load_config(DEFAULT_CONFIG))
    graph = CliRunner().invoke(cli, ["graph", "--config", str(DEFAULT_CONFIG)])
    assert graph.exit_code == 0 and len(builds) == 1 and "Preprocess" in graph.output


def test_a_config_change_misses_the_cache(builds: list[str], tmp_path: Path) -> None:
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump(raw))
    before = definition_of(config)
    raw["evaluation"]["accuracy_threshold"] = 0.4321
    config.write_text(yaml.safe_dump(raw))
    after = definition_of(config)
    assert len(builds) == 2 and before != after and "0.4321" in after and "0.4321" not in before


def test_code_role_and_builder_changes_make_new_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(DEFAULT_CONFIG)
    code = package_code()
    key = definition_cache_key(cfg, None, code)
    assert definition_cache_key(cfg, None, code) == key
    edited = tmp_path / "training_code"
    shutil.copytree(CODE_DIR, edited)
    (edited / "train.py").write_text((edited / "train.py").read_text() + "\n# edited\n")
    assert definition_cache_key(cfg, None, package_code(edited)) != key
    assert definition_cache_key(cfg, "arn:aws:iam::123456789012:role/other", code) != key
    assert definition_cache_key(cfg, None, code) == key


def test_the_key_covers_the_builder_modules_at_any_depth_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Editing a step builder or a module the build reaches deep down changes the key; editing a CLI or
    engine module (never imported by the build) does not."""
    cfg = load_config(DEFAULT_CONFIG)
    code = package_code()
    copy = tmp_path / "repo"
    for package in ("pipeline", "steps", "training_code"):
        shutil.copytree(REPO / package, copy / package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(pipeline.definition.document, "SOURCE_ROOT", copy)
    key = definition_cache_key(cfg, None, code)
    modules = pipeline.definition.document.builder_modules(copy)
    assert {"steps.train", "pipeline.definition.build", "pipeline.config.training"} <= set(modules)
    assert not any(name.startswith(("pipeline.cli", "pipeline.local", "pipeline.report")) for name in modules)

    def edit(relative: str) -> str:
        path = copy / relative
        path.write_text(path.read_text() + "\n# edited\n")
        return definition_cache_key(cfg, None, code)

    assert edit("pipeline/cli/models.py") == key
    assert edit("pipeline/local/engine.py") == key
    after_config = edit("pipeline/config/training.py")
    assert after_config != key
    assert edit("steps/train.py") != after_config


def test_an_unwritable_cache_is_skipped(
    builds: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    blocker = tmp_path / "a file"
    blocker.write_text("")
    monkeypatch.setenv("DOGPIPE_CACHE_DIR", str(blocker / "cache"))
    assert definition_of(DEFAULT_CONFIG) == definition_of(DEFAULT_CONFIG) and len(builds) == 2
