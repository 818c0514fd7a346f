"""A stop signal, answered alike on every rung: save where the run stands, close the loggers, exit STOPPED.

Schedulers take machines back with a signal and a grace period: SIGTERM (Kubernetes, spot instances,
``scancel``, torchrun passing its own on) and SIGUSR1, which ``#SBATCH --signal=USR1@<seconds>`` sends before
a SLURM job's time runs out. ``StopSignal`` only records the signal: the run stops at the next batch
boundary, where the ranks agree on it, so a save is never cut short by the handler and no rank waits for
one that has left. docs/preemption.md has the whole story.
"""

import signal
from types import FrameType

import torch
import torch.distributed as dist

from .errors import Stopped

SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopSignal:
    """Records SIGTERM and SIGUSR1 from ``install`` on, and tells each rank whether the run must stop now."""

    def __init__(self, device: torch.device | None = None) -> None:
        self.device = device or torch.device("cpu")  # where the ranks' flags meet (NCCL needs the GPU)
        self.received = 0  # the signal's number, 0 for none
        self.previous: dict[int, object] = {}

    def install(self) -> "StopSignal":
        """Catch the stop signals in this process (the main thread's handlers), until ``restore``."""
        for signum in SIGNALS:
            self.previous.setdefault(signum, signal.getsignal(signum))
            signal.signal(signum, self.catch)
        return self

    def restore(self) -> None:
        """The handlers from before ``install``: once the run is over, a signal does what it did before."""
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous = {}

    def catch(self, signum: int, frame: FrameType | None) -> None:
        self.received = signum

    def agreed(self) -> int:
        """The signal that stops the run, the same on every rank (0: go on); one all_reduce under DDP.

        Whichever ranks got a signal, one, all or none, every rank gets the same answer at the same batch.
        """
        received = self.received
        if dist.is_available() and dist.is_initialized():
            flag = torch.tensor([received], dtype=torch.int64, device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            received = int(flag.item())
        return received

    def stop_if_asked(self, epoch: int, batch: int, save) -> None:
        """At a batch boundary: when a signal came, ``save()`` where the run stands, then raise ``Stopped``."""
        received = self.agreed()
        if received:
            save()
            raise Stopped(signal.Signals(received).name, epoch, batch)
