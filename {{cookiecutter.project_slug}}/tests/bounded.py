"""Run a command in a subprocess that cannot hang a test, and that says where it stood if it stalls.

The command gets its own process group: its children (DDP ranks, their loader workers) are in it too.
Past the time limit every Python process of the group is sent SIGABRT; with PYTHONFAULTHANDLER set,
each prints the stack of every one of its threads before it dies. The test then fails with the
command's own stdout and stderr, those stacks included, so a stall can be read from the CI log alone.
"""

import os
import signal
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 240  # a DDP run of a few epochs takes 10-40 s on 2 cores; four times that is a stall
KEEP = 20_000  # characters of each stream shown on a stall: every stack, and the last lines before it


def run_bounded(command: list[str], env: dict[str, str] | None = None, timeout: float = TIMEOUT):
    """Run ``command`` from the project root; on a stall, dump every thread's stack and fail the test."""
    env = {**(os.environ if env is None else env), "PYTHONFAULTHANDLER": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        out, err = stop_with_stacks(proc)
        pytest.fail(
            f"{' '.join(command)}\nran past {timeout} s. Its output, then each process's threads at the stall:\n"
            f"--- stdout ---\n{out[-KEEP:]}\n--- stderr ---\n{err[-KEEP:]}",
            pytrace=False,
        )
    finally:
        signal_group(proc.pid, signal.SIGKILL)  # a loader worker or a rank that outlived its parent
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def stop_with_stacks(proc: subprocess.Popen) -> tuple[str, str]:
    """SIGABRT the whole group (faulthandler dumps each process's threads), then SIGKILL what is left."""
    signal_group(proc.pid, signal.SIGABRT)
    try:
        return proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        signal_group(proc.pid, signal.SIGKILL)
        return proc.communicate()


def signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass  # the group has ended already
