"""The data: Dataset, transforms, splits and loaders, owned by one LightningDataModule.

Both training paths read their batches from this DataModule, so a transform, a split or a sampling
rule is written once here and serves Lightning's Trainer and the hand-written loop alike.
"""

import lightning as L
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler, TensorDataset, random_split
from torchvision.transforms import v2

# Pixel statistics of the digits scaled to [0, 1], measured once over the whole set.
DIGITS_MEAN, DIGITS_STD = 0.3053, 0.3759


def load_digits_images() -> tuple[torch.Tensor, torch.Tensor]:
    """Return scikit-learn's embedded 8x8 digits as uint8 images (N, 1, 8, 8) and int64 labels (N,).

    The set ships inside scikit-learn's wheel, so nothing is downloaded. Its pixels run from 0 to
    16; scaling them to 0..255 makes them ordinary 8-bit images for the standard transforms.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(digits.images * (255 / 16)).round().to(torch.uint8)
    return images.unsqueeze(1), torch.from_numpy(digits.target).long()


class EpochSeededSampler(DistributedSampler):
    """Shuffles with the generator seeded by ``seed + epoch``, set through ``set_epoch``.

    A plain ``shuffle=True`` loader draws each epoch's order from a generator whose state depends on
    how many iterators were created before, and the Trainer creates them at other moments than a
    plain loop does: the two paths then see other batches from epoch 2 on. Here the order is a
    function of the epoch alone. Lightning calls ``set_epoch`` at the start of every epoch, and the
    manual loop calls it as every DistributedDataParallel loop does. Under DDP each rank gets its
    own shard of the same permutation.
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


class DataModule(L.LightningDataModule):
    """The 8x8 digits (1,797 images, 10 classes), split train/val/test by a seeded generator.

    Args:
        data_dir: where datasets that need downloading keep their files (the digits need none).
        batch_size: samples per batch, for every split.
        num_workers: loader worker processes; 0 loads in the main process, fastest for small in-memory data.
        val_fraction: share of the samples held out for validation.
        test_fraction: share of the samples held out for the final test.
        seed: fixes the split and the per-epoch shuffle order.
        pin_memory: page-lock batches for faster copies to a GPU.
    """

    num_classes = 10
    input_shape = (1, 8, 8)  # (C, H, W)

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 32,
        num_workers: int = 0,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        seed: int = 42,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        # Deterministic preprocessing only: it runs once over the whole set in setup().
        self.transform = v2.Compose(
            [v2.ToDtype(torch.float32, scale=True), v2.Normalize([DIGITS_MEAN], [DIGITS_STD])]
        )
        self.splits: dict[str, Dataset] = {}

    @property
    def num_channels(self) -> int:
        return self.input_shape[0]

    def prepare_data(self) -> None:
        """Download step, run on one process only. The digits are embedded: nothing to fetch."""

    def setup(self, stage: str | None = None) -> None:
        if self.splits:  # both paths and every stage share one split
            return
        images, labels = load_digits_images()  # (N, 1, 8, 8) uint8, (N,) int64
        dataset = TensorDataset(self.transform(images), labels)  # (N, 1, 8, 8) float32
        hp = self.hparams
        fractions = [1 - hp.val_fraction - hp.test_fraction, hp.val_fraction, hp.test_fraction]
        generator = torch.Generator().manual_seed(hp.seed)
        parts = random_split(dataset, fractions, generator=generator)
        self.splits = dict(zip(("train", "val", "test"), parts))

    def train_dataloader(self) -> DataLoader:
        sampler = EpochSeededSampler(self.splits["train"], seed=self.hparams.seed)
        return self._loader("train", sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")

    def _loader(self, split: str, sampler: DistributedSampler | None = None) -> DataLoader:
        workers = self.hparams.num_workers
        return DataLoader(
            self.splits[split],
            batch_size=self.hparams.batch_size,
            sampler=sampler,
            num_workers=workers,
            pin_memory=self.hparams.pin_memory,
            persistent_workers=workers > 0,
            # A loader-owned generator keeps loaders from drawing on the global RNG, which the
            # model's initialisation and dropout use; its draws only seed worker processes.
            generator=torch.Generator().manual_seed(self.hparams.seed),
        )
