{%- set ds = cookiecutter.dataset -%}
{%- set tensors = ds in ["digits", "mnist", "fashion_mnist", "cifar10"] -%}
{%- set one_set = ds in ["digits"] -%}
"""The data: Dataset, transforms, splits and loaders, owned by one LightningDataModule.

Both training paths read their batches from this DataModule, so a transform, a split or a sampling
rule is written once here and serves Lightning's Trainer and the hand-written loop alike.
"""

import itertools
import multiprocessing
import sys
from collections.abc import Iterator
{%- if ds == "image_folder" %}
from pathlib import Path
{%- endif %}

import lightning as L
import torch
import torch.distributed as dist
from jsonargparse.typing import NonNegativeInt, OpenUnitInterval, PositiveFloat, PositiveInt
from PIL import Image
{%- if ds == "image_folder" %}
from torch.utils.data import DataLoader, Dataset, DistributedSampler, random_split
from torchvision.datasets import ImageFolder
{%- else %}
from torch.utils.data import DataLoader, Dataset, DistributedSampler, default_collate, random_split
{%- endif %}
{%- if ds in ["mnist", "fashion_mnist", "cifar10"] %}
from torchvision import datasets
{%- endif %}
from torchvision.transforms import v2


class DataError(RuntimeError):
    """Data that is missing or malformed; the entry points print its message as one line."""


{% if ds == "digits" -%}
# Pixel statistics of the digits scaled to [0, 1], measured once over the whole set.
MEAN, STD = (0.3053,), (0.3759,)
CLASS_NAMES = [str(digit) for digit in range(10)]
INPUT_SHAPE = (1, 8, 8)  # (C, H, W)


def download(data_dir: str) -> None:
    """Nothing to fetch: the digits ship inside scikit-learn's wheel."""


