"""Checkpoints: the hand-written loops' own (what one holds, when it is written, the resume from it), writing
any checkpoint safely, and reading the network's weights back from a checkpoint of any rung."""

import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .recipe import FiniteLossCheck


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable or of another model; the entry points print it as one line."""


def save_checkpoint(state: dict, path: Path) -> None:
    """Write to a temporary file, then rename: a kill mid-save never leaves a corrupt checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def rng_state() -> dict[str, torch.Tensor | list[torch.Tensor]]:
    """The random state that training draws on (dropout; augmentation in the main process), to save."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def find_checkpoint(ckpt_path: str, run_root: str | Path, rung: str) -> Path:
    """``last`` means the newest last checkpoint of this rung's runs under run_root; anything else is a file."""
    if ckpt_path != "last":
        return Path(ckpt_path)
    suffix = ".ckpt" if rung == "trainer" else ".pt"
    found = sorted(Path(run_root).glob(f"*-{rung}*/checkpoints/last{suffix}"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise CheckpointError(f"--ckpt_path last: no {rung} run with checkpoints/last{suffix} under {run_root}")
    return found[-1]


def read_checkpoint(path: str | Path, trusted: bool = False) -> dict:
    """Load a checkpoint of plain tensors and numbers (``weights_only=True``: no code is unpickled).

    ``trusted`` (``--trust_checkpoint``) unpickles anything, which can run code from the file: only for
    checkpoints of your own that hold other Python objects.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: pass the path of a .ckpt (Lightning) or .pt (manual) file")
    try:
        return torch.load(path, map_location="cpu", weights_only=not trusted)
    except pickle.UnpicklingError as error:
        if "Weights only load failed" not in str(error):
            raise CheckpointError(f"{path} is truncated or not a checkpoint (UnpicklingError)") from error
        raise CheckpointError(
            f"{path} holds Python objects besides tensors, which a safe load refuses. Only if you trust where it "
            "came from, pass --trust_checkpoint true: unpickling can run code (docs/design_decisions.md)"
        ) from error
    except (RuntimeError, EOFError, zipfile.BadZipFile) as error:
        raise CheckpointError(f"{path} is truncated or not a checkpoint ({error.__class__.__name__})") from error


def network_weights(checkpoint: dict) -> dict[str, torch.Tensor]:
    """The network's state dict, from a manual checkpoint ("net") or a Lightning one ("state_dict", "net." keys)."""
    if "net" in checkpoint:
        return checkpoint["net"]
    if "state_dict" in checkpoint:
        return {k.removeprefix("net."): v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
    raise CheckpointError("the checkpoint holds no network weights (neither 'net' nor 'state_dict')")


def load_weights(net: nn.Module, path: str | Path, trusted: bool = False) -> None:
    """Load the network weights of a checkpoint from any rung into ``net``."""
    load_network(net, network_weights(read_checkpoint(path, trusted)), path)


def load_network(net: nn.Module, weights: dict[str, torch.Tensor], source: str | Path) -> None:
    """``weights`` into ``net``; the weights of another network are one line that names ``source``."""
    try:
        net.load_state_dict(weights)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[1:2] or [str(error)]
        raise CheckpointError(
            f"{source} holds weights of another model shape ({first[0].strip()}): "
            "pass the --config of the run that wrote it"
        ) from error


@dataclass
class Progress:
    """Where a hand-written loop stands: its epoch, the batches done in that epoch, the optimizer steps done."""

    epoch: int = 0
    batch: int = 0
    steps: int = 0


class LoopCheckpoint:
    """A hand-written loop's checkpoint: what it holds, when it is written, and the resume from it.

    In run_dir/checkpoints: last.pt after every epoch and every ``save_every`` optimizer steps (0: at epoch
    ends only, as the Trainer), best.pt when val/acc improves strictly, as ModelCheckpoint does. Only the
    ``writer`` (rank 0) writes. The NaN check lives here: no checkpoint is written before the last loss has
    been looked at.
    """

    def __init__(self, run_dir: Path, net, optimizer, scheduler, train_metrics, save_every: int, writer: bool):
        self.directory, self.save_every, self.writer = run_dir / "checkpoints", save_every, writer
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
        """The NaN check (a step late: no GPU wait), and last.pt every ``save_every`` steps, mid-epoch."""
        self.loss_check.check(loss, progress.steps)
        if stepped and self.save_every and progress.steps % self.save_every == 0:
            self.save("last.pt", progress)

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


def read_loop_checkpoint(ckpt_path: str | None, run_root: str | Path, rung: str, trusted: bool) -> dict | None:
    """The checkpoint to resume a hand-written loop from (``last``: the newest), read before anything is written."""
    if not ckpt_path:
        return None
    state = read_checkpoint(find_checkpoint(ckpt_path, run_root, rung), trusted)
    if "optimizer" not in state:
        raise CheckpointError(f"{ckpt_path} is not a hand-written loop's checkpoint: resume .ckpt with train.py")
    return state
