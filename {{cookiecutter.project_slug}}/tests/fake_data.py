{%- set ds = cookiecutter.dataset -%}
"""Tiny stand-ins for the real data, in its real on-disk format, so the real loading code runs offline.

Each class gets its own bright patch on noise: easy enough that a few steps learn it.
"""

import os
{{ {"cifar10": "import pickle\n", "mnist": "import struct\n", "fashion_mnist": "import struct\n"}.get(ds, "") }}from pathlib import Path

import numpy as np
{%- if ds == "image_folder" %}
from PIL import Image

CLASSES = ["circle", "square", "triangle"]
{%- endif %}

TRAIN, TEST = 240, 60


def stall_loader_workers() -> None:
    """Make every DataLoader worker of this process wait forever: a stand-in for a worker that hangs."""
    import time

    from torch.utils.data._utils import fetch

    fetch._MapDatasetFetcher.fetch = lambda self, index: time.sleep(3600)


# The stall test names a rank; a loader worker runs this file again first (as __mp_main__), so it stalls too.
if os.environ.get("STALL_RANK") is not None and os.environ.get("STALL_RANK") == os.environ.get("LOCAL_RANK", "0"):
    stall_loader_workers()


def images_of(labels: np.ndarray, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """uint8 images (N, *shape) of noise with a bright patch whose position depends on the label."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, size=(len(labels), *shape), dtype=np.uint8)
    h, w = shape[-2], shape[-1]
    for image, label in zip(images, labels, strict=True):
        row, col = divmod(int(label), 4)
        image[..., row * h // 4 : (row + 1) * h // 4, col * w // 4 : (col + 1) * w // 4] = 250
    return images


def write(data_dir: Path) -> Path:
    """Write the fake data set under data_dir and return data_dir."""
{%- if ds == "digits" %}
    return data_dir  # the digits are embedded: the real data is already offline
{%- elif ds in ["mnist", "fashion_mnist"] %}
    {%- set folder = "MNIST" if ds == "mnist" else "FashionMNIST" %}
    raw = data_dir / "{{ folder }}" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, count, seed in (("train", TRAIN, 0), ("t10k", TEST, 1)):
        labels = np.arange(count, dtype=np.uint8) % 10
        images = images_of(labels, (28, 28), seed)
        # IDX: magic (0x0803 images, 0x0801 labels), big-endian dimensions, then the bytes
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, count, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, count) + labels.tobytes())
    return data_dir
{%- elif ds == "cifar10" %}
    folder = data_dir / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names}, f)
    batches = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(batches):
        count = TEST if name == "test_batch" else TRAIN // 5
        labels = (np.arange(count) + i) % 10
        images = images_of(labels, (3, 32, 32), i)  # rows of 3072 bytes: R plane, G plane, B plane
        with open(folder / name, "wb") as f:
            pickle.dump({"data": images.reshape(count, -1), "labels": labels.tolist()}, f)
    return data_dir
{%- elif ds == "image_folder" %}
    for split, count, seed in (("train", TRAIN, 0), ("val", TEST, 1)):
        labels = np.arange(count) % len(CLASSES)
        for index, (image, label) in enumerate(zip(images_of(labels, (3, 24, 24), seed), labels, strict=True)):
            folder = data_dir / split / CLASSES[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.transpose(1, 2, 0)).save(folder / f"{index}.png")
    return data_dir
{%- endif %}


def accept_fake_files() -> None:
    """{{ "torchvision checks CIFAR-10's files against their MD5 sums; the tiny fakes pass on existence alone." if ds == "cifar10" else "Nothing to relax: torchvision checks these files' existence only." }}"""
{%- if ds == "cifar10" %}
    import os

    import torchvision.datasets.cifar as cifar

    cifar.check_integrity = lambda path, md5=None: os.path.isfile(path)
{%- endif %}


if __name__ == "__main__":
    # python tests/fake_data.py ENTRY.py ARGS...: run an entry point on the fake files, in a fresh process.
    # sys.argv[0] stays this file (runpy would set it to the entry's) and the entry goes into the
    # environment: the processes that Lightning launches for DDP re-run sys.argv, and come through here too.
    import sys

    accept_fake_files()
    if len(sys.argv) > 1 and sys.argv[1].endswith(".py"):
        os.environ["FAKE_DATA_ENTRY"] = os.path.abspath(sys.argv.pop(1))
    entry = os.environ["FAKE_DATA_ENTRY"]
    exec(compile(Path(entry).read_text(), entry, "exec"), {"__name__": "__main__", "__file__": entry})
