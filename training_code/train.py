"""Fine-tune a torchvision classifier on the dog-breed ImageFolder: the Training and Tuning job script.

Runs the same under SageMaker's script-mode launcher, the local engine, torchrun, and by hand::

    python training_code/train.py --train data/train --valid data/valid --stats data/stats \\
        --model_dir out/model --output_data_dir out/data --architecture mobilenet_v2 --pretrained false

Inputs follow the container contract (``contract.py``): channels ``train``/``valid``/``stats``,
hyperparameters from ``SM_HPS`` and the command line (command line wins; ``--batch-size`` and
``--batch_size`` both work, since tuning jobs pass ``--name value``). Outputs: ``model.pth``,
``model_info.json`` and ``code/`` (the serving handler and its helpers, so the model needs no repack)
in the model dir; ``history.json``, ``profiler/`` and (by default) the smdebug trace ``tensors/`` in the
output data dir. Each epoch logs the line the tuning metric regexes read::

    epoch=3 train_loss=0.4123 valid_loss=0.3921 valid_accuracy=0.8750

Distributed data parallel (gloo on CPU, nccl on GPU) starts when ``SM_HOSTS`` lists several hosts,
``--nproc_per_node`` is above 1 (this script spawns the local processes), or a launcher such as torchrun
set ``WORLD_SIZE``. Data is sharded by rank, metrics are all-reduced, and only rank 0 writes anything.
"""

from __future__ import annotations

import argparse
import ast
import json
import logging
import math
import os
import random
import shutil
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

if __package__:  # imported as training_code.train (tests, the local engine's in-process runs)
    from . import contract, dogdata
    from .debugger_hook import DEFAULT_COLLECTIONS, Debugger, HookSettings, create_debugger, parse_collections
    from .models import MODEL_INFO_FILE, MODEL_WEIGHTS_FILE, build_model
    from .profiler import TrainingProfiler
else:  # inside the training container: the source dir is the working directory
    import contract  # type: ignore[no-redef]
    import dogdata  # type: ignore[no-redef]
    from debugger_hook import (  # type: ignore[no-redef]
        DEFAULT_COLLECTIONS,
        Debugger,
        HookSettings,
        create_debugger,
        parse_collections,
    )
    from models import MODEL_INFO_FILE, MODEL_WEIGHTS_FILE, build_model  # type: ignore[no-redef]
    from profiler import TrainingProfiler  # type: ignore[no-redef]

log = logging.getLogger("dogpipe.train")

HISTORY_FILE = "history.json"
CODE_DIR = "code"
SERVING_ENTRY = "inference.py"
REQUIREMENTS = "requirements.txt"
DEFAULT_MASTER_PORT = 29500
HERE = Path(__file__).resolve().parent

#: Every hyperparameter train.py reads (training_code/README.md lists the same names).
HYPERPARAMETERS = (
    *("epochs", "lr", "batch_size", "optimizer", "weight_decay", "patience", "num_workers", "seed"),
    *("max_steps_per_epoch", "architecture", "pretrained", "weights_path", "weights_sha256", "freeze"),
    *("image_size", "debug_hook", "save_interval", "eval_save_interval", "collections", "profiler"),
    "profiler_interval_ms",
)


# --------------------------------------------------------------------------------------------- arguments


def _optional_int(value: str) -> int | None:
    """``max_steps_per_epoch``: a positive int, or none/0/empty for no cap."""
    if str(value).strip().lower() in ("", "none", "null", "0"):
        return None
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return number


def _optional_str(value: str) -> str | None:
    return None if str(value).strip().lower() in ("", "none", "null") else str(value)


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return number


