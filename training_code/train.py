"""Fine-tune a torchvision classifier on the dog-breed ImageFolder: the Training and Tuning job script.

Runs the same under SageMaker's script-mode launcher, the local engine, torchrun, and by hand::

    python training_code/train.py --train data/train --valid data/valid --stats data/stats \\
        --model_dir out/model --output_data_dir out/data --architecture mobilenet_v2 --pretrained false

Inputs follow the container contract (``contract.py``): channels ``train``/``valid``/``stats`` and the
hyperparameters of ``hyperparameters.py`` (parsed by ``train_arguments.py``). Outputs: ``model.pth``,
``model_info.json`` and ``code/`` (the serving handler and its helpers, ``package_serving_code.py``, so
the model needs no repack) in the model dir; ``history.json``, ``profiler/`` and (by default) the smdebug
trace ``tensors/`` in the output data dir. The loop itself is ``training_loop.py``; processes and DDP
are ``distributed.py``. Only rank 0 writes anything.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

if __package__:  # imported as training_code.train (tests, the local engine's in-process runs)
    from . import contract, dogdata, tracking
    from .debugger_hook import Debugger, HookSettings, create_debugger
    from .distributed import World, device_for, init_distributed, launch, leave_distributed
    from .image_cache import MIB, ImageCache
    from .models import MODEL_INFO_FILE, MODEL_WEIGHTS_FILE, build_model
    from .package_serving_code import CODE_DIR, write_serving_code
    from .profiler import TrainingProfiler
    from .train_arguments import hyperparameters_of, parse_args
    from .training_loop import EpochResult, History, Trainer, seed_everything
else:  # inside the training container: the source dir is the working directory
    import contract  # type: ignore[no-redef]
    import dogdata  # type: ignore[no-redef]
    import tracking  # type: ignore[no-redef]
    from debugger_hook import Debugger, HookSettings, create_debugger  # type: ignore[no-redef]
    from distributed import World, device_for, init_distributed, launch, leave_distributed  # type: ignore[no-redef]
    from image_cache import MIB, ImageCache  # type: ignore[no-redef]
    from models import MODEL_INFO_FILE, MODEL_WEIGHTS_FILE, build_model  # type: ignore[no-redef]
    from package_serving_code import CODE_DIR, write_serving_code  # type: ignore[no-redef]
    from profiler import TrainingProfiler  # type: ignore[no-redef]
    from train_arguments import hyperparameters_of, parse_args  # type: ignore[no-redef]
    from training_loop import EpochResult, History, Trainer, seed_everything  # type: ignore[no-redef]

log = logging.getLogger("dogpipe.train")

HISTORY_FILE = "history.json"


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def save_outputs(
    args: argparse.Namespace,
    state_dict: dict[str, torch.Tensor],
    history: History,
    classes: list[str],
    mean: list[float],
    std: list[float],
) -> None:
    """Rank 0: the model dir (weights, info, serving code) and ``history.json``."""
    model_dir, output_dir = Path(args.model_dir), Path(args.output_data_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    weights = model_dir / MODEL_WEIGHTS_FILE
    torch.save(state_dict, weights.with_name(weights.name + ".tmp"))
    weights.with_name(weights.name + ".tmp").replace(weights)
    info = {
        "architecture": args.architecture,
        "num_classes": len(classes),
        "classes": classes,
        "image_size": args.image_size,
        "mean": mean,
        "std": std,
        "hyperparameters": hyperparameters_of(args),
        "best_epoch": history.best_epoch,
        "valid_accuracy": history.best_valid_accuracy,
        "valid_loss": None if math.isinf(history.best_valid_loss) else history.best_valid_loss,
    }
    _atomic_write_text(model_dir / MODEL_INFO_FILE, json.dumps(info, indent=2))
    write_serving_code(model_dir / CODE_DIR)
    _atomic_write_text(output_dir / HISTORY_FILE, json.dumps(history.to_json(), indent=2))


def run(args: argparse.Namespace, world: World) -> History:
    """Train in this process (one of ``world``); rank 0 writes every output."""
    device = device_for(world)
    init_distributed(world, device)
    try:
        return _run(args, world, device)
    finally:
        leave_distributed(world)


def _loaders(
    args: argparse.Namespace, world: World, classes: list[str], mean: list[float], std: list[float]
) -> tuple[dogdata.ImageFolderLoader, dogdata.ImageFolderLoader]:
    """This rank's shard of the train split (shuffled, augmented) and of the valid split."""
    options = {"rank": world.rank, "world_size": world.world_size, "num_workers": args.num_workers,
               "cache": ImageCache(args.cache_mb * MIB)}  # one budget for both splits  # fmt: skip
    train_loader = dogdata.make_loader(
        args.train, classes, args.image_size, mean, std, batch_size=args.batch_size, shuffle=True,
        seed=args.seed, augment=True, **options,
    )  # fmt: skip
    valid_loader = dogdata.make_loader(
        args.valid, classes, args.image_size, mean, std, batch_size=args.batch_size, shuffle=False, **options,
    )  # fmt: skip
    if len(train_loader) == 0:
        raise ValueError(f"train split {args.train} has no images for rank {world.rank}")
    return train_loader, valid_loader


