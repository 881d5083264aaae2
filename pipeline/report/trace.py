"""Reading a Debugger (smdebug) trace into plain series for the report's plots."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import numpy as np

#: ``(label, x, y, line style)``: one line of a plot.
Series = tuple[str, list[int], list[float], str]


@functools.lru_cache(maxsize=4)
def open_trial(trace_dir: str) -> Any:
    """One smdebug trial per trace: reading the index is the slow part, and two sections use it.

    smdebug configures its logger once, on first use, from ``SMDEBUG_LOG_LEVEL``; asking for it here and
    lowering its level afterwards keeps its INFO lines out of ``dogpipe run`` without touching the
    environment."""
    from smdebug.core.logger import get_logger
    from smdebug.trials import create_trial

    get_logger().setLevel(logging.WARNING)
    return create_trial(trace_dir)


def has_trace(trace_dir: Path | None) -> bool:
    return bool(trace_dir) and Path(trace_dir).is_dir()


def loss_series(trace_dir: Path, max_tensors: int = 2) -> list[Series]:
    """The losses collection per saved step, per mode (train, eval; global for a hook that never set
    modes): the within-epoch view that the epoch curves average away."""
    from smdebug.core.modes import ModeKeys

    trial = open_trial(str(trace_dir))
    series: list[Series] = []
    for name in trial.tensor_names(collection="losses")[:max_tensors]:
        tensor = trial.tensor(name)
        for mode, style in ((ModeKeys.TRAIN, "-"), (ModeKeys.EVAL, "o--"), (ModeKeys.GLOBAL, "-")):
            steps = tensor.steps(mode=mode)
            if not steps or (mode == ModeKeys.GLOBAL and series):
                continue
            values = [float(np.mean(tensor.value(step, mode=mode))) for step in steps]
            global_steps = [trial.global_step(mode, step) for step in steps]
            series.append((f"{name} ({mode.name.lower()})", global_steps, values, style))
    return series


def gradient_series(trace_dir: Path, max_layers: int = 12) -> list[Series]:
    """L2 norm of each layer's gradient per saved step; weights first when there are too many layers
    for one legend (they say more per line than biases)."""
    trial = open_trial(str(trace_dir))
    names = trial.tensor_names(collection="gradients")
    if len(names) > max_layers:
        names = [n for n in names if "weight" in n][:max_layers] or names[:max_layers]
    series: list[Series] = []
    for name in names:
        tensor = trial.tensor(name)
        steps = tensor.steps()
        norms = [float(tensor.reduction_value(step, "l2")) for step in steps]
        series.append((name.replace("gradient/", ""), list(steps), norms, "-"))
    return series