def _bool(value: str) -> bool:
    try:
        return contract.str2bool(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])

    def add(name: str, **kwargs: Any) -> None:
        flags = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
        parser.add_argument(*flags, dest=name, **kwargs)

    add("epochs", type=_positive_int, default=5)
    add("lr", type=float, default=1e-3)
    add("batch_size", type=_positive_int, default=32)
    add("optimizer", choices=("sgd", "adam", "adamw"), default="adamw")
    add("weight_decay", type=float, default=0.0)
    add("patience", type=_positive_int, default=3, help="epochs without valid-loss improvement")
    add("num_workers", type=int, default=2, help="decoding threads of the data loader")
    add("seed", type=int, default=0)
    add("max_steps_per_epoch", type=_optional_int, default=None)
    add("architecture", default="squeezenet1_1")
    add("pretrained", type=_bool, default=True)
    add("weights_path", type=_optional_str, default=None)
    add("weights_sha256", type=_optional_str, default=None)
    add("freeze", choices=("none", "features"), default="none")
    add("image_size", type=_positive_int, default=224)
    add("debug_hook", type=_bool, default=True)
    add("save_interval", type=_positive_int, default=100)
    add("eval_save_interval", type=_positive_int, default=10)
    add("collections", default=",".join(DEFAULT_COLLECTIONS))
    add("profiler", type=_bool, default=True)
    add("profiler_interval_ms", type=_positive_int, default=500)
    # Not hyperparameters: where things are, and how many processes.
    add("train", default=None, help="train split (default: SM_CHANNEL_TRAIN)")
    add("valid", default=None, help="valid split (default: SM_CHANNEL_VALID)")
    add("stats", default=None, help="stats.json + classes.json folder (default: SM_CHANNEL_STATS)")
    add("model_dir", default=None, help="default: SM_MODEL_DIR")
    add("output_data_dir", default=None, help="default: SM_OUTPUT_DATA_DIR")
    add("debug_hook_config", default=contract.DEBUG_HOOK_CONFIG, help="platform Debugger hook config")
    add("nproc_per_node", type=_positive_int, default=1, help="processes per host (spawned here)")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Hyperparameters from ``SM_HPS`` first, then the command line, so explicit flags win.
    Unknown arguments (``sagemaker_*`` launcher settings) are ignored, as SageMaker adds its own."""
    argv = list(sys.argv[1:] if argv is None else argv)
    env_argv = contract.hyperparameters_as_argv(contract.hyperparameters_from_env())
    args, unknown = build_parser().parse_known_args(env_argv + argv)
    if unknown:
        log.info("ignoring unknown arguments: %s", " ".join(unknown))
    args.train = args.train or contract.channel("train")
    args.valid = args.valid or contract.channel("valid")
    args.stats = args.stats or contract.channel("stats")
    args.model_dir = args.model_dir or contract.model_dir()
    args.output_data_dir = args.output_data_dir or contract.output_data_dir()
    args.collections = parse_collections(args.collections)
    return args


def hyperparameters_of(args: argparse.Namespace) -> dict[str, Any]:
    values = {name: getattr(args, name) for name in HYPERPARAMETERS}
    values["collections"] = list(values["collections"])
    return values


# --------------------------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class World:
    """This process's place among all training processes."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def plan_world(nproc_per_node: int) -> tuple[int, int, int] | None:
    """``(node_rank, num_nodes, nproc_per_node)`` when this script must set up DDP itself, or ``None``
    when a launcher already did (``WORLD_SIZE`` set) or there is one process in all.

    The rendezvous follows ``torch.distributed``'s env init: ``MASTER_ADDR`` (default: the first host
    of ``SM_HOSTS``) and ``MASTER_PORT`` (default 29500).
    """
    if "WORLD_SIZE" in os.environ:
        return None
    hosts = contract.hosts()
    if len(hosts) == 1 and nproc_per_node == 1:
        return None
    current = contract.current_host()
    if current not in hosts:
        raise ValueError(f"SM_CURRENT_HOST {current!r} is not in SM_HOSTS {hosts}")
    os.environ.setdefault("MASTER_ADDR", hosts[0] if len(hosts) > 1 else "127.0.0.1")
    if "MASTER_PORT" not in os.environ:
        os.environ["MASTER_PORT"] = str(DEFAULT_MASTER_PORT if len(hosts) > 1 else _free_port())
    return hosts.index(current), len(hosts), nproc_per_node


