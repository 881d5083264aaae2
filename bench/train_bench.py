"""Training step images/s, squeezenet1_1 at batch 32, 224 px: plain fp32 vs train.py vs train.py + hook.

All cases run ``train.Trainer.train_epoch`` — the real step (forward, loss, backward,
optimizer, profiler phases) — over the same pre-decoded batches, so data loading is out of the
measurement and only the step differs:
- plain: NCHW tensors and model (what a straightforward loop does);
- train.py: what ``train._run`` does (``channels_last`` model and inputs), Debugger off;
- train.py + hook: the same with the smdebug hook on (default collections), measured on steps that
  save nothing and on steps that save everything; the overhead at save interval N follows as
  idle + (saving - idle) / N, since one step in N saves;
- train.py with the profiler off (it is on in every other case): what phase timing and the
  system-metrics sampler cost.

The cases take turns (interleaved repeats), so load changes on the machine hit them alike.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

from bench.harness import Report, Timing, measure_interleaved

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "training_code"))
import debugger_hook
import distributed
import train
from models import build_model
from profiler import TrainingProfiler


class CachedBatches:
    """The loader interface ``Trainer`` uses, over batches decoded once (data cost excluded)."""

    def __init__(self, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.batches = batches

    def set_epoch(self, epoch: int) -> None:
        del epoch

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        return iter(self.batches)


class PlainTrainer(train.Trainer):
    """``Trainer`` with inputs left in NCHW: the baseline without channels_last."""

    def _to_device(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return images.contiguous(), labels


def make_trainer(
    case: str, batches: CachedBatches, out_dir: Path, steps: int, batch_size: int, save_interval: int = 100
) -> train.Trainer:
    """The ``Trainer`` of one case; ``case`` names what differs (plain, hook_*, profiler_off, ...)."""
    args = train.parse_args(
        ["--architecture", "squeezenet1_1", "--pretrained", "false", "--batch_size", str(batch_size),
         "--optimizer", "adamw", "--lr", "0.0003", "--max_steps_per_epoch", str(steps),
         "--train", ".", "--valid", ".", "--stats", ".", "--model_dir", str(out_dir),
         "--output_data_dir", str(out_dir)]
    )  # fmt: skip
    torch.manual_seed(0)
    model = build_model("squeezenet1_1", 10)
    if case != "plain":
        model = model.to(memory_format=torch.channels_last)
    criterion = nn.CrossEntropyLoss()
    debugger = debugger_hook.create_debugger(
        model,
        criterion,
        enabled=case.startswith("hook"),
        config_path=None,
        settings=debugger_hook.HookSettings(
            out_dir=out_dir / "tensors",
            save_interval=save_interval,
            eval_save_interval=10,
            collections=debugger_hook.DEFAULT_COLLECTIONS,
        ),
        # As config/pipeline.yaml trains it (pretrained: true): ReLU inputs, which only the rule on
        # weight initialisation reads, are not saved for a backbone this run did not initialise.
        pretrained=True,
    )
    profiler = TrainingProfiler(out_dir / "profiler", enabled=case != "profiler_off", meta={})
    cls = PlainTrainer if case == "plain" else train.Trainer
    world = distributed.world_from_env()
    return cls(args, world, torch.device("cpu"), model, criterion, batches, batches, debugger, profiler)


def run_epoch(trainer: train.Trainer) -> None:
    """One measured epoch, its profiler (and the sampler thread) running only meanwhile, so a case's
    sampler never runs during another case's turn."""
    with trainer.profiler:
        trainer.train_epoch(1)


# Save intervals the hook overhead is projected for: the default (config/pipeline.yaml) and the demo's.
PROJECTED_INTERVALS = {100: "<= 1.05", 10: None}


def run(report: Report, *, quick: bool = False) -> None:
    batch_size, size, steps, repeats = (8, 64, 3, 1) if quick else (32, 224, 8, 9)
    generator = torch.Generator().manual_seed(0)
    batches = CachedBatches(
        [
            (torch.randn(batch_size, 3, size, size, generator=generator), torch.randint(0, 10, (batch_size,)))
            for _ in range(steps)
        ]
    )
    # case: (label, save interval, steps per repeat)
    cases = {
        "plain": ("plain fp32 NCHW", 100, steps),
        "channels_last": ("train.py (channels_last), hook off", 100, steps),
        # The same again: how far two identical cases drift apart here (the noise floor).
        "control": ("train.py (channels_last), hook off, again", 100, steps),
        # The profiler (phase timing + the system-metrics sampler thread) is on in every other case.
        "profiler_off": ("train.py (channels_last), hook off, profiler off", 100, steps),
        # Saves at step 0 only (spent in the warm-up): the hook's cost on a step that saves nothing.
        "hook_idle": ("train.py + hook, step without a save", 10**9, steps),
        # Saves every step: the cost of a step that saves every default collection (weights, biases,
        # gradients, losses; no relu_input for a pretrained backbone), so fewer steps.
        "hook_saving": ("train.py + hook, step with a save", 1, max(1, steps // 5)),
    }
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        trainers = {}
        for case, (_, interval, case_steps) in cases.items():
            trainer = make_trainer(case, batches, Path(tmp) / case, case_steps, batch_size, interval)
            stack.callback(trainer.debugger.close)
            trainers[case] = trainer
        timings = measure_interleaved(
            {case: (lambda trainer=trainer: run_epoch(trainer)) for case, trainer in trainers.items()},
            repeats=repeats,
        )
    rates = {
        case: report.rate("train", label, timings[case], case_steps * batch_size, "img/s")
        for case, (label, _, case_steps) in cases.items()
    }
    # The two identical hook-off cases: how far they drift apart is the noise floor of this run, and
    # their pooled samples are the baseline the hook and the profiler are held against (more samples,
    # so one slow turn of either moves it less).
    report.ratio(
        "train", "hook off, again / hook off (noise floor)", rates["control"] / rates["channels_last"]
    )
    baseline = Timing(timings["channels_last"].samples + timings["control"].samples)
    off = baseline.median / steps  # seconds per step
    report.ratio(
        "train", "train.py / plain fp32 (speed-up)", (timings["plain"].median / steps) / off, ">= 1.2"
    )
    report.ratio("train", "profiler on / off (time per step)", off / (timings["profiler_off"].median / steps))
    # Time per step: idle (hooks run, nothing written), saving (everything written). At save interval N
    # one step in N saves, so a step costs idle + (saving - idle) / N on average.
    idle, saving = (timings[case].median / cases[case][2] for case in ("hook_idle", "hook_saving"))
    for interval, goal in PROJECTED_INTERVALS.items():
        projected = (idle + (saving - idle) / interval) / off
        report.ratio("train", f"hook on / off at save_interval {interval} (time per step)", projected, goal)
