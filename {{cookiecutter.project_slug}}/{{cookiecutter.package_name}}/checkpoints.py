"""Checkpoints of any rung: writing one safely, finding and reading one, and loading the network's weights
from it. The hand-written loops' own checkpoint, and their resume, are ``loop_checkpoint.py``'s."""

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import CheckpointError


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


def find_checkpoint(config: Any, rung: str) -> Path | None:
    """The checkpoint that ``config.ckpt_path`` names; None when it names none.

    ``last`` means the newest last checkpoint of this rung's runs under ``config.run_root``, of the runs named
    ``config.run_name`` when there is one (a requeued job finds its own); anything else is a file.
    """
    if not config.ckpt_path or config.ckpt_path != "last":
        return Path(config.ckpt_path) if config.ckpt_path else None
    suffix, runs = (".ckpt" if rung == "trainer" else ".pt"), f"{config.run_name or '*'}-{rung}*"
    found = sorted(Path(config.run_root).glob(f"{runs}/checkpoints/last{suffix}"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise CheckpointError(f"--ckpt_path last: no run {runs} with checkpoints/last{suffix} under {config.run_root}")
    return found[-1]


def run_dir_of(checkpoint: Path | None) -> Path | None:
    """The run directory that holds ``checkpoint`` (<run_dir>/checkpoints/<file>, beside its config.yaml)."""
    run_dir = checkpoint.resolve().parent.parent if checkpoint is not None else None
    return run_dir if run_dir is not None and (run_dir / "config.yaml").is_file() else None


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
