"""The hyperparameters of ``train.py``: the one declaration every other place derives from.

``train.py``'s parser, the config model (``pipeline/config/``), the step builders
(``steps/trainer.py``) and the table in ``training_code/README.md`` are all built from
:data:`HYPERPARAMETERS`, so a name, type, default or range is written here only. Renaming one here
renames it everywhere; a name that reaches ``train.py`` without being declared fails the job at start.

Values arrive in three spellings, and each parser accepts all of them:

* the step builders' strings (``"true"``, ``"0.001"``, ``"losses,gradients"``);
* ``SM_HPS`` decoded from JSON (``true``, ``16``, ``["losses"]``), turned back into flags by
  ``contract.hyperparameters_as_argv``;
* what AWS's sagemaker-training toolkit passes: it ``json.loads`` each value and passes ``str(value)``,
  so ``true`` arrives as ``True``, a JSON list as ``['a', 'b']`` (Python's repr) and ``null`` as ``None``.

Nothing here imports torch or pydantic: the containers read it before anything heavy, and the pipeline
side imports it to build its config model (``pipeline`` may import ``training_code``, never the reverse).
"""

from __future__ import annotations

import ast
import json
import operator
import re
from dataclasses import dataclass
from typing import Any

if __package__:  # imported as training_code.hyperparameters (the pipeline side, tests)
    from .contract import str2bool
else:  # inside a container: the source dir is the working directory
    from contract import str2bool  # type: ignore[no-redef]

#: Flags that SageMaker and its toolkits may add beside the hyperparameters; ``train.py`` ignores them.
RESERVED_PREFIXES = ("sagemaker_", "_tuning_objective_metric")
_NONE_SPELLINGS = frozenset({"", "none", "null"})


class HyperparameterError(ValueError):
    """A value that is not of its hyperparameter's type or outside its range."""


def parse_list(value: Any) -> tuple[str, ...]:
    """A list of names: ``a,b``, a JSON list ``["a","b"]`` or Python's repr ``['a', 'b']``."""
    if isinstance(value, (list, tuple)):
        items = list(value)
    else:
        text = str(value).strip()
        if text.startswith("["):
            try:
                items = json.loads(text)
            except json.JSONDecodeError:
                try:
                    items = ast.literal_eval(text)
                except (ValueError, SyntaxError):
                    raise HyperparameterError(f"not a list: {value!r}") from None
            if not isinstance(items, list):
                raise HyperparameterError(f"not a list: {value!r}")
        else:
            items = text.split(",")
    return tuple(str(item).strip() for item in items if str(item).strip())


@dataclass(frozen=True)
class Hyperparameter:
    """One hyperparameter of ``train.py``.

    ``kind`` is ``int``, ``float``, ``str``, ``bool`` or ``list`` (of names); ``optional`` admits
    ``none`` (and, with ``zero_is_none``, 0). ``config`` is the key path in the pipeline YAML whose
    value the step builders pass (``training.hyperparameters.lr``).
    """

    name: str
    kind: str
    default: Any
    help: str
    config: str
    ge: float | None = None
    gt: float | None = None
    lt: float | None = None
    le: float | None = None
    choices: tuple[str, ...] | None = None
    pattern: str | None = None
    optional: bool = False
    zero_is_none: bool = False

    @property
    def flag(self) -> str:
        return f"--{self.name}"

    def parse(self, value: Any) -> Any:
        """The typed value of ``value`` in any of the spellings above; raises HyperparameterError."""
        text = str(value).strip()
        if self.optional and (value is None or text.lower() in _NONE_SPELLINGS):
            return None
        if self.kind == "bool":
            try:
                return str2bool(value)
            except ValueError as error:
                raise HyperparameterError(str(error)) from None
        if self.kind == "list":
            return parse_list(value)
        if self.kind == "str":
            return self._checked_text(text)
        number = self._number(text)
        if self.zero_is_none and number == 0:
            return None
        return self._in_range(number)

    def _checked_text(self, text: str) -> str:
        if self.pattern and not re.fullmatch(self.pattern, text):
            raise HyperparameterError(f"{text!r} does not match {self.pattern}")
        return text

    def _number(self, text: str) -> int | float:
        try:
            return int(text) if self.kind == "int" else float(text)
        except ValueError:
            kind = "an integer" if self.kind == "int" else "a number"
            raise HyperparameterError(f"not {kind}: {text!r}") from None

    def _bounds(self) -> list[tuple[str, float, Any]]:
        """(sign, bound, comparison) of each bound that is set."""
        candidates = (("≥", self.ge, operator.ge), (">", self.gt, operator.gt))
        candidates += (("≤", self.le, operator.le), ("<", self.lt, operator.lt))
        return [(sign, bound, compare) for sign, bound, compare in candidates if bound is not None]

    def _in_range(self, number: int | float) -> int | float:
        for sign, bound, compare in self._bounds():
            if not compare(number, bound):
                raise HyperparameterError(f"must be {sign} {bound:g}, got {number:g}")
        return number

    def range_text(self) -> str:
        """``≥ 1``, ``> 0, < 10``, or the choices, as the README shows them."""
        if self.choices:
            return " / ".join(self.choices)
        parts = [f"{sign} {bound:g}" for sign, bound, _ in self._bounds()]
        if self.pattern:
            parts.append(f"`{self.pattern}`")
        return ", ".join(parts)


