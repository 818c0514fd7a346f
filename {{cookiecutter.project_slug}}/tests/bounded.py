"""Run a command in a subprocess that cannot hang a test, and that says where it stood if it stalls.

The command gets its own process group: its children (DDP ranks, their loader workers) are in it too,
except torchrun's ranks, which torchrun starts in sessions of their own; signals go to the whole process
tree as well. Past the time limit every Python process of the tree is sent SIGABRT; with PYTHONFAULTHANDLER
set, each prints the stack of every one of its threads before it dies. The test then fails with the
command's own stdout and stderr, those stacks included, so a stall can be read from the CI log alone.
"""

import os
import signal
import subprocess
import time
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
        signal_group(proc.pid, signal.SIGKILL)  # a loader worker that outlived its parent
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def stop_with_stacks(proc: subprocess.Popen) -> tuple[str, str]:
    """SIGABRT the whole group (faulthandler dumps each process's threads), then SIGKILL what is left."""
    signal_tree(proc.pid, signal.SIGABRT)
    try:
        return proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        signal_tree(proc.pid, signal.SIGKILL)
        return proc.communicate()


def signal_tree(pid: int, sig: signal.Signals) -> None:
    """Signal ``pid``'s process group, and every process below ``pid`` whatever its group."""
    for member in process_tree(pid):
        try:
            os.kill(member, sig)
        except ProcessLookupError:
            pass  # it has ended already
    signal_group(pid, sig)


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it, read from /proc (on a system without it: ``pid`` alone)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rpartition(")")[2].split()[1])  # the field after the process's name
        except (OSError, IndexError, ValueError):
            continue  # a process that ended while we read
        children.setdefault(parent, []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo += children.get(tree[-1], [])
    return tree


def signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass  # the group has ended already


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start ``command`` in a process group of its own, its output to ``log``.out and .err (no pipe to fill)."""
    env = {**env, "PYTHONFAULTHANDLER": "1", "PYTHONUNBUFFERED": "1"}
    out, err = open(f"{log}.out", "w"), open(f"{log}.err", "w")
    with out, err:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                start_new_session=True)  # fmt: skip


def wait_all(procs: dict[Path, subprocess.Popen], timeout: float = TIMEOUT) -> dict[Path, tuple[int, str, str]]:
    """Wait for every process ``start`` began (keyed by its log); past ``timeout``, stacks of all, and fail."""
    deadline = time.monotonic() + timeout
    try:
        for proc in procs.values():
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        for proc in procs.values():
            signal_tree(proc.pid, signal.SIGABRT)
        time.sleep(10)  # the faulthandlers write their stacks
        logs = "".join(f"--- {log.name} ---\n{read(log)[1][-KEEP:]}\n" for log in procs)
        pytest.fail(f"ran past {timeout} s. Each process's threads at the stall:\n{logs}", pytrace=False)
    finally:
        for proc in procs.values():  # the tree while it runs; once it has ended, its pid is not its own
            (signal_tree if proc.poll() is None else signal_group)(proc.pid, signal.SIGKILL)
            proc.wait()
    return {log: (proc.returncode, *read(log)) for log, proc in procs.items()}


def read(log: Path) -> tuple[str, str]:
    return Path(f"{log}.out").read_text(), Path(f"{log}.err").read_text()