def load_images(data_dir: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The 1,797 digits as uint8 images (N, 1, 8, 8) and int64 labels (N,), as one set to split.

    Their pixels run from 0 to 16; scaling them to 0..255 makes them ordinary 8-bit images.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(digits.images * (255 / 16)).round().to(torch.uint8)
    return {"all": (images.unsqueeze(1), torch.from_numpy(digits.target).long())}


def augmentation() -> v2.Transform | None:
    return None  # 8x8 digits are too small to crop or flip
{%- elif ds in ["mnist", "fashion_mnist"] -%}
{%- set cls = "MNIST" if ds == "mnist" else "FashionMNIST" -%}
# Pixel statistics of the training images scaled to [0, 1].
MEAN, STD = {{ "(0.1307,), (0.3081,)" if ds == "mnist" else "(0.2860,), (0.3530,)" }}
CLASS_NAMES = [name.split(" - ")[-1] for name in datasets.{{ cls }}.classes]
INPUT_SHAPE = (1, 28, 28)  # (C, H, W)


def download(data_dir: str) -> None:
    """Fetch the IDX files into data_dir/{{ cls }}/raw, only when they are missing."""
    try:
        datasets.{{ cls }}(data_dir, train=True, download=True)
        datasets.{{ cls }}(data_dir, train=False, download=True)
    except (OSError, RuntimeError) as error:
        raise DataError(missing_message(data_dir, error)) from error


def load_images(data_dir: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """uint8 images (N, 1, 28, 28) and int64 labels (N,) of the official train and test sets."""
    try:
        train, test = datasets.{{ cls }}(data_dir, train=True), datasets.{{ cls }}(data_dir, train=False)
    except (OSError, RuntimeError) as error:
        raise DataError(missing_message(data_dir, error)) from error
    return {"train": (train.data.unsqueeze(1), train.targets), "test": (test.data.unsqueeze(1), test.targets)}


def augmentation() -> v2.Transform | None:
    return v2.RandomAffine(degrees=10, translate=(0.1, 0.1))  # small shifts and turns keep the class


def missing_message(data_dir: str, error: Exception) -> str:
    error = " ".join(str(error).split())  # torchvision's reasons span lines; the message is one
    return (
        f"{{ cls }} is not in {data_dir}/{{ cls }}/raw and could not be downloaded ({error}). "
        "Copy the four IDX files there, or point --data.data_dir at a directory that has them."
    )
{%- elif ds == "cifar10" -%}
# Per-channel statistics of the training images scaled to [0, 1].
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
INPUT_SHAPE = (3, 32, 32)  # (C, H, W)


def download(data_dir: str) -> None:
    """Fetch and unpack data_dir/cifar-10-batches-py, only when it is missing or corrupt."""
    try:
        datasets.CIFAR10(data_dir, train=True, download=True)
    except (OSError, RuntimeError) as error:
        raise DataError(missing_message(data_dir, error)) from error


def load_images(data_dir: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """uint8 images (N, 3, 32, 32) and int64 labels (N,) of the official train and test sets."""
    try:
        parts = {"train": datasets.CIFAR10(data_dir, train=True), "test": datasets.CIFAR10(data_dir, train=False)}
    except (OSError, RuntimeError) as error:
        raise DataError(missing_message(data_dir, error)) from error
    # .data is (N, H, W, C) uint8; torchvision's v2 transforms want (N, C, H, W)
    return {
        name: (torch.from_numpy(p.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(p.targets))
        for name, p in parts.items()
    }


def augmentation() -> v2.Transform | None:
    return v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip()])


def missing_message(data_dir: str, error: Exception) -> str:
    error = " ".join(str(error).split())  # torchvision's reasons span lines; the message is one
    return (
        f"CIFAR-10 is not in {data_dir}/cifar-10-batches-py and could not be downloaded ({error}). "
        "Unpack cifar-10-python.tar.gz there, or point --data.data_dir at a directory that has it."
    )
{%- elif ds == "image_folder" -%}
# ImageNet's statistics: the usual choice for photographs when the set's own are not measured.
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def class_folders(root: Path) -> list[str]:
    """The class names of an image folder: its subfolders, sorted, as ImageFolder sees them."""
    layout = root / "train" if (root / "train").is_dir() else root
    if not layout.is_dir():
        raise DataError(
            f"no image folder at {root}: pass --data.data_dir pointing at class subfolders, "
            "or at train/ and val/ folders of class subfolders"
        )
    names = sorted(entry.name for entry in layout.iterdir() if entry.is_dir())
    if len(names) < 2:
        raise DataError(
            f"{layout} holds {len(names)} class folder(s); a classifier needs at least 2, "
            f"e.g. {layout}/cat/*.png and {layout}/dog/*.png"
        )
    return names


def open_folder(path: Path) -> ImageFolder:
    try:
        return ImageFolder(str(path), allow_empty=False)
    except (FileNotFoundError, OSError) as error:
        raise DataError(f"{path} is not a usable image folder: {error}") from error


class Transformed(Dataset):
    """A view of a dataset with its own transform, so train and val can share one folder."""

    def __init__(self, dataset: Dataset, transform: v2.Transform, seed: int) -> None:
        self.dataset, self.transform, self.seed = dataset, transform, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: int | tuple[int, int]):
        image, label = self.dataset[key[0] if isinstance(key, tuple) else key]
        return seeded(self.transform, image, self.seed, key), label
{%- endif %}
{%- if tensors %}


class TensorImages(Dataset):
    """Images held as one tensor.

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
        self.images = transform(images)  # uint8 (N, C, H, W) -> float32 (N, C, H, W)
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
{%- endif %}


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
        """Shuffle for epoch; a run resumed mid-epoch passes start, the samples it already trained on."""
        super().set_epoch(epoch)
        self.start = start

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

    Augmentation is then a function of the sample and the epoch alone: the same in both paths, in any
    worker, and after a resume, whenever the loader happens to start its workers.
    """
    index, epoch = key if isinstance(key, tuple) else (key, 0)
    with torch.random.fork_rng(devices=[]):  # the global RNG, which dropout uses, is left untouched
        torch.manual_seed(hash((seed, epoch, index)) & 0xFFFF_FFFF_FFFF)
        return transform(image)


class DataModule(L.LightningDataModule):
    """{{ {"digits": "The 8x8 digits (1,797 images, 10 classes), split train/val/test by a seeded generator.", "mnist": "MNIST (28x28 handwritten digits): a seeded train/val split of the train set, and the test set.", "fashion_mnist": "Fashion-MNIST (28x28 clothes): a seeded train/val split of the train set, and the test set.", "cifar10": "CIFAR-10 (32x32 colour images): a seeded train/val split of the train set, and the test set.", "image_folder": "Your own images, one subfolder per class.\n\n    Either data_dir/train and data_dir/val (and data_dir/test, else val serves as test), or one\n    folder of class subfolders split train/val/test by a seeded generator."}[ds] }}

    Args:
        data_dir: {{ "unused: the digits are embedded." if ds == "digits" else "where the data lives" + (" (downloaded there when missing)." if ds != "image_folder" else ".") }}
        batch_size: samples per batch, for every split.
        num_workers: loader worker processes; 0 loads in the main process.
        val_fraction: share of the {{ "samples" if one_set or ds == "image_folder" else "training samples" }} held out for validation.
{%- if one_set or ds == "image_folder" %}
        test_fraction: share of the samples held out for the final test{{ " (one folder only)" if ds == "image_folder" }}.
{%- endif %}
        seed: fixes the split and the per-epoch shuffle order.
        pin_memory: page-lock batches for faster, asynchronous copies to a GPU; None: when there is one.
        worker_timeout: seconds a loader waits for one batch from its workers before it stops the run
            with an error, instead of waiting forever on a stuck worker.
{%- if ds == "image_folder" %}
        image_size: images are resized and cropped to image_size x image_size.
{%- endif %}
    """

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: PositiveInt = 32,
        num_workers: NonNegativeInt = {{ 0 if ds == "digits" else 2 }},
        val_fraction: OpenUnitInterval = {{ "0.15" if one_set or ds == "image_folder" else "0.1" }},
{%- if one_set or ds == "image_folder" %}
        test_fraction: OpenUnitInterval = 0.15,
{%- endif %}
        seed: int = 42,
        pin_memory: bool | None = None,
        worker_timeout: PositiveFloat = 120.0,
{%- if ds == "image_folder" %}
        image_size: PositiveInt = 64,
{%- endif %}
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
{%- if one_set or ds == "image_folder" %}
        if val_fraction + test_fraction >= 1:
            raise DataError(f"--data.val_fraction {val_fraction} + --data.test_fraction {test_fraction} must be < 1")
{%- endif %}
{%- if tensors %}
        # Deterministic preprocessing: it runs once over the whole set in setup().
        self.transform = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])
        self.class_names = CLASS_NAMES
        self.input_shape = INPUT_SHAPE  # (C, H, W)
{%- else %}
        to_input = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]
        self.transform = v2.Compose([v2.Resize(image_size), v2.CenterCrop(image_size), *to_input])
        self.train_transform = v2.Compose([v2.RandomResizedCrop(image_size), v2.RandomHorizontalFlip(), *to_input])
        self.class_names = class_folders(Path(data_dir))  # read now: the network's size depends on it
        self.input_shape = (3, image_size, image_size)  # (C, H, W)
{%- endif %}
        self.splits: dict[str, Dataset] = {}
        self.first_epoch = 0

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_channels(self) -> int:
        return self.input_shape[0]

    def prepare_data(self) -> None:
        """Download step, run on one process only."""
{%- if ds == "image_folder" %}
        class_folders(Path(self.hparams.data_dir))  # nothing to fetch; fail early if it is not there
{%- else %}
        download(self.hparams.data_dir)
{%- endif %}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:  # both paths and every stage share one split
            return
        hp = self.hparams
        generator = torch.Generator().manual_seed(hp.seed)
{%- if tensors %}
        sets, augment = load_images(hp.data_dir), augmentation()  # uint8 (N, C, H, W), int64 (N,)
{%- if one_set %}
        images, labels = sets["all"]
        fractions = [1 - hp.val_fraction - hp.test_fraction, hp.val_fraction, hp.test_fraction]
        parts = random_split(range(len(labels)), fractions, generator=generator)
        self.indices = dict(zip(("train", "val", "test"), (part.indices for part in parts), strict=True))
{%- else %}
        images, labels = sets["train"]
        parts = random_split(range(len(labels)), [1 - hp.val_fraction, hp.val_fraction], generator=generator)
        self.indices = dict(zip(("train", "val"), (part.indices for part in parts), strict=True))
{%- endif %}
        self.splits = {
            name: TensorImages(images[idx], labels[idx], self.transform, augment if name == "train" else None, hp.seed)
            for name, idx in self.indices.items()
        }
{%- if not one_set %}
        self.splits["test"] = TensorImages(*sets["test"], self.transform)
{%- endif %}
{%- else %}
        root = Path(hp.data_dir)
        names, transforms = ("train", "val", "test"), (self.train_transform, self.transform, self.transform)
        if (root / "train").is_dir():
            test_dir = root / "test" if (root / "test").is_dir() else root / "val"
            parts = [open_folder(folder) for folder in (root / "train", root / "val", test_dir)]
            for name, part in zip(names, parts, strict=True):
                if part.classes != self.class_names:
                    raise DataError(f"{root}/{name} has classes {part.classes}, train has {self.class_names}")
        else:
            fractions = [1 - hp.val_fraction - hp.test_fraction, hp.val_fraction, hp.test_fraction]
            parts = random_split(open_folder(root), fractions, generator=generator)
        self.splits = {
            name: Transformed(part, transform, hp.seed)
            for name, part, transform in zip(names, parts, transforms, strict=True)
        }
{%- endif %}

    def predict_transform(self, image: Image.Image) -> torch.Tensor:
        """One picture, as predict.py reads it, to the network's input (C, H, W)."""
{%- if tensors %}
        c, h, w = self.input_shape
        image = image.convert("L" if c == 1 else "RGB").resize((w, h), Image.Resampling.BILINEAR)
        return self.transform(v2.functional.pil_to_tensor(image).unsqueeze(0))[0]  # uint8 -> float
{%- else %}
        return self.transform(image.convert("RGB"))
{%- endif %}

    def train_dataloader(self) -> DataLoader:
        sampler = EpochSeededSampler(self.splits["train"], self.hparams.seed)
        # Lightning makes a fit's first iterator before it calls set_epoch, and loader workers take their
        # first indices then: start at the epoch a resumed run starts with (0 otherwise).
        sampler.set_epoch(self.first_epoch)
        return self._loader("train", sampler=sampler)

    def state_dict(self) -> dict[str, int]:
        """Saved in Lightning's checkpoints at the end of an epoch: the epoch a resumed run starts with."""
        return {"first_epoch": self.trainer.current_epoch + 1 if self.trainer is not None else 0}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self.first_epoch = state_dict["first_epoch"]

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
