"""The SageMaker Debugger (smdebug) hook of train.py: what it saves, where, and the pitfalls it avoids.

Configuration comes from the platform when it wrote ``debughookconfig.json`` (a SageMaker job with a
``DebugHookConfig``), else from train.py's hyperparameters, so local and tuning runs also leave a trace
that the rules in ``debug_rules.py`` can read with ``smdebug.trials.create_trial``.

Pitfalls handled here rather than in train.py:

* ``relu_output`` is filled by module *type*: the usual ``.*relu_output`` regex matches module names,
  and squeezenet's ReLUs are called ``features.0.1`` and mobilenet's are ``ReLU6`` (not an ``nn.ReLU``).
* ``relu_input`` (what AWS's PoorWeightInitialization reads, regex ``.*relu_input``) is captured by a
  forward *pre*-hook and named ``<module>_relu_input``: torchvision's ReLUs run in place, so smdebug's own
  input capture (after the forward) would record the output. Only at save steps (one clone per ReLU).
  It holds only the activations before the head of a network this run initialised (none when the
  backbone is pretrained): see :func:`initialised_activations`.
* Frozen parameters have no gradient; registering a gradient hook on them raises "cannot register a
  hook on a tensor that doesn't require gradient" (aws/sagemaker-python-sdk#1401, transfer learning;
  smdebug < 0.7.2 and the containers' zero-code-change hook). smdebug >= 0.7.2 skips parameters that do
  not require a gradient *at registration time*, so the hook is registered only after ``build_model``
  froze the backbone: frozen layers then contribute weights but no gradients, and a parameter
  unfrozen later would silently have no gradient trace. requirements.txt pins smdebug 1.0.34.
* smdebug silently disables itself after an internal error when it runs its default configuration;
  :meth:`Debugger.close` reports that, so a run never ends with a trace that quietly stopped.
* bf16 tensors crash the hook, so train.py never autocasts to bf16 while the hook is on.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from torch import nn

if __package__:  # imported as training_code.debugger_hook (tests, the local engine's in-process runs)
    from .hyperparameters import HYPERPARAMETERS, parse_list
else:  # inside the training container: the source dir is the working directory
    from hyperparameters import HYPERPARAMETERS, parse_list  # type: ignore[no-redef]

log = logging.getLogger(__name__)

Mode = Literal["train", "eval"]
# What the five rules of debug_rules.py read, plus weights/biases (one copy of the parameters per
# save). ``relu_output`` (what AWS's DeadRelu rule reads; none of dogpipe's) is opt-in: at batch 32 and
# 224 px it is hundreds of MB per saved step and most of the hook's cost (BENCHMARKS.md, train).
DEFAULT_COLLECTIONS: tuple[str, ...] = HYPERPARAMETERS["collections"].default
RELU_OUTPUT = "relu_output"
RELU_INPUT = "relu_input"
# The ReLU family, whose outputs the PoorWeightInitialization rule compares across layers.
RELU_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.RReLU,
    nn.ELU,
    nn.CELU,
    nn.SELU,
)
# Used only when a network has no ReLU-family layer at all (efficientnet, mobilenet_v3's SiLU/Hardswish),
# so the collection is never empty.
OTHER_ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (nn.SiLU, nn.Hardswish, nn.GELU, nn.Mish)


class DebuggerError(RuntimeError):
    """The hook cannot be configured as asked."""


@dataclass(frozen=True)
class HookSettings:
    """The hook's settings when no platform config file exists (train.py hyperparameters)."""

    out_dir: Path
    save_interval: int = 100
    eval_save_interval: int = 10
    collections: tuple[str, ...] = DEFAULT_COLLECTIONS


