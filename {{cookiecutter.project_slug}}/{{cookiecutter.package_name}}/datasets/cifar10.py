"""CIFAR-10: 32x32 colour images of 10 classes, 50,000 for training and 10,000 for testing (torchvision)."""

import torch
from torchvision import datasets
from torchvision.transforms import v2

from ..errors import DataError

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)  # of the training images scaled to [0, 1]
IMAGE_SIZE = 32


def class_names(data_dir: str) -> list[str]:
    return ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def prepare(data_dir: str) -> None:
    """Fetch and unpack data_dir/cifar-10-batches-py, only when it is missing or corrupt."""
    try:
        datasets.CIFAR10(data_dir, train=True, download=True)
    except (OSError, RuntimeError) as error:
        raise DataError(missing_message(data_dir, error)) from error


def load(data_dir: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """uint8 images (N, 3, 32, 32) and int64 labels (N,) of the official train and test sets."""
    try:
        parts = {"train": datasets.CIFAR10(data_dir, train=True), "test": datasets.CIFAR10(data_dir, train=False)}
    except (OSError, RuntimeError) as error:
        raise DataError(missing_message(data_dir, error)) from error
    # .data is (N, H, W, C) uint8; torchvision's v2 transforms want (N, C, H, W)
    return {
        name: (torch.from_numpy(part.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(part.targets))
        for name, part in parts.items()
    }


def augmentation(image_size: int) -> v2.Transform | None:
    return v2.Compose([v2.RandomCrop(image_size, padding=image_size // 8), v2.RandomHorizontalFlip()])


def missing_message(data_dir: str, error: Exception) -> str:
    reason = " ".join(str(error).split())  # torchvision's reasons span lines; the message is one
    return (
        f"CIFAR-10 is not in {data_dir}/cifar-10-batches-py and could not be downloaded ({reason}). "
        "Unpack cifar-10-python.tar.gz there, or point --data.data_dir at a directory that has it."
    )
