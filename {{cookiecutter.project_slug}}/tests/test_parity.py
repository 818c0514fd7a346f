"""Every rung of the ladder (manual, Fabric, the Trainer barebones and in full), same config and seed: same weights."""

import shutil

import pytest

from compare import compare
from {{ cookiecutter.package_name }}.data import DataModule

EPOCHS = 3


def test_same_seed_gives_bit_identical_weights_and_losses(quick_args, data_dir):
    data = DataModule(data_dir=data_dir)
    data.setup("fit")
    train_size = len(data.splits["train"])
    batch = next(b for b in range(train_size // 8, 0, -1) if train_size % b)  # about 8 steps, the last partial
    args = [
        *quick_args,
        "--trainer.max_epochs",
        str(EPOCHS),
        "--data.batch_size",
        str(batch),
        "--model.scheduler",
        "cosine",
    ]
    figures = compare(args)
    assert figures["epochs"] == EPOCHS
    assert figures["identical"], f"max |dweight| = {figures['max_abs_weight_diff']}"
    assert figures["max_abs_weight_diff"] == 0.0
    manual = figures["history"]["manual"]
    assert list(figures["rungs"]) == ["manual", "fabric", "trainer_barebones", "trainer"]
    for rung, rung_figures in figures["rungs"].items():
        assert rung_figures["identical"], rung
    for rung, rows in figures["history"].items():
        assert rows == manual, rung  # train loss, val loss, val acc, every epoch (barebones logs none)
    assert len({row["train/loss"] for row in manual}) == EPOCHS  # the runs really trained and validated


@pytest.mark.slow
@pytest.mark.timeout(70)  # about 3x its 22 s in the template's suite
def test_bf16_mixed_precision_keeps_the_rungs_identical(quick_args):
    # Lightning's bf16-mixed autocasts the step's forward and loss; the manual loop does the same, on CPU too.
    figures = compare(
        [*quick_args, "--trainer.max_epochs", "2", "--trainer.precision", "bf16-mixed"], rungs=["fabric", "trainer"]
    )
    assert figures["identical"] and figures["same_epoch_metrics"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("c++") is None, reason="torch.compile on CPU needs a C++ compiler")
@pytest.mark.timeout(130)  # about 3x its 42 s in the template's suite
def test_compiled_network_keeps_the_rungs_identical(quick_args):
    figures = compare(
        [*quick_args, "--trainer.max_epochs", "2", "--model.compile", "true"], rungs=["fabric", "trainer"]
    )
    assert figures["identical"] and figures["same_epoch_metrics"]
