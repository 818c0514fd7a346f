import torch

from {{ cookiecutter.package_name }}.data import DataModule
from {{ cookiecutter.package_name }}.loop import Run, evaluate, save_checkpoint, train_one_epoch
from {{ cookiecutter.package_name }}.model import SmallCNN
from {{ cookiecutter.package_name }}.recipe import Metrics, build_optimizer


def test_training_lowers_the_loss_and_evaluation_leaves_weights_alone(data_dir, tmp_path):
    torch.manual_seed(0)
    data, cpu = DataModule(data_dir=data_dir, batch_size=16, num_workers=0), torch.device("cpu")
    net = SmallCNN(num_classes=data.num_classes, in_channels=data.num_channels)
    data.setup("fit")
    optimizer, _ = build_optimizer(net.parameters(), lr=2e-3, weight_decay=0.0, scheduler="none", epochs=1)
    metrics = Metrics(data.num_classes)
    run = Run(net, optimizer, None, metrics, tmp_path)
    before = evaluate(net, data.val_dataloader(), cpu, metrics)
    loader = data.train_dataloader()
    train_one_epoch(net, loader, optimizer, cpu, metrics, run, progress_bar=False)
    assert run.step == run.batch == len(loader)
    weights = [p.clone() for p in net.parameters()]
    after = evaluate(net, data.val_dataloader(), cpu, metrics)
    assert after["loss"] < before["loss"]
    assert all(torch.equal(a, b) for a, b in zip(weights, net.parameters(), strict=True))
    assert not net.training


def test_checkpoint_is_written_whole(tmp_path):
    state = {"epoch": 3, "net": SmallCNN().state_dict()}
    save_checkpoint(state, tmp_path / "ckpt" / "last.pt")
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == ["last.pt"]  # no temporary file left
    loaded = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)
    assert loaded["epoch"] == 3 and loaded["net"].keys() == state["net"].keys()
