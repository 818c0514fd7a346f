"""Tiny stand-ins for the real data, in its real on-disk format, so the real loading code runs offline.

Each data set's writer is in ``fakes/<data set>.py``. Each class gets its own bright patch on noise:
easy enough that a few steps learn it.
"""

import os
from importlib import import_module
from pathlib import Path

import numpy as np

from {{ cookiecutter.package_name }}.data import DATASET

TRAIN, TEST = 240, 60


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
    import_module(f"fakes.{DATASET}").write(data_dir)
    return data_dir


def accept_fake_files() -> None:
    """Relax a check that only the real files pass (CIFAR-10's MD5 sums), where the data set has one."""
    getattr(import_module(f"fakes.{DATASET}"), "accept_fake_files", lambda: None)()


def stall_loader_workers() -> None:
    """Make every DataLoader worker of this process wait forever: a stand-in for a worker that hangs."""
    import time

    from torch.utils.data._utils import fetch

    fetch._MapDatasetFetcher.fetch = lambda self, index: time.sleep(3600)


def slow_down_batches(seconds: float) -> None:
    """Make every batch take ``seconds`` longer to load: a run that is still under way when a test stops it."""
    import time

    from torch.utils.data._utils import fetch

    load = fetch._MapDatasetFetcher.fetch

    def slow_fetch(self, index):
        time.sleep(seconds)
        return load(self, index)

    fetch._MapDatasetFetcher.fetch = slow_fetch


if os.environ.get("BATCH_DELAY"):  # seconds
    slow_down_batches(float(os.environ["BATCH_DELAY"]))

# The stall test names a rank; a loader worker runs this file again first (as __mp_main__), so it stalls too.
STALL_TEST = os.environ.get("STALL_RANK") is not None
STALLED = STALL_TEST and os.environ.get("STALL_RANK") == os.environ.get("LOCAL_RANK", "0")
if STALLED:
    stall_loader_workers()


if __name__ == "__main__":
    # python tests/fake_data.py ENTRY.py ARGS...: run an entry point on the fake files, in a fresh process.
    # sys.argv[0] stays this file (runpy would set it to the entry's) and the entry goes into the
    # environment: the processes that Lightning launches for DDP re-run sys.argv, and come through here too.
    import sys

    accept_fake_files()
    if len(sys.argv) > 1 and sys.argv[1].endswith(".py"):
        os.environ["FAKE_DATA_ENTRY"] = os.path.abspath(sys.argv.pop(1))
    if STALL_TEST:  # one loader worker on the stalled rank, none on the others: each rank's server imports all
        sys.argv += ["--data.num_workers", "1" if STALLED else "0"]  # last wins: a launched rank re-appends
    entry = os.environ["FAKE_DATA_ENTRY"]
    exec(compile(Path(entry).read_text(), entry, "exec"), {"__name__": "__main__", "__file__": entry})
