"""The few lines the hand-written loop needs to run under ``torchrun`` or SLURM's ``srun``, on PyTorch's own DDP.

``torchrun --nproc_per_node N train_manual.py`` starts N processes and gives each its RANK,
LOCAL_RANK, WORLD_SIZE and the address of rank 0 in the environment. ``srun`` starts one task per
device and describes them in SLURM's own variables, which ``env_from_slurm`` translates. Lightning reads
the same variables when it runs under torchrun or SLURM, and sets them itself when it launches DDP.
"""

import os
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from lightning.fabric.plugins.environments import SLURMEnvironment

T = TypeVar("T")


def init_from_env(timeout_s: int = 600) -> torch.device:
    """Join the process group that torchrun describes, if any, and return this process's device.

    NCCL on GPUs, gloo on CPUs. A collective that waits longer than ``timeout_s`` for the other ranks
    raises instead of waiting forever (``--dist_timeout``).

    Once the group exists, the DataModule's samplers shard by rank. A group
    that exists already (Lightning made it, for a Trainer run earlier in this process) is reused. The entry points
    take it down with ``leave_process_group``.
    """
    env_from_slurm()
    device = torch.device("cuda", local_rank()) if torch.cuda.is_available() else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if int(os.environ.get("WORLD_SIZE", 1)) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timedelta(seconds=timeout_s))
    return device


def env_from_slurm() -> None:
    """Under ``srun`` without torchrun, the variables torchrun would set, from SLURM's: as Lightning reads them.

    SLURM_PROCID, SLURM_NTASKS and SLURM_LOCALID give the rank, the world size and the local rank; rank 0
    is on the first node of SLURM_NODELIST, at MASTER_PORT (or a port derived from the job's id).
    """
    if "RANK" in os.environ or not SLURMEnvironment.detect():
        return  # torchrun's variables (srun may start torchrun), or no srun: nothing to translate
    slurm = SLURMEnvironment()
    os.environ.update(
        RANK=str(slurm.global_rank()),
        WORLD_SIZE=str(slurm.world_size()),
        LOCAL_RANK=str(slurm.local_rank()),
        MASTER_ADDR=slurm.main_address,
        MASTER_PORT=str(slurm.main_port),
    )


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def local_rank() -> int:
    """This process's index on its machine (downloads happen once per machine)."""
    return int(os.environ.get("LOCAL_RANK", 0))


def from_rank_zero(value: T) -> T:
    """Rank 0's ``value`` on every rank (the run directory, which only rank 0 creates)."""
    if not dist.is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@contextmanager
def local_rank_zero_first() -> Iterator[None]:
    """Rank 0 of each machine runs the block first (a download), the other ranks once it is done: what
    Fabric's ``rank_zero_first(local=True)`` does."""
    if local_rank() != 0:
        barrier()
    yield
    if local_rank() == 0:
        barrier()


def barrier() -> None:
    """Wait until every rank gets here (rank 0 has written a checkpoint the others read next)."""
    if dist.is_initialized():
        dist.barrier()


def leave_process_group() -> None:
    """Leave the process group together: every rank waits for the others, then takes it down.

    Left to the interpreter's exit (Lightning's own choice), a rank can take its end down while a peer
    still talks to it, and gloo then aborts the process now and then ("terminate called without an
    active exception"). A no-op in a single process.
    """
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


# What a stalled rank waited on: the entries print it as their one error line (errors.one_line_errors).
def describe_stall(error: RuntimeError) -> str | None:
    """What a stalled rank waited on, from the timeout error of a loader or of a collective; else None."""
    message = " ".join(str(error).split())
    if "DataLoader timed out" in message:
        return f"{message}: a loader worker sent no batch in time (--data.worker_timeout); it is stuck or too slow"
    if "Timed out" in message:
        return f"waited in {collective_of(error)} for the other ranks in vain ({message}); see --dist_timeout"
    if "Connection closed by peer" in message or "Connection reset by peer" in message:  # the peer process died
        return f"another rank left during {collective_of(error)} ({message}); its own error line says why"
    return None


def collective_of(error: BaseException) -> str:
    """The collective call that ``error`` came from: the innermost torch.distributed call, or DDP's backward."""
    frames = [frame.name for frame in traceback.extract_tb(error.__traceback__)]
    collectives = [name for name in frames if name in COLLECTIVES]
    if collectives:
        return collectives[-1]
    return "backward (DDP's gradient all-reduce)" if "backward" in frames else frames[-1]


COLLECTIVES = {"barrier", "all_reduce", "all_gather", "all_gather_object", "broadcast", "broadcast_object_list"}


def with_dist_timeout(strategy: Any, seconds: int, registry: dict) -> Any:
    """A DDP strategy named by its string ("ddp" and its variants) built with a process-group timeout.

    ``registry`` is Lightning's (the Trainer) or Fabric's; each names its own ``DDPStrategy``.
    """
    registered = registry[strategy] if isinstance(strategy, str) and strategy in registry else {}
    if registered.get("strategy", type(None)).__name__ != "DDPStrategy":
        return strategy
    return registered["strategy"](timeout=timedelta(seconds=seconds), **registered["init_params"])


def fabric_arguments(trainer: Any, dist_timeout: int) -> dict[str, Any]:
    """Fabric's arguments from the --trainer options: devices, nodes, strategy (with --dist_timeout), precision."""
    from lightning.fabric.strategies import STRATEGY_REGISTRY

    return {
        "accelerator": trainer.accelerator,
        "devices": trainer.devices,
        "num_nodes": trainer.num_nodes,
        "strategy": with_dist_timeout(trainer.strategy, dist_timeout, STRATEGY_REGISTRY),
        "precision": trainer.precision,
    }
