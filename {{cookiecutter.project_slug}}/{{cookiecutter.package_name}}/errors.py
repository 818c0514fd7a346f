"""Every error a user can act on, and the one line that reports it.

An entry wraps its work in ``one_line_errors()``: each of these errors then ends the run with one line on
stderr that says what to do, and exit status 2, instead of a traceback. The tools' own options fail the
same way (``ArgumentParser``).
"""

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from lightning.fabric.utilities.rank_zero import rank_zero_only

from .distributed import describe_stall


class ConfigError(ValueError):
    """A combination of options that this project cannot run."""


class DataError(RuntimeError):
    """Data that is missing or malformed."""


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, truncated, unsafe to unpickle, or of another network."""


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or inf."""


class RefusedOption(ValueError):
    """A trainer option that a hand-written loop does not mirror."""


USER_ERRORS = (ConfigError, DataError, CheckpointError, NonFiniteLossError, RefusedOption)
# sysexits.h's EX_TEMPFAIL, "try again later": a run stopped by a signal, saved, to be resumed; not finished, not failed
STOPPED = 75


class Stopped(Exception):
    """A stop signal ended the run at a batch boundary, after it saved ``last`` with its place in the epoch."""

    def __init__(self, signal_name: str, epoch: int, batch: int) -> None:
        self.signal_name, self.epoch, self.batch = signal_name, epoch, batch
        super().__init__(f"stopped by {signal_name} at epoch {epoch}, batch {batch}: resume with --ckpt_path last")


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn the errors a user can act on into one line on stderr and exit status 2, not a traceback.

    Under DDP the line names the rank, and a stall says what the rank waited on (exit status 3). A run that a
    signal stopped says where, and how to resume, with exit status ``STOPPED``.
    """
    try:
        yield
    except Stopped as stop:  # one line, from rank 0 only: every rank stopped at the same batch
        if rank_zero_only.rank == 0:
            print(stop, file=sys.stderr)
        raise SystemExit(STOPPED) from None
    except USER_ERRORS as error:
        exit_with(f"{rank_prefix()}{error}")
    except RuntimeError as error:
        stall = describe_stall(error)
        if stall is None:
            raise
        exit_with(f"{rank_prefix()}{stall}", status=3)


def exit_with(message: str, status: int = 2) -> NoReturn:
    """Print ``error: <message>`` on stderr and leave with ``status``."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(status) from None


def rank_prefix() -> str:
    """'rank 1: ' in a process of a multi-process run, '' in a single process."""
    # torchrun and Lightning's launcher set LOCAL_RANK for every rank; Lightning unsets WORLD_SIZE at teardown
    multi = "LOCAL_RANK" in os.environ or int(os.environ.get("WORLD_SIZE", 1)) > 1
    return f"rank {rank_zero_only.rank}: " if multi else ""


class ArgumentParser(argparse.ArgumentParser):
    """argparse for an entry's own options: its docstring as the help, and a bad option as one line, exit 2.

    ``parse_known_args`` leaves the rest, the project's options, to the project's parser.
    """

    def __init__(self, description: str | None = None, **kwargs) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(description=description, **kwargs)

    def error(self, message: str) -> NoReturn:
        exit_with(f"{' '.join(message.split())} (--help lists every option)")
