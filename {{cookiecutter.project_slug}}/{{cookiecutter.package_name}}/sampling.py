"""Which sample comes when, and in which process: the DataModule's samplers and its loader workers.

The shuffled order is a function of the seed and the epoch alone, so every rung, and a resumed run,
trains on the same batches in the same order.
"""

import itertools
import multiprocessing
import sys
from collections.abc import Iterator

import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler


class EpochSeededSampler(DistributedSampler):
    """Shuffles with a generator seeded by ``seed + epoch``, the epoch given by ``set_epoch``.

    The order is then a function of the epoch alone, never of how often a loader was iterated or
    what else drew random numbers before (docs/design_decisions.md says why that matters). Lightning
    calls ``set_epoch`` at the start of every epoch, and the manual loop calls it as every
    DistributedDataParallel loop does. Under DDP each rank gets its own shard of the permutation.
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
        self.start = 0

    def set_epoch(self, epoch: int, start: int | None = None) -> None:
        """Shuffle for epoch; a run resumed mid-epoch passes start, the samples it already trained on.

        Without a start, one given before for this same epoch stays: Lightning calls ``set_epoch(epoch)`` as
        an epoch begins, after the DataModule has set where a resumed epoch starts. A checkpoint written
        after an epoch's last batch, before its end, counts that batch as full: the start is then past this
        rank's shard, which is all trained on.
        """
        if start is None:
            start = self.start if epoch == self.epoch else 0
        super().set_epoch(epoch)
        self.start = min(start, self.num_samples)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        # (index, epoch): the dataset seeds a sample's random augmentation with both
        return ((index, self.epoch) for index in itertools.islice(super().__iter__(), self.start, None))

    def __len__(self) -> int:
        # The whole shard, also when a resumed epoch starts further in: Lightning counts an epoch's batches
        # from the loader's length and the batches it trained on before, as the manual loop does.
        return super().__len__()


def shard_in_order(dataset: Dataset) -> DistributedSampler | None:
    """Under DDP, this rank's share of an evaluation split, unshuffled; None in a single process.

    The sampler Lightning would add itself, made here so the manual loop evaluates on the same shards.
    It pads the split to a multiple of the world size by repeating a few samples, as Lightning does.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return None
    return DistributedSampler(dataset, shuffle=False)


def worker_context() -> multiprocessing.context.BaseContext:
    """How loader workers start: from a clean server process ("forkserver"), never by forking this one.

    A plain fork copies this process while other threads run in it (gloo's under DDP, a logger's, the
    progress bar's), and a lock one of them holds stays locked forever in the child: the worker, and
    the rank waiting on it, hang. The server is started afresh and forks the workers from itself; it
    imports this project's modules once, so a worker starts in a fraction of a second
    (docs/design_decisions.md). Windows has no forkserver: spawn.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # A worker re-runs the entry script as __mp_main__; with the project imported already, that is cheap.
    package = __name__.rpartition(".")[0]
    context.set_forkserver_preload(sorted(name for name in sys.modules if name.startswith(package + ".")))
    return context
