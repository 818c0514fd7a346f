"""The few lines the hand-written loop needs to run under ``torchrun``, on PyTorch's own DDP.

``torchrun --nproc_per_node N train_manual.py`` starts N processes and gives each its RANK,
LOCAL_RANK, WORLD_SIZE and the address of rank 0 in the environment. Lightning reads the same
variables when it runs under torchrun or SLURM, and sets them itself when it launches DDP.
"""

import os
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist
from lightning.fabric.utilities.seed import reset_seed

T = TypeVar("T")


def init_from_env(timeout_s: int = 600) -> torch.device:
    """Join the process group that torchrun describes, if any, and return this process's device.

    NCCL on GPUs, gloo on CPUs. A collective that waits longer than ``timeout_s`` for the other ranks
    raises instead of waiting forever (``--dist_timeout``).

    Once the group exists, the DataModule's samplers shard by rank. A group
    that exists already (Lightning made it, in compare.py under torchrun) is reused. The entry points
    take it down with ``leave_process_group``.
    """
    device = torch.device("cuda", local_rank()) if torch.cuda.is_available() else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if int(os.environ.get("WORLD_SIZE", 1)) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timedelta(seconds=timeout_s))
    if dist.is_initialized():
        # Every rank restarts its random state from the run's seed once the group is up, as Lightning's
        # DDP setup does (reset_seed): dropout then draws the same masks in both paths.
        reset_seed()
    return device


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
