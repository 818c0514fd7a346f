import pytest
import torch

from {{ cookiecutter.package_name }}.data import DataModule


@pytest.fixture(scope="module")
def datamodule() -> DataModule:
    dm = DataModule()
    dm.setup("fit")
    return dm


@pytest.mark.parametrize("batch_size", [1, 16, 64])
def test_batch_shapes_and_dtypes(batch_size):
    dm = DataModule(batch_size=batch_size)
    dm.setup("fit")
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        x, y = next(iter(loader))
        assert x.shape == (batch_size, *dm.input_shape)
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert 0 <= y.min() and y.max() < dm.num_classes


def test_splits_are_disjoint_complete_and_seeded(datamodule):
    indices = {name: set(split.indices) for name, split in datamodule.splits.items()}
    assert sum(len(i) for i in indices.values()) == 1797
    assert not (indices["train"] & indices["val"]) and not (indices["train"] & indices["test"])
    again = DataModule()
    again.setup("fit")
    assert [again.splits[s].indices for s in indices] == [datamodule.splits[s].indices for s in indices]
    other = DataModule(seed=7)
    other.setup("fit")
    assert other.splits["train"].indices != datamodule.splits["train"].indices


def test_inputs_are_normalized(datamodule):
    x = torch.stack([datamodule.splits["train"][i][0] for i in range(len(datamodule.splits["train"]))])
    assert abs(x.mean().item()) < 0.05 and abs(x.std().item() - 1) < 0.05


def test_shuffle_order_depends_on_the_epoch_alone(datamodule):
    loader = datamodule.train_dataloader()

    def labels(epoch: int) -> torch.Tensor:
        loader.sampler.set_epoch(epoch)
        return torch.cat([y for _, y in loader])

    first = labels(0)
    for _ in range(3):  # creating more iterators must not move the order, as a plain shuffle would
        iter(loader)
    assert torch.equal(labels(0), first)
    assert not torch.equal(labels(1), first)
