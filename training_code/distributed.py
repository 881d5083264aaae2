"""Where a training process sits among all of them, and starting the processes of one host.

DDP starts when ``SM_HOSTS`` lists several hosts, ``--nproc_per_node`` is above 1 (the processes are
spawned here, torchrun style), or a launcher such as torchrun already set ``WORLD_SIZE``. The rendezvous
follows ``torch.distributed``'s env init: ``MASTER_ADDR`` (default: the first host of ``SM_HOSTS``) and
``MASTER_PORT`` (default 29500; SageMaker's training toolkit sets 7777 itself).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

if __package__:  # imported as training_code.distributed (tests, the local engine's in-process runs)
    from . import contract
else:  # inside the training container: the source dir is the working directory
    import contract  # type: ignore[no-redef]

DEFAULT_MASTER_PORT = 29500
Result = TypeVar("Result")


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
    when a launcher already did (``WORLD_SIZE`` set) or there is one process in all."""
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
    """The world a launcher (torchrun, or :func:`launch`) described in ``RANK``/``WORLD_SIZE``."""
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


def leave_distributed(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: list[float], world: World, device: torch.device) -> list[float]:
    """Sum ``values`` over all processes (float64, so counts stay exact)."""
    if not world.distributed:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def _spawned(
    local_rank: int, target: Callable[[Any, World], Result], args: Any, node_rank: int, nodes: int, nproc: int
) -> Result:
    """Entry of each process :func:`launch` spawns: torchrun's environment, then ``target``."""
    rank = node_rank * nproc + local_rank
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(local_rank),
        WORLD_SIZE=str(nodes * nproc),
        LOCAL_WORLD_SIZE=str(nproc),
    )
    contract.configure_logging()
    return target(args, world_from_env())


def launch(target: Callable[[Any, World], Result], args: Any, nproc_per_node: int) -> Result | None:
    """Run ``target(args, world)`` here, or in ``nproc_per_node`` spawned processes. Returns its result
    when it ran in this process (``None`` after spawning). ``target`` must be a module-level function."""
    plan = plan_world(nproc_per_node)
    if plan is None:
        return target(args, world_from_env())
    node_rank, num_nodes, nproc = plan
    if nproc == 1:  # one process per host: this one
        return _spawned(0, target, args, node_rank, num_nodes, nproc)
    import torch.multiprocessing as mp

    mp.spawn(_spawned, args=(target, args, node_rank, num_nodes, nproc), nprocs=nproc, join=True)
    return None
