import lightning as L
import torch

from {{ cookiecutter.package_name }}.data import DataModule
from {{ cookiecutter.package_name }}.model import SmallCNN
from {{ cookiecutter.package_name }}.module import Classifier


def test_fast_dev_run_smoke():
    model, data = Classifier(SmallCNN()), DataModule(batch_size=16)
    trainer = L.Trainer(fast_dev_run=2, logger=False, enable_progress_bar=False, enable_model_summary=False)
    before = [p.clone() for p in model.net.parameters()]
    trainer.fit(model, datamodule=data)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.net.parameters()))
    metrics = trainer.test(model, datamodule=data, verbose=False)[0]
    assert set(metrics) == {"test/loss", "test/acc"} and 0 <= metrics["test/acc"] <= 1


def test_predict_step_returns_probabilities():
    model = Classifier(SmallCNN())
    probs = model.predict_step((torch.randn(4, 1, 8, 8), torch.zeros(4, dtype=torch.long)), 0)
    assert probs.shape == (4, 10)
    assert torch.allclose(probs.sum(dim=-1), torch.ones(4))


def test_scheduler_steps_per_epoch():
    model = Classifier(SmallCNN(), scheduler="cosine")
    trainer = L.Trainer(max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_train_batches=2, limit_val_batches=1)
    trainer.fit(model, datamodule=DataModule(batch_size=16))
    scheduler = trainer.lr_scheduler_configs[0]
    assert scheduler.interval == "epoch" and scheduler.scheduler.last_epoch == 3
    assert trainer.optimizers[0].param_groups[0]["lr"] < model.hparams.lr
