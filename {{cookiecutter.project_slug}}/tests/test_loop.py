"""What the hand-written loops share (loops.py), on its own."""

import pytest
import torch

from {{ cookiecutter.package_name }}.checkpoints import save_checkpoint
from {{ cookiecutter.package_name }}.cli import ConfigError
from {{ cookiecutter.package_name }}.data import DataModule
from {{ cookiecutter.package_name }}.loops import autocast_dtype, checkpoint, evaluate
from {{ cookiecutter.package_name }}.model import SmallCNN
from {{ cookiecutter.package_name }}.shared import Metrics, build_optimizer


def test_evaluation_reads_the_weights_and_changes_none(data_dir):
    data = DataModule(data_dir=data_dir, batch_size=16)
    data.setup("fit")
    net = SmallCNN(num_classes=data.num_classes, in_channels=data.num_channels).train()
    weights = [p.clone() for p in net.parameters()]
    metrics = evaluate(net, data.val_dataloader(), torch.device("cpu"), Metrics(data.num_classes))
    assert metrics["loss"] > 0 and 0 <= metrics["acc"] <= 1 and not net.training
    assert all(torch.equal(a, b) for a, b in zip(weights, net.parameters(), strict=True))


def test_a_checkpoint_holds_what_the_next_step_needs_and_is_written_whole(tmp_path):
    net = SmallCNN()
    optimizer, scheduler = build_optimizer(net.parameters(), lr=1e-3, weight_decay=0.0, scheduler="cosine", epochs=3)
    state = checkpoint(net, optimizer, scheduler, Metrics(10, persistent=True), 1, 5, 12)
    save_checkpoint(state, tmp_path / "ckpt" / "last.pt")
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == ["last.pt"]  # no temporary file left
    loaded = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)
    assert (loaded["next_epoch"], loaded["next_batch"], loaded["steps"]) == (1, 5, 12)
    assert loaded["net"].keys() == net.state_dict().keys() and "torch" in loaded["rng_state"]


def test_precision_flags(capsys):
    assert autocast_dtype("32-true") is None and autocast_dtype("bf16-mixed") is torch.bfloat16
    with pytest.raises(ConfigError, match="GradScaler"):
        autocast_dtype("16-mixed")
