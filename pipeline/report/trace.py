"""Reading a Debugger (smdebug) trace into plain series for the report's plots."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import numpy as np

#: ``(label, x, y, line style)``: one line of a plot.
Series = tuple[str, list[int], list[float], str]


class _WarningsAndAbove(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


def quiet_smdebug() -> None:
    """Keep smdebug's INFO lines (some printed at import) out of ``dogpipe run`` and ``dogpipe report``.

    smdebug sets its logger's level from ``SMDEBUG_LOG_LEVEL`` when it first uses it, replacing its
    handlers but keeping its filters; a filter on that logger, added before smdebug is imported, holds
    without touching the environment (which the jobs this process starts inherit)."""
    logger = logging.getLogger("smdebug")
    if not any(isinstance(item, _WarningsAndAbove) for item in logger.filters):
        logger.addFilter(_WarningsAndAbove())


@functools.lru_cache(maxsize=4)
def open_trial(trace_dir: str) -> Any:
    """One smdebug trial per trace: reading the index is the slow part, and two sections use it."""
    quiet_smdebug()
    from smdebug.trials import create_trial

    return create_trial(trace_dir)


def has_trace(trace_dir: Path | None) -> bool:
    return trace_dir is not None and Path(trace_dir).is_dir()


def loss_series(trace_dir: Path, max_tensors: int = 2) -> list[Series]:
    """The losses collection per saved step, per mode (train, eval; global for a hook that never set
    modes): the within-epoch view that the epoch curves average away."""
    trial = open_trial(str(trace_dir))
    from smdebug.core.modes import ModeKeys

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
