"""Make a serving classifier fast before the first request, and prove it still gives the eager answers.

Modes, fastest first on a 2-core x86 CPU (``bench/endpoint_bench.py`` measures them side by side):

- ``onednn``: ``torch.jit.trace`` + ``freeze`` with TorchScript's oneDNN Graph fusion turned on, which
  fuses convolutions with their activations and adds. predict_fn (decode included, 2 threads) at 0.42x
  eager for mobilenet_v2 at 96 px and 0.67x for squeezenet1_1 at 224 px, ready in about a second. The
  default.
- ``trace``: ``jit.trace`` + ``freeze`` alone (folds batch norms, drops Python dispatch).
- ``compile``: ``torch.compile`` (inductor, ``freezing``, ``dynamic=False``) for single images, which
  are what an endpoint mostly sees; any other batch size goes to the ``onednn`` module, so a batch the
  warm-up did not see never waits for a multi-second recompile. The compile happens here, at load
  time (6-30 s on 2 cores with inductor's cache warm, 40-90 s cold), so ``/ping`` answers only once it
  is done. Slower than ``onednn`` on 2 cores: 0.79-0.85x eager for both models.
- ``eager``: the module as trained (``channels_last``).

Every optimised module is kept only if it gives the eager answers on fixed random images (one single
image and a batch of another size), so serving never trades correctness for speed. When a mode fails
(no C++ compiler for inductor, an op oneDNN cannot fuse, a mismatch) the next one in
:data:`FALLBACKS` is tried and the reason logged: the endpoint always comes up.

``onednn`` switches TorchScript's oneDNN fusion on for the whole process (``torch.jit`` has only a
global switch); graphs that are already optimised keep the plan they have.

Threads: oneDNN Graph partitions keep the intra-op thread count they were *built* under. Measured on 2
cores (squeezenet1_1, 224 px): built under 2 threads, a forward takes 7.4 ms and uses both cores even
when its caller allows one; built under 1 thread, 11.2 ms on one core, and giving it 2 threads later only
makes the second spin. So a server that runs one request alone and several side by side needs one build
of each: :func:`optimize_classifier` takes the thread count to build under.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

log = logging.getLogger(__name__)

OPTIMIZE_MODES: tuple[str, ...] = ("onednn", "compile", "trace", "eager")
#: What ``dogpipe serve`` and the SageMaker container (``DOGPIPE_OPTIMIZE`` unset) serve: the fastest
#: mode that is ready in about a second (bench/endpoint_bench.py, both default models).
DEFAULT_OPTIMIZE = "onednn"
#: The mode tried when one fails; eager cannot fail.
FALLBACKS: dict[str, str] = {"compile": "onednn", "onednn": "trace", "trace": "eager"}
#: Modes whose kernels keep the intra-op thread count they were built under (see the module docstring);
#: the others follow the caller's ``torch.get_num_threads()`` at every call.
THREAD_BOUND_MODES: frozenset[str] = frozenset({"onednn"})
#: Calls that let TorchScript's profiling executor record shapes and install its optimised plan.
PROFILING_RUNS = 3
RTOL, ATOL = 1e-3, 1e-5


class OptimizationError(RuntimeError):
    """An optimised module could not be built or disagrees with eager; the message says which."""


@dataclass(frozen=True)
class Probe:
    """Fixed random uint8 images to warm up and check an optimised module against the eager one."""

    single: torch.Tensor
    batch: torch.Tensor

    @classmethod
    def for_size(cls, image_size: int) -> Probe:
        generator = torch.Generator().manual_seed(0)

        def images(count: int) -> torch.Tensor:
            shape = (count, 3, image_size, image_size)
            return torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)

        return cls(single=images(1), batch=images(3))


class SingleImageCompiled(nn.Module):
    """The compiled graph for the one input it was compiled for (one contiguous image of the model's
    size), ``others`` for every other batch.

    The graph is compiled for one static shape and layout; routing here, not through torch.compile's
    guards, is what keeps an unexpected batch from triggering a multi-second recompile mid-request.
    """

    def __init__(self, compiled: nn.Module, others: nn.Module, shape: torch.Size) -> None:
        super().__init__()
        self.compiled = compiled
        self.others = others
        self.shape = shape

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape == self.shape and images.is_contiguous():
            return self.compiled(images)
        return self.others(images)


def _check_agrees(module: nn.Module, reference: nn.Module, images: torch.Tensor, mode: str) -> None:
    with torch.inference_mode():
        expected, got = reference(images), module(images)
    if not torch.allclose(got, expected, rtol=RTOL, atol=ATOL):
        difference = (got - expected).abs().max().item()
        raise OptimizationError(f"{mode} output differs from eager by up to {difference:.2e}")


def _trace(classifier: nn.Module, probe: Probe, *, fuse: bool) -> nn.Module:
    if fuse:
        torch.jit.enable_onednn_fusion(True)
    with torch.no_grad(), warnings.catch_warnings():
        # torch 2.9+ marks TorchScript deprecated; it is still the ahead-of-time optimisation that
        # pays most on CPU without torch.compile's warm-up.
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.freeze(torch.jit.trace(classifier, probe.single, check_trace=False))
    with torch.inference_mode():
        for images in (probe.single, probe.batch):  # both shapes the endpoint sees most get their plan
            for _ in range(PROFILING_RUNS):
                traced(images)
    return traced


def _compile(classifier: nn.Module, probe: Probe, others: nn.Module) -> nn.Module:
    compiled = torch.compile(classifier, dynamic=False, options={"freezing": True})
    with torch.inference_mode():
        for _ in range(2):  # the first call compiles; the second proves the cached graph is reused
            compiled(probe.single)
    return SingleImageCompiled(compiled, others, probe.single.shape)


def _build(classifier: nn.Module, probe: Probe, mode: str) -> tuple[nn.Module, str]:
    """The module for ``mode``, checked against eager; raises on failure (the caller falls back)."""
    if mode == "eager":
        return classifier, "eager"
    if mode == "compile":
        others, others_mode = optimize_for_probe(classifier, probe, FALLBACKS["compile"])
        module = _compile(classifier, probe, others)
        _check_agrees(module, classifier, probe.single, mode)
        return module, mode if others_mode == FALLBACKS["compile"] else f"{mode}+{others_mode}"
    module = _trace(classifier, probe, fuse=mode == "onednn")
    for images in (probe.single, probe.batch):
        _check_agrees(module, classifier, images, mode)
    return module, mode


def optimize_for_probe(classifier: nn.Module, probe: Probe, mode: str) -> tuple[nn.Module, str]:
    """:func:`optimize_classifier` with the check images given (the compile mode reuses them)."""
    try:
        return _build(classifier, probe, mode)
    except Exception as error:  # tracing/compiling raise many types; every one means "fall back"
        fallback = FALLBACKS[mode]
        log.warning("optimize=%s failed, serving %s instead: %s", mode, fallback, error)
        return optimize_for_probe(classifier, probe, fallback)


@contextmanager
def intra_op_threads(count: int | None) -> Iterator[None]:
    """Run the block under ``count`` torch intra-op threads (``None``: as they are), then restore."""
    previous = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def optimize_classifier(
    classifier: nn.Module, image_size: int, mode: str, *, threads: int | None = None
) -> tuple[nn.Module, str]:
    """``classifier`` (uint8 ``N×3×S×S`` in, probabilities out) prepared for serving as ``mode``, built
    under ``threads`` intra-op threads (default: torch's current count), which a ``THREAD_BOUND_MODES``
    module then keeps.

    Returns the module and the mode actually served (a fallback's name when ``mode`` failed; for
    ``compile``, ``compile+trace`` or ``compile+eager`` when the module for other batch sizes fell back).
    """
    if mode not in OPTIMIZE_MODES:
        raise ValueError(f"optimize mode must be one of {', '.join(OPTIMIZE_MODES)}, got {mode!r}")
    classifier = classifier.eval().to(memory_format=torch.channels_last)
    with intra_op_threads(threads):
        return optimize_for_probe(classifier, Probe.for_size(image_size), mode)