def world_from_env() -> World:
    """The world a launcher (torchrun, or :func:`_spawned`) described in ``RANK``/``WORLD_SIZE``."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size)))
    return World(rank, local_rank, world_size, local_world_size)


def device_for(world: World) -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", world.local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def init_distributed(world: World, device: torch.device) -> None:
    """Join the process group: nccl between GPUs, gloo on CPU."""
    if not world.distributed:
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, init_method="env://", rank=world.rank, world_size=world.world_size)
    # CPU processes on one host share its cores; more intra-op threads than cores only thrash.
    if device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world.local_world_size))


def all_reduce_sum(values: list[float], world: World, device: torch.device) -> list[float]:
    """Sum ``values`` over all processes (float64, so counts stay exact)."""
    if not world.distributed:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


# --------------------------------------------------------------------------------------------- training


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


class Trainer:
    """One process's training loop: epochs of train steps and a validation pass, early stopping."""

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
    ) -> None:
        self.args, self.world, self.device = args, world, device
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

    def fit(self) -> tuple[History, dict[str, torch.Tensor]]:
        """Train up to ``epochs``, stop after ``patience`` epochs without a lower valid loss, and return
        the history and the best epoch's weights."""
        history = History(world_size=self.world.world_size)
        best_state = _cpu_state_dict(self.model)
        since_best = 0
        started = time.perf_counter()
        for epoch in range(1, self.args.epochs + 1):
            epoch_started = time.perf_counter()
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
                seconds=round(time.perf_counter() - epoch_started, 3),
                train_samples=int(train_count),
                valid_samples=int(valid_count),
            )
            history.epochs.append(result)
            if self.world.is_main:
                print(result.metric_line(), flush=True)
                print(
                    f"epoch={epoch} train_accuracy={result.train_accuracy:.4f} seconds={result.seconds:.1f}",
                    flush=True,
                )
            if not math.isfinite(result.train_loss) or not math.isfinite(result.valid_loss):
                raise FloatingPointError(f"epoch {epoch}: loss is not finite (lr {self.args.lr} too high?)")
            if result.valid_loss < history.best_valid_loss:
                history.best_epoch = epoch
                history.best_valid_loss = result.valid_loss
                history.best_valid_accuracy = result.valid_accuracy
                best_state = _cpu_state_dict(self.model)
                since_best = 0
            else:
                since_best += 1
                if since_best >= self.args.patience and epoch < self.args.epochs:
                    history.stopped_early = True
                    if self.world.is_main:
                        print(
                            f"early stopping after epoch {epoch}: best epoch {history.best_epoch}", flush=True
                        )
                    break
        history.total_seconds = round(time.perf_counter() - started, 3)
        return history, best_state


