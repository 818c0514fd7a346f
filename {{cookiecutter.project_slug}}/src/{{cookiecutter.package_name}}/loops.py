"""What the two hand-written loops (train_manual.py and train_fabric.py) share around their six steps.

Evaluation, what a checkpoint of theirs holds, and the bookkeeping of a metrics row: written once here,
so the two loops differ only in the lines where Fabric takes a step over.
"""

import torch
from torch import nn
from torch.utils.data import DataLoader

from .checkpoints import rng_state
from .cli import ConfigError, ProjectCLI
from .distributed import rank
from .shared import Metrics, loss_fn


@torch.no_grad()  # no graph, no gradients: evaluation only reads the weights
def evaluate(
    net: nn.Module, loader: DataLoader, device: torch.device, metrics: Metrics, autocast: torch.dtype | None = None
) -> dict[str, float]:
    """Mean loss and accuracy of ``net`` over ``loader`` (this rank's shard, synced by ``metrics``)."""
    net.eval()
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            logits = net(x)
            loss = loss_fn(logits, y)
        metrics.update(loss, logits, y)
    return compute_and_reset(metrics)


def checkpoint(net, optimizer, scheduler, train_metrics, next_epoch: int, next_batch: int, steps: int) -> dict:
    """Everything the next step depends on, and where it is: a resumed run takes the very steps this one would."""
    return {
        "next_epoch": next_epoch,
        "next_batch": next_batch,
        "steps": steps,
        "net": net.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "train_metrics": train_metrics.state_dict(),  # the epoch's running sums, for a resume mid-epoch
        "rng_state": rng_state(),  # dropout draws on it
    }


def compute_and_reset(metrics: Metrics) -> dict[str, float]:
    values = {name: value.item() for name, value in metrics.compute().items()}
    metrics.reset()
    return values


def prefixed(stage: str, values: dict[str, float]) -> dict[str, float]:
    return {f"{stage}/{name}": value for name, value in values.items()}


def progress_bar(cli: ProjectCLI) -> bool:
    """Whether this process draws the progress bar: rank 0, unless --trainer.enable_progress_bar false."""
    return cli.config.trainer.enable_progress_bar is not False and rank() == 0


def autocast_dtype(precision: str | int | None) -> torch.dtype | None:
    """The autocast dtype of a Trainer precision flag: None runs in float32."""
    if precision in (None, 32, "32", "32-true"):
        return None
    if precision == "bf16-mixed":
        return torch.bfloat16
    raise ConfigError(
        f"the hand-written loops run --trainer.precision 32-true or bf16-mixed, not {precision}: "
        "16-mixed also needs a GradScaler, which they leave out"
    )
