"""scikit-learn's 8x8 digits: 1,797 images of 10 classes, shipped inside scikit-learn's wheel."""

import torch
from torchvision.transforms import v2

MEAN, STD = (0.3053,), (0.3759,)  # of the digits scaled to [0, 1], measured once over the whole set
IMAGE_SIZE = 8


def class_names(data_dir: str) -> list[str]:
    return [str(digit) for digit in range(10)]


def prepare(data_dir: str) -> None:
    """Nothing to fetch: the digits are embedded."""


def load(data_dir: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """All the digits as one set to split: uint8 images (N, 1, 8, 8) and int64 labels (N,).

    Their pixels run from 0 to 16; scaling them to 0..255 makes them ordinary 8-bit images.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(digits.images * (255 / 16)).round().to(torch.uint8)
    return {"all": (images.unsqueeze(1), torch.from_numpy(digits.target).long())}


def augmentation(image_size: int) -> v2.Transform | None:
    return None  # 8x8 digits are too small to crop or flip
