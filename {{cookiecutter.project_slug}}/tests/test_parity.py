"""Every rung of the ladder (manual, Fabric, the Trainer barebones and in full), same config and seed: same weights."""

import shutil

import pytest

from ladder.compare import compare

EPOCHS = 2
# Two epochs of a few batches: enough for a precision or a compiled graph to part the rungs, if it does.
SHORT = ["--trainer.max_epochs", "2", "--trainer.limit_train_batches", "8", "--trainer.limit_val_batches", "2"]


def test_same_seed_gives_bit_identical_weights_and_losses(quick_args, datamodule):
    datamodule.setup("fit")
    train_size = len(datamodule.splits["train"])
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
@pytest.mark.timeout(90)  # about 3x its time on the slowest bake (28x28 images), beside another suite
def test_bf16_mixed_precision_keeps_the_rungs_identical(quick_args):
    # Lightning's bf16-mixed autocasts the step's forward and loss; the manual loop does the same, on CPU too.
    figures = compare([*quick_args, *SHORT, "--trainer.precision", "bf16-mixed"], rungs=["fabric", "trainer"])
    assert figures["identical"] and figures["same_epoch_metrics"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("c++") is None, reason="torch.compile on CPU needs a C++ compiler")
@pytest.mark.timeout(130)  # about 3x its 42 s with a cold compile cache beside another suite (13 s warm, alone)
def test_compiled_network_keeps_the_rungs_identical(quick_args):
    figures = compare([*quick_args, *SHORT, "--model.compile", "true"], rungs=["fabric", "trainer"])
    assert figures["identical"] and figures["same_epoch_metrics"]
