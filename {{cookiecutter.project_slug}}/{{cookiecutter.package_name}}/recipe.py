"""What every way of training must build identically: the loss, the optimizer, the scheduler, the metrics.

The LightningModule and the hand-written loop both call these functions, so each definition exists
once. Change the optimizer here and every way of training changes with it.
"""

from collections.abc import Iterable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.lr_scheduler import LRScheduler
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from .errors import NonFiniteLossError

SchedulerName = Literal["cosine", "step", "none"]


def loss_fn(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the batch. logits: (B, num_classes), targets: (B,)."""
    return F.cross_entropy(logits, targets)


def build_optimizer(
    params: Iterable[nn.Parameter], lr: float, weight_decay: float, scheduler: SchedulerName, epochs: int
) -> tuple[torch.optim.Optimizer, LRScheduler | None]:
    """AdamW, and an LR scheduler stepped once per epoch (or None)."""
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if scheduler == "cosine":
        return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
    if scheduler == "step":
        return optimizer, torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1)
    return optimizer, None


class Metrics(nn.Module):
    """Running mean loss and accuracy of one stage (train, val or test).

    Updated every step, computed and reset once per epoch. Neither update waits on the device:
    the NaN check and the argument validation, which would, are turned off.
    """

    def __init__(self, num_classes: int, persistent: bool = False) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.loss = MeanMetric(nan_strategy="disable")
        self.acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)  # plain accuracy
        # persistent: the running sums go into state_dict(), so a run resumed mid-epoch goes on with them
        self.loss.persistent(persistent)
        self.acc.persistent(persistent)

    def update(self, loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        # Weighting by the batch size makes the epoch loss the mean over samples, last batch included.
        self.loss.update(loss.detach(), weight=targets.shape[0])
        self.acc.update(logits.detach(), targets)

    def compute(self) -> dict[str, torch.Tensor]:
        return {"loss": self.loss.compute(), "acc": self.acc.compute()}

    def reset(self) -> None:
        self.loss.reset()
        self.acc.reset()

    def compute_and_reset(self) -> dict[str, float]:
        """The epoch's values, {"loss": ..., "acc": ...}, and a clean start for the next epoch."""
        values = {name: value.item() for name, value in self.compute().items()}
        self.reset()
        return values


def prefixed(stage: str, values: dict[str, float] | None) -> dict[str, float]:
    """The names every rung logs a stage's values under: "train/loss", "val/acc", ..."""
    return {f"{stage}/{name}": value for name, value in (values or {}).items()}


class FiniteLossCheck:
    """Stops training at the first loss that is NaN or inf, and names its step.

    Each loss is looked at one step late, when the next step has been queued: reading it then does not
    make a GPU wait for the step just launched. ``flush`` looks at the last one now; call it before
    anything is saved, so no checkpoint ever holds weights that a NaN loss has spoiled.
    """

    def __init__(self) -> None:
        self.pending: tuple[torch.Tensor, int] | None = None

    def check(self, loss: torch.Tensor, step: int) -> None:
        """``step`` counts optimizer steps from 1, as Lightning's ``global_step`` does once a step is done."""
        self.flush()
        self.pending = (loss.detach(), step)

    def flush(self) -> None:
        pending, self.pending = self.pending, None
        if pending is not None and not torch.isfinite(pending[0]):
            loss, step = pending
            raise NonFiniteLossError(
                f"the loss is {loss.item()} at step {step}; the run stopped there, and no checkpoint was written "
                "after it. Lower --model.lr, look for NaN or inf in the data, then resume from an earlier "
                "checkpoint with --ckpt_path"
            )
