"""The SageMaker Debugger (smdebug) hook of train.py: what it saves, where, and the pitfalls it avoids.

Configuration comes from the platform when it wrote ``debughookconfig.json`` (a SageMaker job with a
``DebugHookConfig``), else from train.py's hyperparameters, so local and tuning runs also leave a trace
that the rules in ``debug_rules.py`` can read with ``smdebug.trials.create_trial``.

Pitfalls handled here rather than in train.py:

* ``relu_output`` is filled by module *type*: the usual ``.*relu_output`` regex matches module names,
  and squeezenet's ReLUs are called ``features.0.1`` and mobilenet's are ``ReLU6`` (not an ``nn.ReLU``).
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
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from torch import nn

log = logging.getLogger(__name__)

Mode = Literal["train", "eval"]
DEFAULT_COLLECTIONS = ("losses", "gradients", "weights", "biases", "relu_output")
RELU_OUTPUT = "relu_output"
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
    """``collections`` as SageMaker passes it: ``"a,b"``, a JSON list string, or a list."""
    if isinstance(value, str):
        text = value.strip()
        items = json.loads(text) if text.startswith("[") else text.split(",")
    else:
        items = list(value)
    names = tuple(str(item).strip() for item in items if str(item).strip())
    if not names:
        raise DebuggerError("debugger collections is empty; name at least one (e.g. losses)")
    return names


def activation_modules(model: nn.Module) -> list[nn.Module]:
    """The modules whose outputs form ``relu_output``: ReLU-family layers, else other activations."""
    relus = [module for module in model.modules() if isinstance(module, RELU_TYPES)]
    if relus:
        return relus
    return [module for module in model.modules() if isinstance(module, OTHER_ACTIVATION_TYPES)]


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


def register_model(hook, model: nn.Module, criterion: nn.Module) -> None:
    """Attach the hook to ``model`` (forward outputs, weights, gradients) and ``criterion`` (losses)."""
    if RELU_OUTPUT in (hook.include_collections or []):
        relu_collection = hook.get_collection(RELU_OUTPUT)
        for module in activation_modules(model):
            relu_collection.add_module_tensors(module, inputs=False, outputs=True)
    hook.register_module(model)
    hook.register_loss(criterion)


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
) -> Debugger:
    """The hook for this run: from ``config_path`` when that file exists (the platform's
    ``debughookconfig.json``), else from ``settings``; a no-op :class:`Debugger` when disabled."""
    if not enabled:
        return Debugger(None)
    config_file = Path(config_path) if config_path else None
    if config_file is not None and config_file.is_file():
        log.info("Debugger hook configured from %s", config_file)
        hook = _hook_from_file(config_file)
    else:
        log.info("Debugger hook configured from hyperparameters, trace in %s", settings.out_dir)
        hook = _hook_from_settings(settings)
    register_model(hook, model, criterion)
    return Debugger(hook)
