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
from .recipe import Metrics, loss_fn


def train_one_epoch(
    net: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    metrics: Metrics,
    epoch: int,
    progress_bar: bool = True,
) -> dict[str, float]:
    net.train()  # dropout on
    for x, y in tqdm(loader, desc=f"epoch {epoch}", leave=False, disable=not progress_bar):
        x, y = x.to(device), y.to(device)  # 1. move the batch to the device
        optimizer.zero_grad()  # 2. clear the gradients of the last step
        logits = net(x)  # 3. forward: (B, C, H, W) -> (B, num_classes)
        loss = loss_fn(logits, y)  # 4. loss
        loss.backward()  # 5. backward: fill every parameter's .grad
        optimizer.step()  # 6. update the weights
        metrics.update(loss, logits, y)
    return _compute_and_reset(metrics)


@torch.no_grad()  # no graph, no gradients: evaluation only reads the weights
def evaluate(net: nn.Module, loader: DataLoader, device: torch.device, metrics: Metrics) -> dict[str, float]:
    net.eval()  # dropout off
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        logits = net(x)
        metrics.update(loss_fn(logits, y), logits, y)
    return _compute_and_reset(metrics)


def fit(
    net: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: LRScheduler | None,
    epochs: int,
    device: torch.device,
    num_classes: int,
    loggers: list[Logger],
    ckpt_dir: Path,
    progress_bar: bool = True,
    start: dict | None = None,
) -> list[dict[str, float]]:
    """Train for ``epochs`` epochs, validating after each; return the per-epoch metrics.

    ``start`` is a checkpoint of this loop to resume from: the epoch after the one it ended.
    """
    net.to(device)
    train_metrics, val_metrics = Metrics(num_classes).to(device), Metrics(num_classes).to(device)
    history, best_acc, steps, first_epoch = [], -1.0, 0, 0
    if start is not None:
        net.load_state_dict(start["net"])
        optimizer.load_state_dict(start["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(start["scheduler"])
        # best.pt starts afresh in the new run directory, as Lightning's ModelCheckpoint does in a new dirpath
        steps, first_epoch = start["steps"], start["epoch"] + 1
        set_rng_state(start["rng_state"])  # last: nothing may draw between this and the first step
    for epoch in range(first_epoch, epochs):
        # Seeds this epoch's shuffle with seed + epoch: the order Lightning's Trainer sees too.
        train_loader.sampler.set_epoch(epoch)
        train = train_one_epoch(net, train_loader, optimizer, device, train_metrics, epoch, progress_bar)
        val = evaluate(net, val_loader, device, val_metrics)
        if scheduler is not None:
            scheduler.step()  # once per epoch, after validation, as Lightning does for interval="epoch"
        steps += len(train_loader)
        row = {"epoch": epoch, **_prefix("train", train), **_prefix("val", val)}
        history.append(row)
        for logger in loggers:
            logger.log_metrics(row, step=steps)
        improved, best_acc = val["acc"] > best_acc, max(best_acc, val["acc"])  # strictly, as ModelCheckpoint
        state = {
            "epoch": epoch,
            "steps": steps,
            "net": net.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler else None,
            "val_acc": val["acc"],
            "rng_state": rng_state(),
        }
        save_checkpoint(state, ckpt_dir / "last.pt")  # everything needed to resume after this epoch
        if improved:
            save_checkpoint(state, ckpt_dir / "best.pt")
        print(f"epoch {epoch}: train/loss {train['loss']:.4f}  val/loss {val['loss']:.4f}  val/acc {val['acc']:.4f}")
    return history


def _compute_and_reset(metrics: Metrics) -> dict[str, float]:
    values = {name: value.item() for name, value in metrics.compute().items()}
    metrics.reset()
    return values


def _prefix(stage: str, values: dict[str, float]) -> dict[str, float]:
    return {f"{stage}/{name}": value for name, value in values.items()}