def _instruments(
    args: argparse.Namespace, world: World, device: torch.device, model: nn.Module, criterion: nn.Module
) -> tuple[Debugger, TrainingProfiler]:
    """The smdebug hook and the profiler; both write only on rank 0."""
    output_dir = Path(args.output_data_dir)
    debugger = create_debugger(
        model,
        criterion,
        enabled=args.debug_hook and world.is_main,
        config_path=args.debug_hook_config,
        settings=HookSettings(
            out_dir=output_dir / "tensors",
            save_interval=args.save_interval,
            eval_save_interval=args.eval_save_interval,
            collections=tuple(args.collections),
        ),
        pretrained=args.pretrained,
    )
    meta = {
        name: getattr(args, name)
        for name in ("architecture", "batch_size", "num_workers", "cache_mb", "image_size")
    }
    meta.update(device=str(device), world_size=world.world_size, torch_threads=torch.get_num_threads())
    profiler = TrainingProfiler(
        output_dir / "profiler",
        interval_ms=args.profiler_interval_ms,
        enabled=args.profiler and world.is_main,
        meta=meta,
    )
    return debugger, profiler


def _run(args: argparse.Namespace, world: World, device: torch.device) -> History:
    init_started = time.perf_counter()
    classes = dogdata.read_classes(args.stats)
    mean, std = dogdata.read_stats(args.stats)
    seed_everything(args.seed)
    model = build_model(
        args.architecture,
        len(classes),
        pretrained=args.pretrained,
        weights_path=args.weights_path,
        weights_sha256=args.weights_sha256,
        freeze=args.freeze,
    )
    model = model.to(device).to(memory_format=torch.channels_last)  # 1.45x on CPU here
    train_loader, valid_loader = _loaders(args, world, classes, mean, std)
    criterion = nn.CrossEntropyLoss()
    debugger, profiler = _instruments(args, world, device, model, criterion)
    run = _tracked_run(args, world, classes)
    trainer = Trainer(
        args, world, device, model, criterion, train_loader, valid_loader, debugger, profiler,
        on_epoch=lambda result: run.log_metrics(epoch_metrics(result), step=result.epoch),
    )  # fmt: skip
    try:
        with profiler:
            profiler.update_meta(init_seconds=round(time.perf_counter() - init_started, 3))
            history, best_state = trainer.fit()
    except BaseException:
        run.finish("FAILED")
        raise
    finally:
        debugger.close()
    if world.is_main:
        save_outputs(args, best_state, history, classes, mean, std)
        log.info("best epoch %d, valid accuracy %.4f", history.best_epoch, history.best_valid_accuracy)
    run.log_metrics(
        {"best_epoch": history.best_epoch, "best_valid_accuracy": history.best_valid_accuracy},
        step=history.best_epoch,
    )
    run.set_tags({"stopped_early": history.stopped_early})
    run.finish()
    return history


def epoch_metrics(result: EpochResult) -> dict[str, float]:
    """What one epoch records in MLflow: the metric line's values and the train accuracy."""
    names = ("train_loss", "train_accuracy", "valid_loss", "valid_accuracy", "seconds")
    return {name: float(getattr(result, name)) for name in names}


def _tracked_run(args: argparse.Namespace, world: World, classes: list[str]) -> tracking.JobRun:
    """Rank 0's MLflow run of this job (inactive elsewhere, or when tracking is off or unavailable)."""
    if not world.is_main:
        return tracking.JobRun()
    run = tracking.start_job_run()
    run.log_params({**hyperparameters_of(args), "num_classes": len(classes), "world_size": world.world_size})
    return run


def main(argv: Sequence[str] | None = None) -> History | None:
    """Parse, then train here or in ``nproc_per_node`` spawned processes. Returns the history when
    training ran in this process (``None`` after spawning)."""
    contract.configure_logging()
    args = parse_args(argv)
    return launch(run, args, args.nproc_per_node)


if __name__ == "__main__":
    main()
