"""Writing checkpoints safely and reading weights back from either path's checkpoints."""

import os
import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn


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


def resolve(ckpt_path: str, run_root: str | Path, path: str) -> Path:
    """``last`` means the newest last checkpoint of this path under run_root; anything else is a file path."""
    if ckpt_path != "last":
        return Path(ckpt_path)
    suffix = ".ckpt" if path == "lightning" else ".pt"
    found = sorted(Path(run_root).glob(f"*-{path}*/checkpoints/last{suffix}"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise CheckpointError(f"--ckpt_path last: no {path} run with checkpoints/last{suffix} under {run_root}")
    return found[-1]


def read_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint of plain tensors and numbers (``weights_only=True``: no code is unpickled)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: pass the path of a .ckpt (Lightning) or .pt (manual) file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as error:
        raise CheckpointError(f"{path} is truncated or not a checkpoint ({error.__class__.__name__})") from error


def network_weights(checkpoint: dict) -> dict[str, torch.Tensor]:
    """The network's state dict, from a manual checkpoint ("net") or a Lightning one ("state_dict", "net." keys)."""
    if "net" in checkpoint:
        return checkpoint["net"]
    if "state_dict" in checkpoint:
        return {k.removeprefix("net."): v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
    raise CheckpointError("the checkpoint holds no network weights (neither 'net' nor 'state_dict')")


def load_weights(net: nn.Module, path: str | Path) -> None:
    """Load the network weights of a checkpoint from either path into ``net``."""
    try:
        net.load_state_dict(network_weights(read_checkpoint(path)))
    except RuntimeError as error:
        if isinstance(error, CheckpointError):
            raise
        first = str(error).strip().splitlines()[1:2] or [str(error)]
        raise CheckpointError(
            f"{path} holds weights of another model shape ({first[0].strip()}): "
            "pass the --config of the run that wrote it"
        ) from error
