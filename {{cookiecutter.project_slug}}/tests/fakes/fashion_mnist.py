"""A tiny Fashion-MNIST in its real on-disk format: IDX files under FashionMNIST/raw, as MNIST's."""

import struct
from pathlib import Path

import numpy as np

from fake_data import TEST, TRAIN, images_of


def write(data_dir: Path) -> None:
    raw = data_dir / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, count, seed in (("train", TRAIN, 0), ("t10k", TEST, 1)):
        labels = np.arange(count, dtype=np.uint8) % 10
        images = images_of(labels, (28, 28), seed)
        # IDX: magic (0x0803 images, 0x0801 labels), big-endian dimensions, then the bytes
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, count, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, count) + labels.tobytes())
