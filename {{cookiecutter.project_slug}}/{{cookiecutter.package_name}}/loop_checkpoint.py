"""The hand-written loops' checkpoint: what it holds, when it is written, and the resume from it.

It holds everything the next step depends on and where the loop stands, so a resumed run takes the very
steps that the run it continues would have taken (the Trainer's last.ckpt does the same for train.py).
"""

from dataclasses import dataclass
from typing import Any

import torch

from .checkpoints import (
    find_checkpoint,
    load_network,
    load_weights,
    read_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from .errors import CheckpointError
from .recipe import FiniteLossCheck


@dataclass
class Progress:
    """Where a hand-written loop stands: its epoch, the batches done in that epoch, the optimizer steps done."""

    epoch: int = 0
    batch: int = 0
    steps: int = 0


class LoopCheckpoint:
    """A hand-written loop's checkpoint.

    In run_dir/checkpoints: last.pt after every epoch and every ``save_every`` optimizer steps (0: at epoch
    ends only, as the Trainer), best.pt when val/acc improves strictly, as ModelCheckpoint does. Only the
    ``writer`` (rank 0) writes. The NaN check lives here: no checkpoint is written before the last loss has
    been looked at. So does the answer to a stop signal (``stop``, a ``StopSignal``): after a batch that
    stepped, last.pt with the batch's place in the epoch, then ``Stopped``.
    """

    def __init__(self, run_dir, net, optimizer, scheduler, train_metrics, save_every: int, writer: bool, stop=None):
        self.directory, self.save_every, self.writer, self.stop = run_dir / "checkpoints", save_every, writer, stop
        self.net, self.optimizer, self.scheduler, self.train_metrics = net, optimizer, scheduler, train_metrics
        self.loss_check = FiniteLossCheck()
        self.best_acc = -1.0  # best.pt starts afresh in a resumed run, as ModelCheckpoint's does

    def state(self, progress: Progress) -> dict:
        """Everything the next step depends on, and where it is: a resumed run takes the very steps this one would."""
        return {
            "next_epoch": progress.epoch,
            "next_batch": progress.batch,
            "steps": progress.steps,
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "train_metrics": self.train_metrics.state_dict(),  # the epoch's running sums, for a resume mid-epoch
            "rng_state": rng_state(),  # dropout draws on it
        }

    def resume(self, state: dict | None) -> Progress:
        """Load ``state`` (from ``read_loop_checkpoint``) and return where it stopped; ``None``: the start."""
        if state is None:
            return Progress()
        load_network(self.net, state["net"], "the checkpoint to resume")
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.train_metrics.load_state_dict(state["train_metrics"])
        set_rng_state(state["rng_state"])  # last: nothing may draw between this and the next step
        return Progress(state["next_epoch"], state["next_batch"], state["steps"])

    def after_batch(self, loss: torch.Tensor, progress: Progress, stepped: bool) -> None:
        """The NaN check (a step late: no GPU wait), last.pt every ``save_every`` steps, mid-epoch, and a stop
        signal's save and stop (between two optimizer steps only: no gradient is half accumulated)."""
        self.loss_check.check(loss, progress.steps)
        if stepped and self.save_every and progress.steps % self.save_every == 0:
            self.save("last.pt", progress)
        if stepped and self.stop is not None:
            self.stop.stop_if_asked(progress.epoch, progress.batch, lambda: self.save("last.pt", progress))

    def end_epoch(self, progress: Progress, val: dict[str, float] | None) -> None:
        """Move ``progress`` to the next epoch; write last.pt, and best.pt when val/acc improved."""
        progress.epoch, progress.batch = progress.epoch + 1, 0
        extra = {"val_acc": val["acc"]} if val else {}
        self.save("last.pt", progress, extra)
        if val and val["acc"] > self.best_acc:
            self.save("best.pt", progress, extra)
            self.best_acc = val["acc"]

    def save(self, name: str, progress: Progress, extra: dict | None = None) -> None:
        self.loss_check.flush()  # never save weights that a NaN loss has spoiled
        if self.writer:
            save_checkpoint(self.state(progress) | (extra or {}), self.directory / name)

    def load_best(self) -> None:
        """The best epoch's weights, as Trainer.test(ckpt_path="best"); with no validation, the last ones."""
        if (self.directory / "best.pt").is_file():
            load_weights(self.net, self.directory / "best.pt")


def read_loop_checkpoint(config: Any, rung: str) -> dict | None:
    """The checkpoint that --ckpt_path names, to resume a hand-written loop from (``last``: the newest), read
    before anything is written; None without --ckpt_path."""
    path = find_checkpoint(config, rung)
    if path is None:
        return None
    state = read_checkpoint(path, config.trust_checkpoint)
    if "optimizer" not in state:
        raise CheckpointError(f"{path} is not a hand-written loop's checkpoint: resume .ckpt with train.py")
    return state