def parse_collections(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``collections`` as SageMaker passes it: ``"a,b"``, a JSON list string, Python's repr of a list
    (what the training toolkit makes of a JSON list), or a list."""
    names = parse_list(value)
    if not names:
        raise DebuggerError("debugger collections is empty; name at least one (e.g. losses)")
    return names


def activation_modules(model: nn.Module) -> list[nn.Module]:
    """The modules whose outputs form ``relu_output``: ReLU-family layers, else other activations."""
    relus = [module for module in model.modules() if isinstance(module, RELU_TYPES)]
    if relus:
        return relus
    return [module for module in model.modules() if isinstance(module, OTHER_ACTIVATION_TYPES)]


def initialised_activations(model: nn.Module, *, pretrained: bool) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of the activation layers whose inputs show how this run's initialisation
    propagates the signal: those before the classification head when the network starts from scratch;
    none when its backbone is pretrained (the variances then reflect what the layers learnt, and dogpipe's
    new heads hold no activation). An activation on the head's output (squeezenet's ReLU on the logits)
    is left out: the head is initialised small on purpose (std 0.01), so near-uniform first predictions
    would read as a collapsed signal."""
    if pretrained:
        return []
    try:  # package layout (tests, local engine) or side by side in the container
        from .models import find_head
    except ImportError:  # pragma: no cover - container layout
        from models import find_head  # type: ignore[no-redef]

    _, head = find_head(model)
    wanted = {id(module) for module in activation_modules(model)}
    chosen = []
    for name, module in model.named_modules():
        if module is head:
            break
        if id(module) in wanted:
            chosen.append((name, module))
    return chosen


class _ReluInputSaver:
    """Forward pre-hook saving an activation's input before an in-place ReLU overwrites it, only at the
    steps where the hook saves the ``relu_input`` collection."""

    def __init__(self, hook, tensor_name: str) -> None:
        self.hook = hook
        self.tensor_name = tensor_name

    def __call__(self, module: nn.Module, inputs: tuple) -> None:
        # smdebug caches this set per step; the top module's pre-hook has already advanced the step.
        if any(c.name == RELU_INPUT for c in self.hook._get_collections_to_save_for_step()):
            self.hook.save_tensor(self.tensor_name, inputs[0].detach().clone(), RELU_INPUT)


def _refuse_finished_trace(out_dir: str | os.PathLike[str]) -> None:
    """smdebug refuses to write into a finished trace; say so before training, naming the folder."""
    from smdebug.core.access_layer.utils import has_training_ended

    if os.path.isdir(out_dir) and has_training_ended(str(out_dir)):
        raise DebuggerError(
            f"smdebug trace folder {out_dir} already holds a finished run; move it away or choose "
            "another output folder (--output_data_dir) so the earlier trace is not lost"
        )


def _hook_from_settings(settings: HookSettings):  # -> smdebug.pytorch.Hook
    import smdebug.pytorch as smd

    _refuse_finished_trace(settings.out_dir)
    save_config = smd.SaveConfig(
        mode_save_configs={
            smd.modes.TRAIN: smd.SaveConfigMode(save_interval=settings.save_interval),
            smd.modes.EVAL: smd.SaveConfigMode(save_interval=settings.eval_save_interval),
            smd.modes.PREDICT: smd.SaveConfigMode(save_interval=settings.eval_save_interval),
            smd.modes.GLOBAL: smd.SaveConfigMode(save_interval=settings.save_interval),
        }
    )
    return smd.Hook(
        out_dir=str(settings.out_dir),
        save_config=save_config,
        include_collections=list(settings.collections),
    )


def _hook_from_file(config_path: Path):  # -> smdebug.pytorch.Hook
    import smdebug.pytorch as smd

    try:
        local_path = json.loads(config_path.read_text()).get("LocalPath")
    except (OSError, json.JSONDecodeError) as error:
        raise DebuggerError(f"{config_path}: unreadable Debugger hook config: {error}") from None
    if local_path:
        _refuse_finished_trace(local_path)
    return smd.Hook.create_from_json_file(str(config_path))


def register_model(hook, model: nn.Module, criterion: nn.Module, *, pretrained: bool = False) -> None:
    """Attach the hook to ``model`` (forward outputs, weights, gradients) and ``criterion`` (losses).
    ``pretrained``: the backbone's weights were loaded, so ``relu_input`` skips its activations."""
    collections = hook.include_collections or []
    if RELU_OUTPUT in collections:
        relu_collection = hook.get_collection(RELU_OUTPUT)
        for module in activation_modules(model):
            relu_collection.add_module_tensors(module, inputs=False, outputs=True)
    if RELU_INPUT in collections:
        collection = hook.get_collection(RELU_INPUT)
        if not collection.include_regex:  # smdebug refuses an empty collection; AWS's config uses this
            collection.include(".*relu_input")
        for name, module in initialised_activations(model, pretrained=pretrained):
            module.register_forward_pre_hook(_ReluInputSaver(hook, f"{name}_relu_input"))
    _skip_frozen_parameters(hook, model, collections)
    hook.register_module(model)
    hook.register_loss(criterion)


#: smdebug's parameter collections and the name ending of the parameters each holds.
PARAMETER_COLLECTIONS = {"weights": "weight", "biases": "bias"}
NO_TENSOR = "^$"  # a pattern no tensor name matches: a collection that saves nothing, but is not empty


def _skip_frozen_parameters(hook, model: nn.Module, collections: list[str]) -> None:
    """Save only the parameters this run trains in ``weights`` and ``biases``.

    A frozen backbone's parameters are the pretrained file's (its sha256 is in the lineage), identical at
    every save; written anyway, they were most of what a save step wrote (mobilenet_v2's 2.2M frozen
    against 0.17M trained values) and cost the demo's Train 17% of its steady epochs at save interval 10
    (``bench/train_phases_bench.py``). No rule reads them. smdebug names a parameter
    ``<model class>_<parameter name>``.
    """
    parameters = list(model.named_parameters())
    if all(parameter.requires_grad for _, parameter in parameters):
        return
    prefix = model._get_name() + "_"
    for collection_name, ending in PARAMETER_COLLECTIONS.items():
        if collection_name not in collections:
            continue
        trained = [
            prefix + name
            for name, parameter in parameters
            if parameter.requires_grad and name.endswith(ending)
        ]
        patterns = ["^" + re.escape(name) + "$" for name in trained] or [NO_TENSOR]
        hook.get_collection(collection_name).include_regex = patterns


class Debugger:
    """The run's hook, or a no-op stand-in when Debugger is off or this is not rank 0."""

    def __init__(self, hook=None) -> None:
        self.hook = hook

    @property
    def enabled(self) -> bool:
        return self.hook is not None

    @property
    def out_dir(self) -> str | None:
        return self.hook.out_dir if self.hook is not None else None

    def set_mode(self, mode: Mode) -> None:
        """Tag the following steps TRAIN or EVAL, so the rules can compare the two losses."""
        if self.hook is None:
            return
        import smdebug.pytorch as smd

        self.hook.set_mode(smd.modes.TRAIN if mode == "train" else smd.modes.EVAL)

    def save_scalar(self, name: str, value: float) -> None:
        if self.hook is not None:
            self.hook.save_scalar(name, value, sm_metric=False)

    def close(self) -> None:
        """Flush and mark the trace finished; warn if smdebug disabled itself along the way."""
        if self.hook is None:
            return
        from smdebug.core.error_handling_agent import ErrorHandlingAgent

        self.hook.close()
        if ErrorHandlingAgent.get_error_handling_agent().disable_smdebug:
            log.error(
                "smdebug disabled itself after an internal error; the trace in %s is incomplete", self.out_dir
            )


def create_debugger(
    model: nn.Module,
    criterion: nn.Module,
    *,
    enabled: bool,
    config_path: str | os.PathLike[str] | None,
    settings: HookSettings,
    pretrained: bool = False,
) -> Debugger:
    """The hook for this run: from ``config_path`` when that file exists (the platform's
    ``debughookconfig.json``), else from ``settings``; a no-op :class:`Debugger` when disabled.
    ``pretrained``: the model's backbone weights were loaded rather than initialised by this run."""
    if not enabled:
        return Debugger(None)
    config_file = Path(config_path) if config_path else None
    if config_file is not None and config_file.is_file():
        log.info("Debugger hook configured from %s", config_file)
        hook = _hook_from_file(config_file)
    else:
        log.info("Debugger hook configured from hyperparameters, trace in %s", settings.out_dir)
        hook = _hook_from_settings(settings)
    register_model(hook, model, criterion, pretrained=pretrained)
    return Debugger(hook)