_HPS, _HOOK = "training.hyperparameters.", "debugger.hook_config."
_COLLECTIONS = ("losses", "gradients", "weights", "biases", "relu_input")
# fmt: off
_DECLARED = (
    Hyperparameter("epochs", "int", 5, "Most epochs to train.", _HPS + "epochs", ge=1),
    Hyperparameter("lr", "float", 1e-3, "Learning rate (0 freezes the weights).", _HPS + "lr", ge=0, lt=10),
    Hyperparameter("batch_size", "int", 32, "Images per batch and process.", _HPS + "batch_size", ge=1),
    Hyperparameter("optimizer", "str", "adamw", "Optimizer.", _HPS + "optimizer",
                   choices=("sgd", "adam", "adamw")),
    Hyperparameter("weight_decay", "float", 0.0, "Weight decay of the optimizer.", _HPS + "weight_decay",
                   ge=0),
    Hyperparameter("patience", "int", 3, "Early stopping: epochs without valid-loss improvement.",
                   _HPS + "patience", ge=1),
    Hyperparameter("num_workers", "int", 2, "Decoding threads of the data loader.", _HPS + "num_workers",
                   ge=0),
    Hyperparameter("cache_mb", "int", 2048,
                   "Memory (MiB per process) for decoded images kept across epochs; 0 decodes every epoch.",
                   _HPS + "cache_mb", ge=0),
    Hyperparameter("seed", "int", 0, "Seed of initialisation, shuffling and augmentation.", _HPS + "seed"),
    Hyperparameter("max_steps_per_epoch", "int", None, "Caps an epoch, for quick runs (none or 0: no cap).",
                   _HPS + "max_steps_per_epoch", ge=1, optional=True, zero_is_none=True),
    Hyperparameter("architecture", "str", "squeezenet1_1", "torchvision classification model.",
                   "model.architecture"),
    Hyperparameter("pretrained", "bool", True, "Start from the architecture's pretrained weights.",
                   "model.pretrained"),
    Hyperparameter("weights_path", "str", None,
                   "Local weights file (state dict); 'package:<module>/<file>' names a file in an installed "
                   "Python package, e.g. the offline MobileNetV2 weights; read only when pretrained.",
                   "model.weights_path", optional=True),
    Hyperparameter("weights_sha256", "str", None, "Expected SHA-256 (prefix) of the weights file.",
                   "model.weights_sha256", pattern=r"^[0-9a-f]{8,64}$", optional=True),
    Hyperparameter("freeze", "str", "none", "Freeze the backbone ('features') or nothing.", "model.freeze",
                   choices=("none", "features")),
    Hyperparameter("image_size", "int", 224, "Training resolution in pixels.", "data.image_size",
                   ge=16, le=1024),
    Hyperparameter("debug_hook", "bool", True, "Record the smdebug trace the Debugger rules read.",
                   "debugger.hook"),
    Hyperparameter("save_interval", "int", 100, "Debugger hook: save every N training steps.",
                   _HOOK + "save_interval", ge=1),
    Hyperparameter("eval_save_interval", "int", 10, "Debugger hook: save every N evaluation steps.",
                   _HOOK + "eval_save_interval", ge=1),
    Hyperparameter("collections", "list", _COLLECTIONS,
                   "Debugger collections to save (what the rules read; 'relu_output' adds activations, "
                   "hundreds of MB per saved step at 224 px).", _HOOK + "collections"),
    Hyperparameter("profiler", "bool", True, "Record per-step timings and system metrics.",
                   "debugger.profiler"),
    Hyperparameter("profiler_interval_ms", "int", 500, "Profiler: system metrics sampling interval.",
                   "debugger.profiler_interval_ms", ge=100),
)
# fmt: on

#: Every hyperparameter ``train.py`` reads, by name, in declaration order.
HYPERPARAMETERS: dict[str, Hyperparameter] = {hp.name: hp for hp in _DECLARED}


def is_reserved(name: str) -> bool:
    """A setting of SageMaker's launcher or tuner (``sagemaker_program``), not a hyperparameter."""
    return name.startswith(RESERVED_PREFIXES)


def unknown_names(names: list[str] | set[str]) -> list[str]:
    """The names in ``names`` that are neither declared nor reserved, sorted."""
    return sorted(name for name in set(names) if name not in HYPERPARAMETERS and not is_reserved(name))


def unknown_message(unknown: list[str]) -> str:
    """One line naming the unknown hyperparameters and the known ones."""
    return f"unknown hyperparameter(s): {', '.join(unknown)} (train.py knows: {', '.join(HYPERPARAMETERS)})"


def markdown_table() -> str:
    """The README's table of hyperparameters (``python training_code/hyperparameters.py`` prints it)."""
    lines = [
        "| name | type | default | range | config key | meaning |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for hp in HYPERPARAMETERS.values():
        default = ",".join(hp.default) if isinstance(hp.default, tuple) else hp.default
        default = "none" if default is None else str(default).lower() if hp.kind == "bool" else default
        kind = f"{hp.kind} or none" if hp.optional else hp.kind
        lines.append(
            f"| `{hp.name}` | {kind} | `{default}` | {hp.range_text()} | `{hp.config}` | {hp.help} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
