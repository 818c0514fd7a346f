"""The Datasets the DataModule builds: images in memory or on disk, each sample's augmentation seeded.

Augmentation is a function of the sample and the epoch alone (``seeded``), so it is the same on every
rung, in any loader worker, and after a resume.
"""

import torch
from torch.utils.data import Dataset, default_collate
from torchvision.transforms import v2


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


def seeded(transform: v2.Transform, image, seed: int, key: int | tuple[int, int]):
    """Apply a random transform with the RNG seeded by (seed, epoch, index) for this one sample.

    Augmentation is then a function of the sample and the epoch alone: the same on every rung, in any
    worker, and after a resume, whenever the loader happens to start its workers.
    """
    index, epoch = key if isinstance(key, tuple) else (key, 0)
    with torch.random.fork_rng(devices=[]):  # the global RNG, which dropout uses, is left untouched
        torch.manual_seed(hash((seed, epoch, index)) & 0xFFFF_FFFF_FFFF)
        return transform(image)
