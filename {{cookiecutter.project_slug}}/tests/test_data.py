{%- set ds = cookiecutter.dataset -%}
{%- set tensors = ds in ["digits", "mnist", "fashion_mnist", "cifar10"] -%}
import pytest
import torch

from {{ cookiecutter.package_name }}.data import {{ 'DataError, ' if cookiecutter.dataset != 'digits' else '' }}DataModule
{%- if not tensors %}

from fake_data import CLASSES, TEST, TRAIN
{%- endif %}


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


def test_splits_are_complete_disjoint_and_seeded(datamodule, data_dir):
    sizes = {name: len(split) for name, split in datamodule.splits.items()}
    assert all(sizes.values()) and datamodule.num_classes == len(datamodule.class_names)
{%- if tensors %}
    train, val = set(datamodule.indices["train"]), set(datamodule.indices["val"])
    assert not train & val
    again, other = DataModule(data_dir=data_dir), DataModule(data_dir=data_dir, seed=7)
    again.setup("fit")
    other.setup("fit")
    assert again.indices == datamodule.indices and other.indices["train"] != datamodule.indices["train"]
{%- else %}
    assert datamodule.class_names == fake_classes()
    # train/ and val/ are the splits (val serves as test too): every image in exactly one of them
    train, val = ({path for path, _ in datamodule.splits[name].dataset.samples} for name in ("train", "val"))
    assert len(train) == TRAIN and len(val) == TEST and not train & val
{%- endif %}
{%- if ds == "digits" %}
    assert sum(sizes.values()) == 1797
{%- endif %}
{%- if tensors %}


def test_inputs_are_normalized_with_the_data_sets_statistics(datamodule):
    from {{ cookiecutter.package_name }}.data import MEAN, STD, load_images

    images = next(iter(load_images(datamodule.hparams.data_dir).values()))[0]  # uint8 (N, C, H, W)
    index = datamodule.indices["val"][0]
    expected = (images[index].float() / 255 - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
    assert torch.allclose(datamodule.splits["val"][0][0], expected, atol=1e-5)
{%- else %}


def fake_classes() -> list[str]:
    return sorted(CLASSES)


def test_one_folder_is_split_by_a_seeded_ratio(data_dir):
    def split_indices(seed: int) -> list[set[int]]:
        dm = DataModule(data_dir=f"{data_dir}/train", num_workers=0, seed=seed)
        dm.setup("fit")
        return [set(dm.splits[name].dataset.indices) for name in ("train", "val", "test")]

    train, val, test = split_indices(42)
    assert [len(train), len(val), len(test)] == [168, 36, 36]
    assert train | val | test == set(range(TRAIN)) and not (train & val or train & test or val & test)
    assert split_indices(42) == [train, val, test] and split_indices(7)[0] != train


@pytest.mark.parametrize("layout", ["missing", "empty", "one_class", "no_images"])
def test_a_bad_folder_gets_a_clear_error(tmp_path, layout):
    if layout != "missing":
        (tmp_path / "train").mkdir()
    if layout in ("one_class", "no_images"):
        (tmp_path / "train" / "cat").mkdir()
    if layout == "no_images":
        (tmp_path / "train" / "dog").mkdir()
        (tmp_path / "train" / "dog" / "notes.txt").write_text("not an image")
        (tmp_path / "val").mkdir()
    with pytest.raises(DataError, match=str(tmp_path)):
        DataModule(data_dir=str(tmp_path)).setup("fit")
{%- endif %}
{%- if ds in ["mnist", "fashion_mnist", "cifar10"] %}


def test_absent_data_offline_gets_a_clear_error(tmp_path, monkeypatch):
    from urllib.error import URLError

    import torchvision.datasets.utils as utils

    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(utils.urllib.request, "urlopen", offline)  # the network is never touched
    with pytest.raises(DataError, match=f"{tmp_path}.*--data.data_dir"):
        DataModule(data_dir=str(tmp_path)).prepare_data()
{%- endif %}


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
