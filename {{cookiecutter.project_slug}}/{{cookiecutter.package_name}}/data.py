"""The data: Dataset, transforms, splits and loaders, owned by one LightningDataModule.

Every training path reads its batches from this DataModule, so a transform, a split or a sampling rule
is written once here and serves them all. What is particular to a data set (where its files are, how
to read them, its statistics, its augmentation) is a plain module in ``datasets/``.
"""

import itertools
import multiprocessing
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from importlib import import_module

import lightning as L
import torch
import torch.distributed as dist
from jsonargparse.typing import NonNegativeInt, OpenUnitInterval, PositiveFloat, PositiveInt
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset, default_collate, random_split
from torchvision.transforms import v2

from .datasets import DataError

__all__ = ["DataError", "DataModule"]

# The data set this project was baked with; its module is datasets/<DATASET>.py (datasets/__init__.py
# lists what such a module provides).
DATASET = "{{ cookiecutter.dataset }}"
dataset = import_module(f".datasets.{DATASET}", __package__)


class TensorImages(Dataset):
    """Images held in memory as one tensor: for the data sets small enough to load whole.

    The deterministic ``transform`` runs once over all of them here; ``augment`` (random, train only)
    runs per sample when the item is read.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        transform: v2.Transform,
        augment: v2.Transform | None = None,
        seed: int = 0,
    ) -> None:
        self.pixels = transform.transforms[0](images)  # uint8 (N, C, H, W) -> uint8 (N, C, size, size)
        self.images = transform.transforms[1](self.pixels)  # -> float32 (N, C, size, size), normalised
        self.labels, self.augment, self.seed = labels, augment, seed

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = key[0] if isinstance(key, tuple) else key
        image = self.images[index]
        if self.augment is not None:
            image = seeded(self.augment, image, self.seed, key)
        return image, self.labels[index]

    def __getitems__(self, keys: list[int | tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """A whole batch at once; the DataLoader asks for it this way when the method exists.

        Without augmentation that is one indexing per batch instead of a call and a copy per sample.
        The batch comes out collated already: the loader's ``collate_fn`` passes it on.
        """
        if self.augment is not None:  # random transforms run per sample
            return default_collate([self[key] for key in keys])
        indices = torch.tensor([key[0] if isinstance(key, tuple) else key for key in keys])
        return self.images[indices], self.labels[indices]  # (B, C, H, W), (B,)

    @staticmethod
    def collate_fn(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return batch

    def pixels_and_labels(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.pixels, self.labels


class FileImages(Dataset):
    """Images read from disk one by one (an image folder), transformed as they are read."""

    def __init__(self, files: Dataset, transform: v2.Transform, augment: v2.Transform | None = None, seed: int = 0):
        self.files, self.transform, self.augment, self.seed = files, transform, augment, seed

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        image, label = self.files[key[0] if isinstance(key, tuple) else key]
        image = self.transform(image)  # PIL -> float32 (C, size, size)
        if self.augment is not None:
            image = seeded(self.augment, image, self.seed, key)
        return image, label

    def pixels_and_labels(self) -> tuple[torch.Tensor, torch.Tensor]:
        resize = self.transform.transforms[0]
        pixels, labels = zip(*((resize(image), label) for image, label in self.files), strict=True)
        return torch.stack(pixels), torch.tensor(labels)


class EpochSeededSampler(DistributedSampler):
    """Shuffles with a generator seeded by ``seed + epoch``, the epoch given by ``set_epoch``.

    The order is then a function of the epoch alone, never of how often a loader was iterated or
    what else drew random numbers before (docs/design_decisions.md says why that matters). Lightning
    calls ``set_epoch`` at the start of every epoch, and the manual loop calls it as every
    DistributedDataParallel loop does. Under DDP each rank gets its own shard of the permutation.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        distributed = dist.is_available() and dist.is_initialized()
        super().__init__(
            dataset,
            num_replicas=dist.get_world_size() if distributed else 1,
            rank=dist.get_rank() if distributed else 0,
            shuffle=True,
            seed=seed,
        )
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Shuffle for epoch; a run resumed mid-epoch passes start, the samples it already trained on.

        A checkpoint written after an epoch's last batch, before its end, counts that batch as full: the
        start is then past this rank's shard, which is all trained on.
        """
        super().set_epoch(epoch)
        self.start = min(start, self.num_samples)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        # (index, epoch): the dataset seeds a sample's random augmentation with both
        return ((index, self.epoch) for index in itertools.islice(super().__iter__(), self.start, None))

    def __len__(self) -> int:
        return super().__len__() - self.start


def shard_in_order(dataset: Dataset) -> DistributedSampler | None:
    """Under DDP, this rank's share of an evaluation split, unshuffled; None in a single process.

    The sampler Lightning would add itself, made here so the manual loop evaluates on the same shards.
    It pads the split to a multiple of the world size by repeating a few samples, as Lightning does.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return None
    return DistributedSampler(dataset, shuffle=False)


