"""Training step images/s, squeezenet1_1 at batch 32, 224 px: plain fp32 vs train.py vs train.py + hook.

All three cases run ``train.Trainer.train_epoch`` — the real step (forward, loss, backward,
optimizer, profiler phases) — over the same pre-decoded batches, so data loading is out of the
measurement and only the step differs:
- plain: NCHW tensors and model (what a straightforward loop does);
- train.py: what ``train._run`` does (``channels_last`` model and inputs), Debugger off;
- train.py + hook: the same with the smdebug hook saving at the default collections, with one full
  save per repeat (a heavier save rate than the default interval of 100 steps).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

from bench.harness import Report, measure

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "training_code"))
import debugger_hook
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
    case: str, batches: CachedBatches, out_dir: Path, steps: int, batch_size: int
) -> train.Trainer:
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
        enabled=case == "hook",
        config_path=None,
        settings=debugger_hook.HookSettings(
            out_dir=out_dir / "tensors",
            save_interval=steps,
            eval_save_interval=10,
            collections=debugger_hook.parse_collections(",".join(train.DEFAULT_COLLECTIONS)),
        ),
    )
    profiler = TrainingProfiler(out_dir / "profiler", enabled=True, meta={})
    world = train.world_from_env()
    cls = PlainTrainer if case == "plain" else train.Trainer
    trainer = cls(args, world, torch.device("cpu"), model, criterion, batches, batches, debugger, profiler)
    return trainer


def run(report: Report, *, quick: bool = False) -> None:
    batch_size, size, steps, repeats = (8, 64, 3, 1) if quick else (32, 224, 20, 3)
    generator = torch.Generator().manual_seed(0)
    batches = CachedBatches(
        [
            (torch.randn(batch_size, 3, size, size, generator=generator), torch.randint(0, 10, (batch_size,)))
            for _ in range(steps)
        ]
    )
    rates = {}
    for case, label in [
        ("plain", "plain fp32 NCHW"),
        ("channels_last", "train.py (channels_last)"),
        ("hook", f"train.py + Debugger hook (1 save / {steps} steps)"),
    ]:
        with tempfile.TemporaryDirectory() as tmp:
            trainer = make_trainer(case, batches, Path(tmp), steps, batch_size)
            with trainer.profiler:
                timing = measure(lambda trainer=trainer: trainer.train_epoch(1), repeats=repeats)
            trainer.debugger.close()
        rates[case] = report.rate("train", label, timing, steps * batch_size, "img/s")
    report.ratio(
        "train", "train.py / plain fp32 (speed-up)", rates["channels_last"] / rates["plain"], ">= 1.2"
    )
    report.ratio(
        "train", "hook on / hook off (time per step)", rates["channels_last"] / rates["hook"], "<= 1.05"
    )
