"""Train at dogImages scale: where an epoch's time goes, and its rate against the bound.

The real ``Trainer`` over the real loader on ``sample-data --classes 133`` (5,320 train and 1,330
valid images of 150–500 px) with ``config/local.yaml``'s model, image size and hyperparameters, in
cases that each take one thing away, measured in turns (A B C A B C ...) so that load changes hit
them alike:

- as train.py runs it: Debugger hook at the config's save intervals, profiler on, decoded images kept
  across epochs (``image_cache.py``);
- hook off; hook and profiler off; hook, profiler and cache off;
- free data: every batch decoded once beforehand (the loader out of the measurement).

Each case trains three whole epochs, the cases taking turns epoch by epoch. Per case: training images
per second of the first epoch (the cache filling) and of the steady epochs after it; for the first
case the profiler's phases of the steady epochs (waiting for the loader, forward+backward, optimizer,
outside any phase) and the validation pass. The bound is min(decode + augment-resize of one core x the
cores, forward + backward + optimizer on random batches), both measured in this run; the goal is
training at >= 0.8 of it.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from torch import nn

from bench.harness import Report, Row, Timing
from bench.scale_bench import decode_limit, forward_backward_limit
from bench.train_bench import CachedBatches
from pipeline.config import LOCAL_CONFIG, PipelineConfig, parse_config
from pipeline.sample_data import write_sample_data

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "training_code"))
import debugger_hook
import distributed
import dogdata
import profiler as profiler_module
import train
from models import build_model
from profiler import TrainingProfiler

CLASSES = 133
#: case: (label, hook on, profiler on, decoded-image cache on, decoded beforehand)
CASES = {
    "as_run": ("as train.py runs it (hook + profiler + cache)", True, True, True, False),
    "hook_off": ("hook off", False, True, True, False),
    "both_off": ("hook and profiler off", False, False, True, False),
    "no_cache": ("hook, profiler and cache off", False, False, False, False),
    "free_data": ("hook and profiler off, batches decoded beforehand", False, False, False, True),
}
EPOCHS = 3  # the first fills the cache; the others are the steady epochs


def bench_config(quick: bool) -> PipelineConfig:
    raw = yaml.safe_load(LOCAL_CONFIG.read_text())
    if quick:
        raw["data"]["image_size"] = 48
    return parse_config(raw, LOCAL_CONFIG)


def write_stats_dir(stats: Path, classes: list[str]) -> None:
    """What Preprocess leaves for Train: the class list and normalisation stats (values do not matter
    for speed; ImageNet's)."""
    stats.mkdir(parents=True)
    (stats / "classes.json").write_text(json.dumps(classes))
    (stats / "stats.json").write_text(
        json.dumps({"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]})
    )


def make_trainer(cfg: PipelineConfig, case: str, data: Path, out_dir: Path, steps: int) -> train.Trainer:
    """The ``Trainer`` train.py would build for ``cfg``, with ``case``'s instruments and data."""
    _, hook_on, profiler_on, cached, decoded = CASES[case]
    hyper = cfg.training.hyperparameters
    hook = cfg.debugger.hook_config
    args = train.parse_args(
        ["--architecture", cfg.model.architecture, "--pretrained", "false", "--freeze", str(cfg.model.freeze),
         "--batch_size", str(hyper.batch_size), "--optimizer", str(hyper.optimizer), "--lr", str(hyper.lr),
         "--num_workers", str(hyper.num_workers), "--image_size", str(cfg.data.image_size),
         "--max_steps_per_epoch", str(steps), "--save_interval", str(hook.save_interval),
         "--cache_mb", str(hyper.cache_mb if cached else 0),
         "--eval_save_interval", str(hook.eval_save_interval),
         "--train", str(data / "train"), "--valid", str(data / "valid"), "--stats", str(data / "stats"),
         "--model_dir", str(out_dir), "--output_data_dir", str(out_dir)]
    )  # fmt: skip
    classes = dogdata.read_classes(args.stats)
    mean, std = dogdata.read_stats(args.stats)
    torch.manual_seed(0)
    model = build_model(args.architecture, len(classes), freeze=args.freeze).to(
        memory_format=torch.channels_last
    )
    world = distributed.world_from_env()
    train_loader, valid_loader = train._loaders(args, world, classes, mean, std)
    if decoded:
        train_loader = CachedBatches(list(train_loader))  # one pass, kept
    criterion = nn.CrossEntropyLoss()
    debugger = debugger_hook.create_debugger(
        model,
        criterion,
        enabled=hook_on,
        config_path=None,
        settings=debugger_hook.HookSettings(
            out_dir=out_dir / "tensors",
            save_interval=args.save_interval,
            eval_save_interval=args.eval_save_interval,
            collections=debugger_hook.DEFAULT_COLLECTIONS,
        ),
        pretrained=cfg.model.pretrained,
    )
    profiler = TrainingProfiler(out_dir / "profiler", enabled=profiler_on, meta={})
    return train.Trainer(args, world, torch.device("cpu"), model, criterion, train_loader, valid_loader,
                         debugger, profiler)  # fmt: skip


def phase_seconds(profiler: TrainingProfiler, mode: str) -> dict[str, float]:
    """The profiler's phase totals of its last run's ``mode`` steps, and the time outside any phase."""
    steps = [row for row in profiler_module.read_jsonl(profiler.out_dir / profiler_module.STEPS_FILE)
             if row["mode"] == mode]  # fmt: skip
    totals = {name: sum(row["phases"].get(name, 0.0) for row in steps) for name in profiler_module.PHASES}
    totals["outside phases"] = sum(row["wall"] for row in steps) - sum(totals.values())
    return totals


def run(report: Report, *, quick: bool = False) -> None:
    cfg = bench_config(quick)
    with tempfile.TemporaryDirectory(prefix="dogpipe-train-phases-") as tmp, contextlib.ExitStack() as stack:
        data = Path(tmp) / "data"
        write_sample_data(data, classes=3 if quick else CLASSES, per_class=6 if quick else 40,
                          sides=(48, 96) if quick else (150, 500))  # fmt: skip
        write_stats_dir(data / "stats", dogdata.list_classes(data / "train"))
        trainers = {case: make_trainer(cfg, case, data, Path(tmp) / case, 0) for case in CASES}
        for trainer in trainers.values():
            stack.callback(trainer.debugger.close)
        seconds: dict[str, list[float]] = {case: [] for case in CASES}
        valid_seconds: list[float] = []
        phases: list[dict[str, float]] = []
        for epoch in range(1, EPOCHS + 1):  # every case's epoch N, then every case's epoch N + 1
            for case, trainer in trainers.items():
                with trainer.profiler:
                    started = time.perf_counter()
                    trainer.train_epoch(epoch)
                    seconds[case].append(time.perf_counter() - started)
                    if case == "as_run":
                        started = time.perf_counter()
                        trainer.evaluate()
                        valid_seconds.append(time.perf_counter() - started)
                if case == "as_run" and epoch > 1:
                    phases.append(phase_seconds(trainer.profiler, "train"))
        decode = decode_limit(data / "train", cfg.data.image_size, quick)
        train_images = trainers["as_run"].train_loader.num_samples
        valid_images = trainers["as_run"].valid_loader.num_samples
    compute = forward_backward_limit(cfg, quick)
    bound = min(decode, compute)
    steady = {}
    for case, (label, *_) in CASES.items():
        report.rate("train_phases", f"{label}, first epoch", Timing(seconds[case][:1]), train_images, "img/s")
        steady[case] = report.rate("train_phases", f"{label}, steady epochs", Timing(seconds[case][1:]),
                                   train_images, "img/s")  # fmt: skip
    report.rate(
        "train_phases", "validation pass, first epoch", Timing(valid_seconds[:1]), valid_images, "img/s"
    )
    report.rate("train_phases", "validation pass, steady", Timing(valid_seconds[1:]), valid_images, "img/s")
    for case, rate in (("decode+resize limit (one core x cores)", decode),
                       ("forward+backward limit (random batches)", compute)):  # fmt: skip
        report.rows.append(Row("train_phases", case, "img/s", rate, rate, rate))
    first = train_images / seconds["as_run"][0]
    name = "as run, steady epochs / min(decode, forward+backward)"
    report.ratio("train_phases", name, steady["as_run"] / bound, ">= 0.8")
    report.ratio("train_phases", "as run, first epoch / min(decode, forward+backward)", first / bound)
    with_valid = train_images / (
        statistics.median(seconds["as_run"][1:]) + statistics.median(valid_seconds[1:])
    )
    report.ratio("train_phases", "as run, steady epoch incl. validation / bound", with_valid / bound)
    report.ratio("train_phases", "hook on / off (steady)", steady["as_run"] / steady["hook_off"])
    report.ratio(
        "train_phases", "profiler on / off (steady, hook off)", steady["hook_off"] / steady["both_off"]
    )
    report.ratio("train_phases", "cache on / off (steady)", steady["both_off"] / steady["no_cache"])
    report.ratio("train_phases", "batches decoded beforehand / cache (steady)",
                 steady["free_data"] / steady["both_off"])  # fmt: skip
    total = _median_phases(phases)
    wall = sum(total.values()) or 1.0
    for name, share in total.items():
        report.ratio("train_phases", f"share of a steady training step (as run): {name}", share / wall)


def _median_phases(turns: list[dict[str, float]]) -> dict[str, float]:
    return {name: statistics.median(turn[name] for turn in turns) for name in turns[0]} if turns else {}
