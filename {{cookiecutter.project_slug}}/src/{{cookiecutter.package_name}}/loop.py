"""The hand-written training loop: what Lightning's Trainer does for you, spelled out.

It trains the same ``nn.Module`` on batches from the same DataModule with the loss, optimizer,
scheduler and metrics from ``recipe.py``. Every iteration is the six steps of the recipe, one line
each; docs/six_steps.md shows where Lightning performs each of them.
"""

from pathlib import Path

import torch
from lightning.pytorch.loggers import Logger
from torch import nn
from torch.optim.lr_scheduler import LRScheduler
from torch.utils.data import DataLoader
from tqdm import tqdm

from .checkpoints import rng_state, save_checkpoint, set_rng_state
from .distributed import rank
from .recipe import FiniteLossCheck, Metrics, loss_fn
from .runs import say


class Run:
    """The loop's bookkeeping: where it is, the check on the loss, and the checkpoint that resumes it.

    A checkpoint holds everything the next step depends on (weights, optimizer, scheduler, the epoch's
    running metrics, the random state) and the position of that step, so a resumed run takes exactly
    the steps the interrupted one would have taken.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: LRScheduler | None,
        train_metrics: Metrics,
        ckpt_dir: Path,
        save_every_n_steps: int = 0,
    ) -> None:
        self.net, self.optimizer, self.scheduler, self.train_metrics = net, optimizer, scheduler, train_metrics
        self.ckpt_dir, self.save_every_n_steps = ckpt_dir, save_every_n_steps
        self.writes = rank() == 0  # under DDP every rank holds the same weights; rank 0 saves them
        self.epoch, self.batch, self.step = 0, 0, 0  # the current epoch, batches done in it, steps done in all
        self.loss_check = FiniteLossCheck()

    def after_step(self, loss: torch.Tensor) -> None:
        """Count the step, stop at a NaN or inf loss, and save last.pt every ``save_every_n_steps`` steps."""
        self.batch, self.step = self.batch + 1, self.step + 1
        self.loss_check.check(loss, self.step)
        if self.save_every_n_steps and self.step % self.save_every_n_steps == 0:
            self.save("last.pt")

    def save(self, name: str, **extra: float) -> None:
        self.loss_check.flush()  # never save weights that a NaN loss has spoiled
        if not self.writes:
            return
        state = {
            "next_epoch": self.epoch,  # where the resumed run starts: this epoch, after this many batches
            "next_batch": self.batch,
            "steps": self.step,
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "train_metrics": self.train_metrics.state_dict(),
            "rng_state": rng_state(),
            **extra,
        }
        save_checkpoint(state, self.ckpt_dir / name)

    def restore(self, checkpoint: dict) -> None:
        self.net.load_state_dict(checkpoint["net"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.train_metrics.load_state_dict(checkpoint["train_metrics"])
        self.epoch, self.batch, self.step = checkpoint["next_epoch"], checkpoint["next_batch"], checkpoint["steps"]
        set_rng_state(checkpoint["rng_state"])  # last: nothing may draw between this and the next step


def train_one_epoch(
    net: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    metrics: Metrics,
    run: Run,
    autocast: torch.dtype | None = None,
    progress_bar: bool = True,
) -> dict[str, float]:
    net.train()  # dropout on
    for x, y in tqdm(loader, desc=f"epoch {run.epoch}", leave=False, disable=not progress_bar):
        # non_blocking: from pinned memory the copy overlaps the GPU's work; on the CPU it changes nothing
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)  # 1. move the batch to the device
        optimizer.zero_grad()  # 2. clear the gradients of the last step
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):  # --trainer.precision
            logits = net(x)  # 3. forward: (B, C, H, W) -> (B, num_classes)
            loss = loss_fn(logits, y)  # 4. loss
        loss.backward()  # 5. backward: fill every parameter's .grad
        optimizer.step()  # 6. update the weights
        metrics.update(loss, logits, y)
        run.after_step(loss)  # count it; stop on a NaN loss; every N steps, a checkpoint
    run.loss_check.flush()
    return _compute_and_reset(metrics)


@torch.no_grad()  # no graph, no gradients: evaluation only reads the weights
def evaluate(
    net: nn.Module, loader: DataLoader, device: torch.device, metrics: Metrics, autocast: torch.dtype | None = None
) -> dict[str, float]:
    net.eval()  # dropout off
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            logits = net(x)
            loss = loss_fn(logits, y)
        metrics.update(loss, logits, y)
    return _compute_and_reset(metrics)


def fit(
    run: Run,
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    epochs: int,
    device: torch.device,
    loggers: list[Logger],
    autocast: torch.dtype | None = None,
    progress_bar: bool = True,
    start: dict | None = None,
) -> list[dict[str, float]]:
    """Train for ``epochs`` epochs, validating after each; return the per-epoch metrics.

    ``model`` is what the steps call: ``run.net`` itself, or ``DistributedDataParallel(run.net)``.
    ``start`` is a checkpoint of this loop to resume from, at the step after the one it saved.
    """
    net, optimizer, scheduler = run.net, run.optimizer, run.scheduler
    run.train_metrics.to(device)
    val_metrics = Metrics(run.train_metrics.num_classes).to(device)
    history, best_acc = [], -1.0  # best.pt starts afresh in a new run directory, as ModelCheckpoint's does
    if start is not None:
        run.restore(start)
    while run.epoch < epochs:
        # Seeds this epoch's shuffle with seed + epoch (the order Lightning's Trainer sees too), and a
        # run resumed mid-epoch skips the batches it has already trained on.
        train_loader.sampler.set_epoch(run.epoch, start=run.batch * train_loader.batch_size)
        train = train_one_epoch(model, train_loader, optimizer, device, run.train_metrics, run, autocast, progress_bar)
        val = evaluate(net, val_loader, device, val_metrics, autocast)  # metrics: synced across ranks
        if scheduler is not None:
            scheduler.step()  # once per epoch, after validation, as Lightning does for interval="epoch"
        row = {"epoch": run.epoch, **_prefix("train", train), **_prefix("val", val)}
        history.append(row)
        for logger in loggers:
            logger.log_metrics(row, step=run.step)
        say(f"epoch {run.epoch}: " + "  ".join(f"{k} {v:.4f}" for k, v in row.items() if "/" in k))
        improved, best_acc = val["acc"] > best_acc, max(best_acc, val["acc"])  # strictly, as ModelCheckpoint
        run.epoch, run.batch = run.epoch + 1, 0
        run.save("last.pt", val_acc=val["acc"])  # everything needed to go on with the next epoch
        if improved:
            run.save("best.pt", val_acc=val["acc"])
    return history


def _compute_and_reset(metrics: Metrics) -> dict[str, float]:
    values = {name: value.item() for name, value in metrics.compute().items()}
    metrics.reset()
    return values


def _prefix(stage: str, values: dict[str, float]) -> dict[str, float]:
    return {f"{stage}/{name}": value for name, value in values.items()}
