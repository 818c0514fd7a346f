"""The LightningModule: the network plus the loss, the metrics and the optimizer.

It holds no layers of its own. ``net`` is a plain ``nn.Module`` from ``model.py`` (or any other), and
the hand-written loop trains that same object without this wrapper.
"""

import warnings

import lightning as L
import torch
from jsonargparse.typing import NonNegativeFloat, PositiveFloat, PositiveInt
from lightning.pytorch.utilities.warnings import PossibleUserWarning
from torch import nn

from .checkpoints import rng_state, set_rng_state
from .recipe import FiniteLossCheck, Metrics, SchedulerName, build_optimizer, loss_fn, prefixed

STAGES = ("train", "val", "test")
# Under DDP Lightning suggests sync_dist=True for epoch-level values. Ours come from torchmetrics'
# compute(), which has summed the states of all ranks already; averaging them again would only add work.
warnings.filterwarnings("ignore", message=r"It is recommended to use `self.log\(", category=PossibleUserWarning)


class LitClassifier(L.LightningModule):
    """Trains ``net`` to classify images with cross-entropy.

    Args:
        net: the network; its class and arguments come from the config (``model.net``).
        num_classes: the number of classes, linked from the DataModule by the CLI.
        lr: AdamW's learning rate.
        weight_decay: AdamW's decoupled weight decay.
        scheduler: the per-epoch LR schedule: ``cosine``, ``step`` or ``none``.
        compile: compile ``net`` with ``torch.compile`` (in place, so every rung train it compiled and
            its checkpoints keep their keys). The first steps are slower while it compiles.
    """

    def __init__(
        self,
        net: nn.Module,
        num_classes: PositiveInt = 10,
        lr: PositiveFloat = 2e-3,
        weight_decay: NonNegativeFloat = 1e-4,
        scheduler: SchedulerName = "cosine",
        compile: bool = False,
    ) -> None:
        super().__init__()
        # The network's weights travel in the state dict; under the CLI its class and arguments
        # are saved too, so load_from_checkpoint can rebuild it.
        self.save_hyperparameters(ignore=["net"])
        self.net = net
        if compile:
            net.compile()  # the nn.Module, not this LightningModule: the manual loop trains it compiled too
        # "train" cannot be a ModuleDict key (it is nn.Module.train), hence one attribute per stage. The train
        # sums are saved, as in the loops: an epoch resumed mid-way logs the figures of the whole epoch.
        for stage in STAGES:
            setattr(self, f"{stage}_metrics", Metrics(num_classes, persistent=stage == "train"))
        self.loss_check = FiniteLossCheck()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def configure_optimizers(self):
        hp = self.hparams
        optimizer, scheduler = build_optimizer(
            self.net.parameters(), hp.lr, hp.weight_decay, hp.scheduler, self.trainer.max_epochs
        )
        if scheduler is None:
            return optimizer
        lr_scheduler = {"scheduler": scheduler, "interval": "epoch"}  # stepped after each epoch's validation
        return {"optimizer": optimizer, "lr_scheduler": lr_scheduler}

    # A NaN or inf loss stops the run with its step number; the check comes one step late, and before any save.
    def on_train_batch_end(self, outputs: dict[str, torch.Tensor], batch, batch_idx: int) -> None:
        self.loss_check.check(outputs["loss"], self.global_step)

    # The random state travels in the checkpoint: a resumed run draws the dropout masks it would have drawn.
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        self.loss_check.flush()
        checkpoint["rng_state"] = rng_state()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "rng_state" in checkpoint:
            set_rng_state(checkpoint["rng_state"])

    # Metrics are updated every step and logged once per epoch: no self.log and no host sync per step.
    def on_train_epoch_end(self) -> None:
        self.loss_check.flush()
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def _shared_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch  # x: (B, C, H, W), y: (B,)
        logits = self(x)  # (B, num_classes)
        loss = loss_fn(logits, y)
        getattr(self, f"{stage}_metrics").update(loss, logits, y)
        return loss

    def _log_epoch(self, stage: str) -> None:
        metrics = getattr(self, f"{stage}_metrics")
        if not metrics.loss.update_called:
            return  # a run resumed from an epoch's end checkpoint finishes that epoch without a batch
        self.log_dict(prefixed(stage, metrics.compute_and_reset()), prog_bar=stage != "train")
