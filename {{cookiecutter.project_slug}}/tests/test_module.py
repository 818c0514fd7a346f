import itertools

import lightning as L
import pytest
import torch

from {{ cookiecutter.package_name }}.data import DataModule
from {{ cookiecutter.package_name }}.model import SmallCNN
from {{ cookiecutter.package_name }}.module import LitClassifier

QUIET = {"logger": False, "enable_progress_bar": False, "enable_model_summary": False}


def build(data_dir: str, **kwargs) -> tuple[LitClassifier, DataModule]:
    data = DataModule(data_dir=data_dir, batch_size=16, num_workers=0)
    net = SmallCNN(num_classes=data.num_classes, in_channels=data.num_channels)
    return LitClassifier(net, num_classes=data.num_classes, **kwargs), data


def test_fast_dev_run_smoke(data_dir):
    model, data = build(data_dir)
    trainer = L.Trainer(fast_dev_run=2, **QUIET)
    before = [p.clone() for p in model.net.parameters()]
    trainer.fit(model, datamodule=data)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.net.parameters(), strict=True))
    metrics = trainer.test(model, datamodule=data, verbose=False)[0]
    assert set(metrics) == {"test/loss", "test/acc"}
    batches = list(itertools.islice(data.test_dataloader(), 2))  # fast_dev_run=2 tests on two: count by hand
    with torch.no_grad():
        right = sum((model.net.eval()(x).argmax(dim=1) == y).sum().item() for x, y in batches)
    assert metrics["test/acc"] == pytest.approx(right / sum(len(y) for _, y in batches), abs=1e-6)


def test_scheduler_steps_per_epoch(data_dir):
    model, data = build(data_dir, scheduler="cosine")
    trainer = L.Trainer(max_epochs=3, enable_checkpointing=False, limit_train_batches=2, limit_val_batches=1, **QUIET)
    trainer.fit(model, datamodule=data)
    scheduler = trainer.lr_scheduler_configs[0]
    assert scheduler.interval == "epoch" and scheduler.scheduler.last_epoch == 3
    assert trainer.optimizers[0].param_groups[0]["lr"] < model.hparams.lr