def _cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy in the default memory format, so the file loads anywhere."""
    return {
        name: tensor.detach().to("cpu", copy=True).contiguous() for name, tensor in model.state_dict().items()
    }


# --------------------------------------------------------------------------------------------- outputs


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def sibling_imports(source: Path) -> set[str]:
    """Sibling modules that ``source`` imports (``from . import x``, ``import x``, ``from x import y``)."""
    local = {path.stem for path in source.parent.glob("*.py")}
    found: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module is None:
                found.update(alias.name for alias in node.names)
            elif node.module:
                found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
    return found & local


def write_serving_code(code_dir: Path, source_dir: Path = HERE) -> list[str]:
    """Copy ``inference.py``, the sibling modules it imports (transitively) and ``requirements.txt``
    into ``code_dir``: the SageMaker PyTorch serving container runs ``code/inference.py`` from the model
    archive, so the registered model needs no repack step. Nothing is copied when the handler is absent."""
    entry = source_dir / SERVING_ENTRY
    if not entry.is_file():
        log.warning("%s not found: the model has no serving code", entry)
        return []
    wanted, pending = {entry.stem}, [entry]
    while pending:
        for name in sibling_imports(pending.pop()) - wanted:
            wanted.add(name)
            pending.append(source_dir / f"{name}.py")
    code_dir.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in sorted(wanted):
        shutil.copy2(source_dir / f"{name}.py", code_dir / f"{name}.py")
        copied.append(f"{name}.py")
    if (source_dir / REQUIREMENTS).is_file():
        shutil.copy2(source_dir / REQUIREMENTS, code_dir / REQUIREMENTS)
        copied.append(REQUIREMENTS)
    return copied


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


# --------------------------------------------------------------------------------------------- main


def run(args: argparse.Namespace, world: World) -> History:
    """Train in this process (one of ``world``); rank 0 writes every output."""
    device = device_for(world)
    init_distributed(world, device)
    try:
        return _run(args, world, device)
    finally:
        if world.distributed and dist.is_initialized():
            dist.destroy_process_group()


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
    loader_options = {"rank": world.rank, "world_size": world.world_size, "num_workers": args.num_workers}
    train_loader = dogdata.make_loader(
        args.train, classes, args.image_size, mean, std, batch_size=args.batch_size, shuffle=True,
        seed=args.seed, augment=True, **loader_options,
    )  # fmt: skip
    valid_loader = dogdata.make_loader(
        args.valid, classes, args.image_size, mean, std, batch_size=args.batch_size, shuffle=False,
        **loader_options,
    )  # fmt: skip
    if len(train_loader) == 0:
        raise ValueError(f"train split {args.train} has no images for rank {world.rank}")
    output_dir = Path(args.output_data_dir)
    criterion = nn.CrossEntropyLoss()
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
    profiler = TrainingProfiler(
        output_dir / "profiler",
        interval_ms=args.profiler_interval_ms,
        enabled=args.profiler and world.is_main,
        meta={
            "architecture": args.architecture,
            "batch_size": args.batch_size,
            "num_workers": args.num_workers,
            "image_size": args.image_size,
            "device": str(device),
            "world_size": world.world_size,
            "torch_threads": torch.get_num_threads(),
        },
    )
    trainer = Trainer(args, world, device, model, criterion, train_loader, valid_loader, debugger, profiler)
    try:
        with profiler:
            profiler.update_meta(init_seconds=round(time.perf_counter() - init_started, 3))
            history, best_state = trainer.fit()
    finally:
        debugger.close()
    if world.is_main:
        save_outputs(args, best_state, history, classes, mean, std)
        log.info("best epoch %d, valid accuracy %.4f", history.best_epoch, history.best_valid_accuracy)
    return history


def _spawned(local_rank: int, args: argparse.Namespace, node_rank: int, nodes: int, nproc: int) -> History:
    """Entry of each process this script spawns for ``--nproc_per_node``: torchrun's environment."""
    rank = node_rank * nproc + local_rank
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(local_rank),
        WORLD_SIZE=str(nodes * nproc),
        LOCAL_WORLD_SIZE=str(nproc),
    )
    contract.configure_logging()
    return run(args, world_from_env())


def main(argv: Sequence[str] | None = None) -> History | None:
    """Parse, then train here or in ``nproc_per_node`` spawned processes. Returns the history when
    training ran in this process (``None`` after spawning)."""
    contract.configure_logging()
    args = parse_args(argv)
    plan = plan_world(args.nproc_per_node)
    if plan is None:
        return run(args, world_from_env())
    node_rank, num_nodes, nproc = plan
    if nproc == 1:  # one process per host: this one
        return _spawned(0, args, node_rank, num_nodes, nproc)
    import torch.multiprocessing as mp

    mp.spawn(_spawned, args=(args, node_rank, num_nodes, nproc), nprocs=nproc, join=True)
    return None


if __name__ == "__main__":
    main()
