"""Your own images, one subfolder per class.

Either ``data_dir/train`` and ``data_dir/val`` (and ``data_dir/test``; else val serves as test), each of
class subfolders, or one folder of class subfolders that the DataModule splits by a seeded generator.
"""

from pathlib import Path

from torch.utils.data import Dataset
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2

from ..errors import DataError

# ImageNet's statistics: the usual choice for photographs when the set's own are not measured.
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
IMAGE_SIZE = 64


def class_names(data_dir: str) -> list[str]:
    """The class subfolders, sorted, as ImageFolder sees them: read early, since the network's size depends on it."""
    root = Path(data_dir)
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


def prepare(data_dir: str) -> None:
    class_names(data_dir)  # nothing to fetch; fail early if it is not there


def load(data_dir: str) -> dict[str, Dataset]:
    """``(PIL image, label)`` datasets: train, val and test from their folders, or one folder as "all"."""
    root = Path(data_dir)
    if not (root / "train").is_dir():
        return {"all": open_folder(root)}
    test = root / "test" if (root / "test").is_dir() else root / "val"
    parts = {"train": open_folder(root / "train"), "val": open_folder(root / "val"), "test": open_folder(test)}
    for name, part in parts.items():
        if part.classes != parts["train"].classes:
            raise DataError(f"{root}/{name} has classes {part.classes}, train has {parts['train'].classes}")
    return parts


def augmentation(image_size: int) -> v2.Transform | None:
    return v2.Compose([v2.RandomResizedCrop(image_size), v2.RandomHorizontalFlip()])


def open_folder(path: Path) -> ImageFolder:
    try:
        return ImageFolder(str(path), allow_empty=False)
    except (FileNotFoundError, OSError) as error:
        raise DataError(f"{path} is not a usable image folder: {error}") from error
