"""Validation and test for the hand-written loops."""

import torch
from torch import nn
from torch.utils.data import DataLoader

from .recipe import Metrics, loss_fn
from .runs import log_test
from .trainer_options import limit_batches


@torch.no_grad()  # no graph, no gradients: evaluation only reads the weights
def evaluate(
    net: nn.Module,
    loader: DataLoader,
    device: torch.device,
    metrics: Metrics,
    autocast: torch.dtype | None = None,
    batches: int | None = None,
) -> dict[str, float]:
    """Mean loss and accuracy of ``net`` over the first ``batches`` of ``loader`` (this rank's shard, synced)."""
    net.eval()
    for batch, (x, y) in enumerate(loader):
        if batch == batches:
            break  # --trainer.limit_val_batches, --trainer.limit_test_batches
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            logits = net(x)
            loss = loss_fn(logits, y)
        metrics.update(loss, logits, y)
    return metrics.compute_and_reset()


def evaluate_test(net: nn.Module, data, device: torch.device, autocast: torch.dtype | None, limit) -> dict[str, float]:
    """``net`` on the DataModule's test split, as Trainer.test runs it (``limit``: --trainer.limit_test_batches)."""
    data.setup("test")
    loader = data.test_dataloader()
    metrics = Metrics(data.num_classes).to(device)
    return evaluate(net, loader, device, metrics, autocast, limit_batches(limit, len(loader)))


def test_best(net: nn.Module, data, device: torch.device, options, checkpoint, loggers, progress) -> dict[str, float]:
    """The best epoch's weights on the test split, as Trainer.test(ckpt_path="best"); the test row logged."""
    checkpoint.load_best()
    metrics = evaluate_test(net, data, device, options.autocast, options.test_limit)
    log_test(loggers, progress.epoch, progress.steps, metrics)
    return metrics
