"""Config loading: shipped configs are valid; mistakes name their key path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.config import DEFAULT_CONFIG, LOCAL_CONFIG, ConfigError, load_config, parse_config


@pytest.mark.parametrize("path", [DEFAULT_CONFIG, LOCAL_CONFIG], ids=["pipeline", "local"])
def test_shipped_configs_load(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.project.s3_root.startswith("s3://")
    assert set(cfg.debugger.rules) == {
        "vanishing_gradient",
        "overfit",
        "overtraining",
        "poor_weight_initialization",
        "loss_not_decreasing",
    }


def _shipped() -> dict:
    return yaml.safe_load(DEFAULT_CONFIG.read_text())


def test_unknown_key_names_its_path() -> None:
    raw = _shipped()
    raw["training"]["hyperparameters"]["learning_rate"] = 0.1
    with pytest.raises(ConfigError, match=r"training -> hyperparameters -> learning_rate: unknown key"):
        parse_config(raw)


def test_misspelt_section_is_rejected() -> None:
    raw = _shipped()
    raw["traning"] = raw.pop("training")
    with pytest.raises(ConfigError, match=r"traning: unknown key"):
        parse_config(raw)


@pytest.mark.parametrize(
    ("section", "key", "value", "path"),
    [
        ("training", "hyperparameters", {"lr": -1}, "training -> hyperparameters -> lr"),
        ("tuning", "max_parallel_jobs", 99, "tuning"),
        ("data", "s3_uri", "/local/folder", "data -> s3_uri"),
        ("evaluation", "accuracy_threshold", 1.5, "evaluation -> accuracy_threshold"),
    ],
)
def test_bad_values_name_their_path(section: str, key: str, value: object, path: str) -> None:
    raw = _shipped()
    current = raw[section].get(key)
    raw[section][key] = (
        {**current, **value} if isinstance(current, dict) and isinstance(value, dict) else value
    )
    with pytest.raises(ConfigError) as error:
        parse_config(raw, "bad.yaml")
    assert path in str(error.value) and "bad.yaml" in str(error.value)


def test_unreadable_and_non_mapping_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(tmp_path / "list.yaml")
    (tmp_path / "image.yaml").write_bytes(b"\xff\xd8\xff\xe0 a JPEG saved as YAML")
    with pytest.raises(ConfigError, match=r"image\.yaml: not a YAML text file"):
        load_config(tmp_path / "image.yaml")


def test_relative_local_root_is_resolved_at_load_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jobs run in their own folders, so a relative store root must be pinned to where the user ran."""
    monkeypatch.chdir(tmp_path)
    cfg = load_config(LOCAL_CONFIG)
    assert cfg.local.root == tmp_path.resolve() / ".dogpipe"
