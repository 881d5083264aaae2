"""``training_code/model_optimize.py``: every serving mode gives the eager answers, failures fall back."""

from __future__ import annotations

import logging
import shutil

import pytest
import torch
from torch import nn

from pipeline.cli.main import serve
from pipeline.serving.server import ServeOptions
from training_code import inference, model_optimize

IMAGE_SIZE = 16


class TinyNet(nn.Module):
    """Conv + batch norm + ReLU + pool + linear: the op mix of the real models, compiled in seconds."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1)
        )
        self.head = nn.Linear(8, classes)
        with torch.no_grad():
            self.features[1].running_mean.uniform_(-0.5, 0.5)
            self.features[1].running_var.uniform_(0.5, 2.0)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(pixels).flatten(1))


class ShapeDependent(TinyNet):
    """A forward whose answer depends on the batch size through Python, which tracing freezes."""

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return super().forward(pixels) * pixels.shape[0]


def classifier(network: nn.Module | None = None) -> inference.NormalizedClassifier:
    return inference.NormalizedClassifier(network or TinyNet(), [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]).eval()


def images(count: int, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, 3, IMAGE_SIZE, IMAGE_SIZE), dtype=torch.uint8, generator=generator)


def probabilities(module: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return module(batch)


@pytest.mark.parametrize("mode", ["onednn", "trace", "eager"])
def test_each_mode_serves_the_eager_answers_at_any_batch_size(mode: str) -> None:
    eager = classifier()
    module, used = model_optimize.optimize_classifier(classifier(), IMAGE_SIZE, mode)
    assert used == mode
    for count in (1, 2, 5):  # 2 and 5 were never seen by the warm-up
        batch = images(count, seed=count)
        assert torch.allclose(probabilities(module, batch), probabilities(eager, batch), atol=1e-5)


@pytest.mark.slow
def test_compile_serves_the_eager_answers_without_recompiling_for_other_batches() -> None:
    if shutil.which("c++") is None and shutil.which("g++") is None:
        pytest.skip("inductor needs a C++ compiler; compile mode falls back to onednn here")
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    eager = classifier()
    module, used = model_optimize.optimize_classifier(classifier(), IMAGE_SIZE, "compile")
    assert used == "compile"
    graphs = counters["stats"]["unique_graphs"]
    for count in (1, 3, 1, 2):
        batch = images(count, seed=count)
        assert torch.allclose(probabilities(module, batch), probabilities(eager, batch), atol=1e-5)
    assert counters["stats"]["unique_graphs"] == graphs, "a request batch triggered a recompile"


def test_a_failing_mode_falls_back_and_logs_why(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_compiler(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(torch, "compile", no_compiler)
    with caplog.at_level(logging.WARNING, logger=model_optimize.__name__):
        module, used = model_optimize.optimize_classifier(classifier(), IMAGE_SIZE, "compile")
    assert used == "onednn"
    assert "optimize=compile failed, serving onednn instead: no C++ compiler found" in caplog.text
    batch = images(2)
    assert torch.allclose(probabilities(module, batch), probabilities(classifier(), batch), atol=1e-5)


def test_a_module_tracing_gets_wrong_is_served_eager() -> None:
    module, used = model_optimize.optimize_classifier(classifier(ShapeDependent()), IMAGE_SIZE, "onednn")
    assert used == "eager"
    batch = images(3)
    expected = probabilities(classifier(ShapeDependent()), batch)
    assert torch.allclose(probabilities(module, batch), expected, atol=1e-6)


def test_an_unknown_mode_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"onednn, compile, trace, eager.*'jit'"):
        model_optimize.optimize_classifier(classifier(), IMAGE_SIZE, "jit")


def test_the_cli_offers_exactly_the_modes_and_the_default() -> None:
    """``dogpipe serve`` spells the modes out (importing torch for --help would be slow)."""
    option = next(param for param in serve.params if param.name == "optimize")
    assert tuple(option.type.choices) == model_optimize.OPTIMIZE_MODES
    assert option.default == ServeOptions().optimize == model_optimize.DEFAULT_OPTIMIZE
