"""MNIST: 28x28 handwritten digits, 60,000 for training and 10,000 for testing (torchvision)."""

import torch
from torchvision import datasets
from torchvision.transforms import v2

from ..errors import DataError

MEAN, STD = (0.1307,), (0.3081,)  # of the training images scaled to [0, 1]
IMAGE_SIZE = 28


def class_names(data_dir: str) -> list[str]:
    return [name.split(" - ")[-1] for name in datasets.MNIST.classes]


def prepare(data_dir: str) -> None:
    """Fetch the IDX files into data_dir/MNIST/raw, only when they are missing."""
    try:
        datasets.MNIST(data_dir, train=True, download=True)
        datasets.MNIST(data_dir, train=False, download=True)
    except (OSError, RuntimeError) as error:
        raise DataError(missing_message(data_dir, error)) from error


def load(data_dir: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """uint8 images (N, 1, 28, 28) and int64 labels (N,) of the official train and test sets."""
    try:
        train, test = datasets.MNIST(data_dir, train=True), datasets.MNIST(data_dir, train=False)
    except (OSError, RuntimeError) as error:
        raise DataError(missing_message(data_dir, error)) from error
    return {"train": (train.data.unsqueeze(1), train.targets), "test": (test.data.unsqueeze(1), test.targets)}


def augmentation(image_size: int) -> v2.Transform | None:
    return v2.RandomAffine(degrees=10, translate=(0.1, 0.1))  # small shifts and turns keep the class


def missing_message(data_dir: str, error: Exception) -> str:
    reason = " ".join(str(error).split())  # torchvision's reasons span lines; the message is one
    return (
        f"MNIST is not in {data_dir}/MNIST/raw and could not be downloaded ({reason}). "
        "Copy the four IDX files there, or point --data.data_dir at a directory that has them."
    )
