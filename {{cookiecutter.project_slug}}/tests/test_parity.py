"""Lightning's Trainer and the hand-written loop, same config and seed, must end with the same weights."""

from {{ cookiecutter.package_name }}.compare import compare
from {{ cookiecutter.package_name }}.data import DataModule

EPOCHS, BATCH = 3, 100


def test_same_seed_gives_bit_identical_weights_and_losses(quick_args):
    data = DataModule(batch_size=BATCH)
    data.setup("fit")
    assert len(data.splits["train"]) % BATCH, "the last batch must be partial"
    args = [*quick_args, "--trainer.max_epochs", str(EPOCHS), "--data.batch_size", str(BATCH),
            "--model.scheduler", "cosine"]
    figures = compare(args)
    assert figures["epochs"] == EPOCHS
    assert figures["identical"], f"max |dweight| = {figures['max_abs_weight_diff']}"
    assert figures["max_abs_weight_diff"] == 0.0
    lit, man = figures["history"]["lightning"], figures["history"]["manual"]
    assert lit == man  # train loss, val loss, val acc, every epoch
    assert len({row["train/loss"] for row in lit}) == EPOCHS  # the runs really trained and validated