def worker_context() -> multiprocessing.context.BaseContext:
    """How loader workers start: from a clean server process ("forkserver"), never by forking this one.

    A plain fork copies this process while other threads run in it (gloo's under DDP, a logger's, the
    progress bar's), and a lock one of them holds stays locked forever in the child: the worker, and
    the rank waiting on it, hang. The server is started afresh and forks the workers from itself; it
    imports this project's modules once, so a worker starts in a fraction of a second
    (docs/design_decisions.md). Windows has no forkserver: spawn.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # A worker re-runs the entry script as __mp_main__; with the project imported already, that is cheap.
    package = __name__.rpartition(".")[0]
    context.set_forkserver_preload(sorted(name for name in sys.modules if name.startswith(package + ".")))
    return context


def seeded(transform: v2.Transform, image, seed: int, key: int | tuple[int, int]):
    """Apply a random transform with the RNG seeded by (seed, epoch, index) for this one sample.

    Augmentation is then a function of the sample and the epoch alone: the same on every rung, in any
    worker, and after a resume, whenever the loader happens to start its workers.
    """
    index, epoch = key if isinstance(key, tuple) else (key, 0)
    with torch.random.fork_rng(devices=[]):  # the global RNG, which dropout uses, is left untouched
        torch.manual_seed(hash((seed, epoch, index)) & 0xFFFF_FFFF_FFFF)
        return transform(image)


class DataModule(L.LightningDataModule):
    """The chosen data set, split into train, val and test, with its loaders.

    A split the data set lacks is split off by a seeded generator: val from train (or from all), and
    test from all when the data set comes as one set.

    Args:
        data_dir: where the data lives (downloaded there when missing; unused by the embedded digits).
        batch_size: samples per batch, for every split.
        num_workers: loader worker processes; 0 loads in the main process.
        val_fraction: share of the samples held out for validation, when the data set has no val split.
        test_fraction: share of the samples held out for the final test, when it has no test split.
        seed: fixes the split and the per-epoch shuffle order.
        pin_memory: page-lock batches for faster, asynchronous copies to a GPU; None: when there is one.
        worker_timeout: seconds a loader waits for one batch from its workers before it stops the run
            with an error, instead of waiting forever on a stuck worker.
        image_size: images are resized and cropped to image_size x image_size; None: the data set's own.
    """

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: PositiveInt = 32,
        num_workers: NonNegativeInt = 0,
        val_fraction: OpenUnitInterval = 0.15,
        test_fraction: OpenUnitInterval = 0.15,
        seed: int = 42,
        pin_memory: bool | None = None,
        worker_timeout: PositiveFloat = 120.0,
        image_size: PositiveInt | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if val_fraction + test_fraction >= 1:
            raise DataError(f"--data.val_fraction {val_fraction} + --data.test_fraction {test_fraction} must be < 1")
        self.class_names = dataset.class_names(data_dir)  # read now: the network's size depends on it
        size = image_size or dataset.IMAGE_SIZE
        self.input_shape = (len(dataset.MEAN), size, size)  # (C, H, W)
        # uint8 (C, H, W) or (N, C, H, W), or a PIL image -> uint8 at size x size -> float32, normalised.
        # An exported model (export.py) takes the first stage's output and does the second in its graph.
        resize = resize_transform(size)
        to_input = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(dataset.MEAN, dataset.STD), v2.ToPureTensor()]
        self.resize, self.to_input = resize, v2.Compose(to_input)
        self.transform = v2.Compose([self.resize, self.to_input])
        self.mean, self.std = dataset.MEAN, dataset.STD
        self.augment = dataset.augmentation(size)  # random, train only, per sample
        self.splits: dict[str, Dataset] = {}

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_channels(self) -> int:
        return self.input_shape[0]

    def prepare_data(self) -> None:
        """Download step, run on one process only."""
        dataset.prepare(self.hparams.data_dir)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:  # every rung and every stage share one split
            return
        hp = self.hparams
        sets = dataset.load(hp.data_dir)
        if "all" in sets:  # one set: train, val and test by fractions
            source, fractions = (
                sets.pop("all"),
                [1 - hp.val_fraction - hp.test_fraction, hp.val_fraction, hp.test_fraction],
            )
        elif "val" not in sets:  # a train and a test set: val comes out of train
            source, fractions = sets.pop("train"), [1 - hp.val_fraction, hp.val_fraction]
        else:  # all three as they come
            source, fractions = None, []
        # The indices each split took from the source set, in a seeded random order
        generator = torch.Generator().manual_seed(hp.seed)
        parts = random_split(range(size_of(source)), fractions, generator=generator) if fractions else []
        self.indices = {
            name: part.indices for name, part in zip(("train", "val", "test")[: len(parts)], parts, strict=True)
        }
        sets |= {name: take(source, indices) for name, indices in self.indices.items()}
        self.splits = {name: self.images(part, augment=name == "train") for name, part in sets.items()}

    def images(self, part, augment: bool) -> Dataset:
        """One split as a Dataset of normalised images: in memory for tensors, else read from disk."""
        random = self.augment if augment else None
        if isinstance(part, tuple):
            return TensorImages(*part, self.transform, random, self.hparams.seed)
        return FileImages(part, self.transform, random, self.hparams.seed)

    def pixels(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """A split's images as uint8 (N, C, size, size), before scaling, and their labels: an export's input."""
        return self.splits[split].pixels_and_labels()

    def fit_loaders(self, first: AbstractContextManager | None = None) -> tuple[DataLoader, DataLoader]:
        """For a loop of your own, what the Trainer does before fit: the download inside ``first`` (under
        DDP, one process per machine runs it first and the others after it, finding the files there), the
        split, and the train and val loaders."""
        with first or nullcontext():
            self.prepare_data()
        self.setup("fit")
        return self.train_dataloader(), self.val_dataloader()

    def train_dataloader(self) -> DataLoader:
        sampler = EpochSeededSampler(self.splits["train"], self.hparams.seed)
        # Loader workers take their first indices when the loader's iterator is made, and Lightning makes
        # a fit's first one before it calls set_epoch: start at the epoch the Trainer is at (a resumed
        # run's, restored by then). Without a Trainer (the manual loop), the loop sets the epoch itself.
        sampler.set_epoch(self.trainer.current_epoch if self.trainer is not None else 0)
        return self._loader("train", sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", sampler=shard_in_order(self.splits["val"]))

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", sampler=shard_in_order(self.splits["test"]))

    def _loader(self, split: str, sampler: DistributedSampler | None = None) -> DataLoader:
        workers = self.hparams.num_workers
        return DataLoader(
            self.splits[split],
            batch_size=self.hparams.batch_size,
            sampler=sampler,
            collate_fn=getattr(self.splits[split], "collate_fn", None),  # TensorImages collates its own batches
            num_workers=workers,
            pin_memory=torch.cuda.is_available() if self.hparams.pin_memory is None else self.hparams.pin_memory,
            # Workers start afresh each epoch: kept alive, they stalled garbage collection here for 5 s each.
            persistent_workers=False,
            multiprocessing_context=worker_context() if workers else None,
            timeout=self.hparams.worker_timeout if workers else 0,  # a stuck worker ends the run, in one line
            # A loader-owned generator keeps loaders from drawing on the global RNG, which the
            # model's initialisation and dropout use; its draws only seed worker processes.
            generator=torch.Generator().manual_seed(self.hparams.seed),
        )


def resize_transform(size: int) -> v2.Transform:
    """A picture (PIL, or uint8 (C, H, W) or (N, C, H, W)) to uint8 at size x size: the eval images' geometry."""
    return v2.Compose([v2.ToImage(), v2.Resize(size), v2.CenterCrop(size), v2.ToPureTensor()])


def size_of(part) -> int:
    return len(part[1]) if isinstance(part, tuple) else len(part)


def take(part, indices: list[int]):
    """The samples at ``indices`` of an (images, labels) pair or of a Dataset."""
    if isinstance(part, tuple):
        return part[0][indices], part[1][indices]
    return Subset(part, indices)
