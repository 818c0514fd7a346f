"""A tiny image folder: train/ and val/ of class subfolders of PNG files, read by ImageFolder."""

from pathlib import Path

import numpy as np
from PIL import Image

from fake_data import TEST, TRAIN, images_of

CLASSES = ["circle", "square", "triangle"]


def write(data_dir: Path) -> None:
    for split, count, seed in (("train", TRAIN, 0), ("val", TEST, 1)):
        labels = np.arange(count) % len(CLASSES)
        for index, (image, label) in enumerate(zip(images_of(labels, (3, 24, 24), seed), labels, strict=True)):
            folder = data_dir / split / CLASSES[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.transpose(1, 2, 0)).save(folder / f"{index}.png")
