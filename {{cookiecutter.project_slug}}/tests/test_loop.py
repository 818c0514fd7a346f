"""What the hand-written loops share, on its own: evaluation, their checkpoint, and the options they mirror."""

import pytest
import torch

from {{ cookiecutter.package_name }}.data import DataModule
from {{ cookiecutter.package_name }}.evaluation import evaluate
from {{ cookiecutter.package_name }}.loop_checkpoint import LoopCheckpoint, Progress
from {{ cookiecutter.package_name }}.model import SmallCNN
from {{ cookiecutter.package_name }}.recipe import Metrics, build_optimizer
from {{ cookiecutter.package_name }}.trainer_options import RefusedOption, autocast_dtype, limit_batches


def test_evaluation_reads_the_weights_and_changes_none(data_dir):
    data = DataModule(data_dir=data_dir, batch_size=16)
    data.setup("fit")
    net = SmallCNN(num_classes=data.num_classes, in_channels=data.num_channels).train()
    weights = [p.clone() for p in net.parameters()]
    loader = data.val_dataloader()
    metrics = evaluate(net, loader, torch.device("cpu"), Metrics(data.num_classes))
    # The loss of an untrained network over C classes is near ln(C); accuracy is a share of the samples.
    assert abs(metrics["loss"] - torch.log(torch.tensor(float(data.num_classes))).item()) < 1.0
    assert metrics["acc"] * len(data.splits["val"]) == pytest.approx(round(metrics["acc"] * len(data.splits["val"])))
    assert not net.training
    assert all(torch.equal(a, b) for a, b in zip(weights, net.parameters(), strict=True))
    # --trainer.limit_val_batches 1: only the first batch counts
    first = evaluate(net, loader, torch.device("cpu"), Metrics(data.num_classes), batches=1)
    x, y = next(iter(loader))
    assert first["acc"] == pytest.approx((net(x).argmax(1) == y).float().mean().item())


def test_a_checkpoint_holds_what_the_next_step_needs_and_resumes_there(tmp_path):
    net = SmallCNN()
    optimizer, scheduler = build_optimizer(net.parameters(), lr=1e-3, weight_decay=0.0, scheduler="cosine", epochs=3)
    metrics = Metrics(10, persistent=True)
    checkpoint = LoopCheckpoint(tmp_path, net, optimizer, scheduler, metrics, save_every=0, writer=True)
    checkpoint.save("last.pt", Progress(epoch=1, batch=5, steps=12))
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["last.pt"]  # no temporary file left
    loaded = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert (loaded["next_epoch"], loaded["next_batch"], loaded["steps"]) == (1, 5, 12)
    assert loaded["net"].keys() == net.state_dict().keys() and "torch" in loaded["rng_state"]

    other = SmallCNN()
    opt2, sched2 = build_optimizer(other.parameters(), lr=1e-3, weight_decay=0.0, scheduler="cosine", epochs=3)
    resumed = LoopCheckpoint(tmp_path / "x", other, opt2, sched2, Metrics(10, persistent=True), 0, False)
    assert resumed.resume(loaded) == Progress(1, 5, 12)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), other.state_dict().values(), strict=True))


def test_only_the_writer_writes_and_best_needs_a_strictly_better_accuracy(tmp_path):
    net = SmallCNN()
    optimizer, scheduler = build_optimizer(net.parameters(), lr=1e-3, weight_decay=0.0, scheduler="none", epochs=1)
    reader = LoopCheckpoint(tmp_path / "r", net, optimizer, scheduler, Metrics(10, persistent=True), 1, writer=False)
    reader.end_epoch(Progress(), {"acc": 0.5})
    assert not (tmp_path / "r").exists()
    writer = LoopCheckpoint(tmp_path / "w", net, optimizer, scheduler, Metrics(10, persistent=True), 1, writer=True)
    progress = Progress()
    writer.end_epoch(progress, {"acc": 0.5})
    best = [p.clone() for p in net.parameters()]
    with torch.no_grad():
        for p in net.parameters():  # the second epoch's weights differ from the best epoch's
            p.add_(1.0)
    writer.end_epoch(progress, {"acc": 0.5})  # not better: best.pt stays the first epoch's
    assert progress == Progress(epoch=2, batch=0, steps=0)
    assert torch.load(tmp_path / "w" / "checkpoints" / "best.pt", weights_only=True)["next_epoch"] == 1
    assert torch.load(tmp_path / "w" / "checkpoints" / "last.pt", weights_only=True)["next_epoch"] == 2
    writer.load_best()  # the test runs on the best epoch's weights, as Trainer.test(ckpt_path="best")
    assert all(torch.equal(a, b) for a, b in zip(best, net.parameters(), strict=True))


def test_precision_flags():
    assert autocast_dtype("32-true") is None and autocast_dtype("bf16-mixed") is torch.bfloat16
    if not torch.cuda.is_available():  # Lightning runs 16-mixed on a CPU as bf16-mixed
        assert autocast_dtype("16-mixed") is torch.bfloat16
    with pytest.raises(RefusedOption, match="--trainer.precision 64-true"):
        autocast_dtype("64-true")


def test_batch_limits_round_as_lightning():
    assert limit_batches(None, 10) == 10 and limit_batches(3, 10) == 3 and limit_batches(30, 10) == 10
    assert limit_batches(4.0, 10) == 4 and limit_batches(1, 10) == 1  # a whole float above 1 counts batches
    assert limit_batches(0.25, 10) == 2 and limit_batches(1.0, 10) == 10 and limit_batches(0.0, 10) == 0
    with pytest.raises(RefusedOption, match="0 of 10 batches"):
        limit_batches(0.05, 10)
