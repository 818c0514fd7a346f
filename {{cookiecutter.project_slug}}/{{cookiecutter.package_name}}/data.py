"""The data: Dataset, transforms, splits and loaders, owned by one LightningDataModule.

Every training path reads its batches from this DataModule, so a transform, a split or a sampling rule
is written once here and serves them all. What is particular to a data set (where its files are, how
to read them, its statistics, its augmentation) is a plain module in ``datasets/``.
"""

from contextlib import AbstractContextManager, nullcontext
from importlib import import_module

import lightning as L
import torch
from jsonargparse.typing import NonNegativeInt, OpenUnitInterval, PositiveFloat, PositiveInt
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset, random_split
from torchvision.transforms import v2

from .errors import DataError
from .images import FileImages, TensorImages
from .sampling import EpochSeededSampler, shard_in_order, worker_context

# The data set this project was baked with; its module is datasets/<DATASET>.py (datasets/__init__.py
# lists what such a module provides).
DATASET = "{{ cookiecutter.dataset }}"
dataset = import_module(f".datasets.{DATASET}", __package__)


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
        # An exported model (deploy/export.py) takes the first stage's output and does the second in its graph.
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
        # a fit's first one before it calls set_epoch: start where the Trainer is (a resumed run's epoch,
        # and the batches of it done already, restored by then). Without a Trainer, the loop sets both.
        epoch, done = (self.trainer.current_epoch, batches_done(self.trainer)) if self.trainer else (0, 0)
        sampler.set_epoch(epoch, start=done * self.hparams.batch_size)
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


def batches_done(trainer: L.Trainer) -> int:
    """The batches of its epoch that a fit resumed mid-epoch has trained on already (0 for a new fit)."""
    loop = trainer.fit_loop
    return loop.epoch_loop.batch_progress.current.ready if loop.restarting else 0


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
