"""One process's training loop: epochs of train steps and a validation pass, early stopping.

Metrics are summed over all processes (``distributed.all_reduce_sum``), so the metric line and the
history describe the whole data set; only rank 0 prints. Each epoch prints the line the tuning
objective's regexes read::

    epoch=3 train_loss=0.4123 valid_loss=0.3921 valid_accuracy=0.8750
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

if __package__:  # imported as training_code.training_loop (tests, the local engine's in-process runs)
    from . import dogdata, progress
    from .debugger_hook import Debugger
    from .distributed import World, all_reduce_sum
    from .profiler import TrainingProfiler
else:  # inside the training container: the source dir is the working directory
    import dogdata  # type: ignore[no-redef]
    import progress  # type: ignore[no-redef]
    from debugger_hook import Debugger  # type: ignore[no-redef]
    from distributed import World, all_reduce_sum  # type: ignore[no-redef]
    from profiler import TrainingProfiler  # type: ignore[no-redef]


def seed_everything(seed: int) -> None:
    """Same seed, same run on CPU: head initialisation, shuffling and augmentation all derive from it."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_optimizer(name: str, parameters: list[nn.Parameter], lr: float, weight_decay: float):
    if not parameters:
        raise ValueError("no trainable parameters: freeze left nothing to train")
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r} (sgd, adam or adamw)")


def set_train_mode(model: nn.Module) -> None:
    """Train mode, except normalisation layers whose parameters are frozen: a frozen backbone keeps its
    ImageNet running statistics, so the probe trains on the same features evaluation will see."""
    model.train()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(
            parameter.requires_grad for parameter in module.parameters()
        ):
            module.eval()


@dataclass
class EpochResult:
    epoch: int
    train_loss: float
    train_accuracy: float
    valid_loss: float
    valid_accuracy: float
    seconds: float
    train_samples: int
    valid_samples: int

    def metric_line(self) -> str:
        return (
            f"epoch={self.epoch} train_loss={self.train_loss:.4f} valid_loss={self.valid_loss:.4f} "
            f"valid_accuracy={self.valid_accuracy:.4f}"
        )


@dataclass
class History:
    epochs: list[EpochResult] = field(default_factory=list)
    best_epoch: int = 0
    best_valid_loss: float = math.inf
    best_valid_accuracy: float = 0.0
    stopped_early: bool = False
    world_size: int = 1
    total_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        document["best_valid_loss"] = None if math.isinf(self.best_valid_loss) else self.best_valid_loss
        return document


def cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy in the default memory format, so the file loads anywhere."""
    return {
        name: tensor.detach().to("cpu", copy=True).contiguous() for name, tensor in model.state_dict().items()
    }


class Trainer:
    """One process's training loop over a prepared model, loaders, hook and profiler."""

    def __init__(
        self,
        args: argparse.Namespace,
        world: World,
        device: torch.device,
        model: nn.Module,
        criterion: nn.Module,
        train_loader: dogdata.ImageFolderLoader,
        valid_loader: dogdata.ImageFolderLoader,
        debugger: Debugger,
        profiler: TrainingProfiler,
        on_epoch: Callable[[EpochResult], None] | None = None,
    ) -> None:
        self.args, self.world, self.device = args, world, device
        self.on_epoch = on_epoch  # rank 0's per-epoch record (MLflow, ``tracking.py``)
        self.model = model  # the bare model: evaluation and saving use it, and the hook is on it
        self.train_model: nn.Module = model
        if world.distributed:
            device_ids = [device.index] if device.type == "cuda" else None
            self.train_model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
        self.criterion = criterion  # the hook watches this module: losses in TRAIN and EVAL modes
        self.debugger = debugger
        self.profiler = profiler
        self.train_loader, self.valid_loader = train_loader, valid_loader
        trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
        self.optimizer = make_optimizer(args.optimizer, trainable, args.lr, args.weight_decay)
        self._epochs = progress.Progress(args.epochs, "epochs", terminal=False)  # fit() may draw a bar

    def _to_device(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images = images.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        return images, labels.to(self.device, non_blocking=True)

    def train_epoch(self, epoch: int) -> tuple[float, float, int]:
        """Returns this process's (loss sum, correct, samples)."""
        set_train_mode(self.train_model)
        self.debugger.set_mode("train")
        self.train_loader.set_epoch(epoch)
        loss_sum = correct = count = 0.0
        steps = len(self.train_loader)
        if self.args.max_steps_per_epoch:
            steps = min(steps, self.args.max_steps_per_epoch)
        batches = iter(self.train_loader)
        shown = self._progress(steps, f"epoch {epoch}", "step", leave=False)
        for _ in range(steps):
            with self.profiler.phase("data"):
                images, labels = self._to_device(*next(batches))
            with self.profiler.phase("forward_backward"):
                logits = self.train_model(images)
                loss = self.criterion(logits, labels)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
            with self.profiler.phase("optimizer"):
                self.optimizer.step()
            self.profiler.end_step(mode="train")
            loss_sum += loss.item() * labels.numel()
            correct += (logits.argmax(1) == labels).sum().item()
            count += labels.numel()
            shown.update(loss=f"{loss_sum / count:.4f}")
        shown.close()
        return loss_sum, correct, int(count)

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float, int]:
        """This process's (loss sum, correct, samples) on its disjoint shard of the valid split."""
        self.model.eval()
        self.debugger.set_mode("eval")
        loss_sum = correct = count = 0.0
        batches = iter(self.valid_loader)
        while True:
            with self.profiler.phase("data"):
                batch = next(batches, None)
            if batch is None:
                self.profiler.drop_step()  # the wait that found the split done is no step
                break
            images, labels = self._to_device(*batch)
            with self.profiler.phase("forward_backward"):
                logits = self.model(images)
                loss = self.criterion(logits, labels)
            self.profiler.end_step(mode="eval")
            loss_sum += loss.item() * labels.numel()
            correct += (logits.argmax(1) == labels).sum().item()
            count += labels.numel()
        return loss_sum, correct, int(count)

    def run_epoch(self, epoch: int) -> EpochResult:
        """Train and validate once; the result covers every process's share."""
        started = time.perf_counter()
        train = self.train_epoch(epoch)
        valid = self.evaluate()
        train_loss, train_correct, train_count, valid_loss, valid_correct, valid_count = all_reduce_sum(
            [*train, *valid], self.world, self.device
        )
        if valid_count == 0:
            raise ValueError(f"valid split {self.args.valid} has no images")
        result = EpochResult(
            epoch=epoch,
            train_loss=train_loss / max(train_count, 1),
            train_accuracy=train_correct / max(train_count, 1),
            valid_loss=valid_loss / valid_count,
            valid_accuracy=valid_correct / valid_count,
            seconds=round(time.perf_counter() - started, 3),
            train_samples=int(train_count),
            valid_samples=int(valid_count),
        )
        self._say(result.metric_line())
        self._say(f"epoch={epoch} train_accuracy={result.train_accuracy:.4f} seconds={result.seconds:.1f}")
        if not math.isfinite(result.train_loss) or not math.isfinite(result.valid_loss):
            raise FloatingPointError(f"epoch {epoch}: loss is not finite (lr {self.args.lr} too high?)")
        return result

    def _progress(self, total: int, description: str, unit: str, leave: bool = True) -> progress.Progress:
        """A bar when a person watches this process in a terminal (rank 0 only); silent otherwise: the
        epoch lines below are the plain output, and the tuning objective's regexes read them."""
        terminal = self.world.is_main and progress.is_terminal()
        return progress.Progress(total, description, unit=unit, terminal=terminal, leave=leave)

    def _say(self, line: str) -> None:
        if self.world.is_main:
            self._epochs.write(line)

    def fit(self) -> tuple[History, dict[str, torch.Tensor]]:
        """Train up to ``epochs``, stop after ``patience`` epochs without a lower valid loss, and return
        the history and the best epoch's weights."""
        history = History(world_size=self.world.world_size)
        best_state = cpu_state_dict(self.model)
        since_best = 0
        started = time.perf_counter()
        self._epochs = self._progress(self.args.epochs, "epochs", "epoch")
        for epoch in range(1, self.args.epochs + 1):
            result = self.run_epoch(epoch)
            self._epochs.update(valid_accuracy=f"{result.valid_accuracy:.4f}")
            if self.on_epoch is not None and self.world.is_main:
                self.on_epoch(result)
            history.epochs.append(result)
            if result.valid_loss < history.best_valid_loss:
                history.best_epoch = epoch
                history.best_valid_loss = result.valid_loss
                history.best_valid_accuracy = result.valid_accuracy
                best_state = cpu_state_dict(self.model)
                since_best = 0
                continue
            since_best += 1
            if since_best >= self.args.patience and epoch < self.args.epochs:
                history.stopped_early = True
                self._say(f"early stopping after epoch {epoch}: best epoch {history.best_epoch}")
                break
        self._epochs.close()
        history.total_seconds = round(time.perf_counter() - started, 3)
        return history, best_state
