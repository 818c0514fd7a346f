"""The DataModule on the chosen data set's fake files: shapes, splits, normalisation, order, workers.

What is particular to one data set is tested in test_dataset_<data set>.py.
"""

import math

import pytest
import torch
import torch.distributed as dist

from {{ cookiecutter.package_name }}.data import DataModule, dataset, size_of


@pytest.fixture(scope="module")
def datamodule(data_dir) -> DataModule:
    dm = DataModule(data_dir=data_dir, num_workers=0)
    dm.setup("fit")
    return dm


@pytest.mark.parametrize("batch_size", [1, 16, 64])
def test_batch_shapes_and_dtypes(data_dir, batch_size):
    dm = DataModule(data_dir=data_dir, batch_size=batch_size, num_workers=0)
    dm.setup("fit")
    loaders = {"train": dm.train_dataloader(), "val": dm.val_dataloader(), "test": dm.test_dataloader()}
    for split, loader in loaders.items():
        x, y = next(iter(loader))
        assert x.shape == (min(batch_size, len(dm.splits[split])), *dm.input_shape)
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert 0 <= y.min() and y.max() < dm.num_classes


def test_image_size_resizes_every_split(data_dir):
    dm = DataModule(data_dir=data_dir, num_workers=0, image_size=12)
    dm.setup("fit")
    assert dm.input_shape[1:] == (12, 12)
    assert all(next(iter(split))[0].shape == dm.input_shape for split in dm.splits.values())


def test_splits_drawn_at_random_are_complete_disjoint_and_seeded(datamodule, data_dir):
    if not datamodule.indices:
        pytest.skip("this data set brings all three splits; test_dataset_<name>.py checks them")
    source = dataset.load(data_dir)
    parts = [set(indices) for indices in datamodule.indices.values()]
    assert all(parts) and sum(len(part) for part in parts) == len(set().union(*parts))  # none shared
    assert set().union(*parts) == set(range(size_of(source["all" if "all" in source else "train"])))  # none left
    assert {name: len(datamodule.splits[name]) for name in datamodule.indices} == {
        name: len(indices) for name, indices in datamodule.indices.items()
    }
    again, other = DataModule(data_dir=data_dir), DataModule(data_dir=data_dir, seed=7)
    again.setup("fit")
    other.setup("fit")
    assert again.indices == datamodule.indices and other.indices["train"] != datamodule.indices["train"]


def test_inputs_are_normalized_with_the_data_sets_statistics(datamodule):
    source = dataset.load(datamodule.hparams.data_dir)
    images = source["all" if "all" in source else "train"]
    if not isinstance(images, tuple):
        pytest.skip("images read from disk are resized; test_dataset_<name>.py checks them")
    index = datamodule.indices["val"][0]
    mean, std = torch.tensor(dataset.MEAN)[:, None, None], torch.tensor(dataset.STD)[:, None, None]
    expected = (images[0][index].float() / 255 - mean) / std
    assert torch.allclose(datamodule.splits["val"][0][0], expected, atol=1e-5)


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


def test_loader_workers_start_from_a_server_and_give_the_main_processs_batches(data_dir):
    batches = {}
    for workers in (0, 2):
        dm = DataModule(data_dir=data_dir, batch_size=16, num_workers=workers)
        dm.setup("fit")
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(1)
        batches[workers] = list(loader)
    # forked from this process, a worker could inherit a lock that another thread holds (design_decisions.md)
    assert loader.multiprocessing_context.get_start_method() == "forkserver" and loader.timeout > 0
    assert len(batches[0]) == len(batches[2]) > 1
    for (x0, y0), (x2, y2) in zip(batches[0], batches[2], strict=True):
        assert torch.equal(x0, x2) and torch.equal(y0, y2)


def test_the_pixels_of_a_split_are_the_images_before_scaling(datamodule):
    # deploy/export.py's input: uint8 at the training size; the DataModule's scaling turns it into the loader's images
    pixels, labels = datamodule.pixels("val")
    assert pixels.dtype == torch.uint8 and pixels.shape == (len(datamodule.splits["val"]), *datamodule.input_shape)
    first = [datamodule.splits["val"][i] for i in range(4)]
    assert torch.equal(datamodule.to_input(pixels[:4]), torch.stack([image for image, _ in first]))
    assert labels[:4].tolist() == [int(label) for _, label in first]


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_two_ranks_get_the_single_process_order_dealt_in_turn(datamodule, monkeypatch, split):
    # The shards of a 2-process run, computed without a process group: DDP's samplers read only these three.
    def indices(world: int, rank: int) -> list[int]:
        monkeypatch.setattr(dist, "is_initialized", lambda: world > 1)
        monkeypatch.setattr(dist, "get_world_size", lambda: world)
        monkeypatch.setattr(dist, "get_rank", lambda: rank)
        loader = getattr(datamodule, f"{split}_dataloader")()
        if loader.sampler is None or not hasattr(loader.sampler, "num_replicas"):  # one process: in order
            return list(range(len(datamodule.splits[split])))
        loader.sampler.set_epoch(3)
        return [i if isinstance(i, int) else i[0] for i in loader.sampler]  # train yields (index, epoch)

    whole, size = indices(1, 0), len(datamodule.splits[split])
    padded = whole + whole[: 2 * math.ceil(size / 2) - size]  # DistributedSampler repeats the first few
    shards = [indices(2, rank) for rank in (0, 1)]
    assert shards == [padded[0::2], padded[1::2]]
    assert set(shards[0]) | set(shards[1]) == set(range(size))
