"""The container contract: SM_* variables win, /opt/ml defaults otherwise, bad values are named."""

from __future__ import annotations

import json

import pytest

from training_code import contract


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SM_MODEL_DIR", "SM_OUTPUT_DATA_DIR", "SM_CHANNEL_TRAIN", "SM_HOSTS", "SM_CURRENT_HOST"):
        monkeypatch.delenv(name, raising=False)
    for name in ("SM_NUM_GPUS", "SM_HPS"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_are_the_container_paths() -> None:
    assert contract.model_dir() == "/opt/ml/model"
    assert contract.output_data_dir() == "/opt/ml/output/data"
    assert contract.channel("train") == "/opt/ml/input/data/train"
    assert contract.hosts() == ["algo-1"]
    assert contract.current_host() == "algo-1"
    assert contract.num_gpus() == 0
    assert contract.hyperparameters_from_env() == {}
    assert contract.DEBUG_HOOK_CONFIG == "/opt/ml/input/config/debughookconfig.json"
    assert contract.processing_input("data") == "/opt/ml/processing/input/data"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("SM_MODEL_DIR", str(tmp_path / "m"))
    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(tmp_path / "t"))
    monkeypatch.setenv("SM_HOSTS", json.dumps(["algo-1", "algo-2"]))
    monkeypatch.setenv("SM_CURRENT_HOST", "algo-2")
    monkeypatch.setenv("SM_NUM_GPUS", "4")
    monkeypatch.setenv("SM_HPS", json.dumps({"lr": 0.01, "freeze": "features", "pretrained": False}))
    assert contract.model_dir() == str(tmp_path / "m")
    assert contract.channel("train") == str(tmp_path / "t")
    assert contract.channel("valid") == "/opt/ml/input/data/valid"
    assert contract.hosts() == ["algo-1", "algo-2"]
    assert contract.current_host() == "algo-2"
    assert contract.num_gpus() == 4
    hps = contract.hyperparameters_from_env()
    assert hps == {"lr": 0.01, "freeze": "features", "pretrained": False}
    assert contract.hyperparameters_as_argv(hps) == [
        "--lr",
        "0.01",
        "--freeze",
        "features",
        "--pretrained",
        "false",
    ]


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("SM_HPS", "{not json", "SM_HPS"),
        ("SM_HPS", "[1, 2]", "JSON object"),
        ("SM_HOSTS", "algo-1", "SM_HOSTS"),
    ],
)
def test_bad_environment_values_are_named(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, words: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=words):
        contract.hyperparameters_from_env() if name == "SM_HPS" else contract.hosts()


def test_bad_gpu_count_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SM_NUM_GPUS", "two")
    with pytest.raises(ValueError, match="SM_NUM_GPUS"):
        contract.num_gpus()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("True", True),
        ("1", True),
        ("false", False),
        ("False", False),
        ("0", False),
        (True, True),
        (0, False),
    ],
)
def test_str2bool(text, expected: bool) -> None:
    assert contract.str2bool(text) is expected


def test_str2bool_refuses_unknown_spellings() -> None:
    with pytest.raises(ValueError, match="maybe"):
        contract.str2bool("maybe")
