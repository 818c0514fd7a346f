"""A stop signal (SIGTERM, SLURM's SIGUSR1) on every rung: last saved with its place in the epoch, the loggers
closed, one line, exit STOPPED; the rerun with --ckpt_path last goes on in the same run directory and tracker
run, to the weights of a run that was never stopped."""

import math
import os
import re
import signal
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from {{ cookiecutter.package_name }}.checkpoints import network_weights, save_checkpoint
from {{ cookiecutter.package_name }}.errors import STOPPED, one_line_errors
from {{ cookiecutter.package_name }}.preemption import SIGNALS, StopSignal
from {{ cookiecutter.package_name }}.runs import DEFAULT_LOGGER

from bounded import process_tree, read, run_bounded, signal_group, signal_tree, start
from conftest import QUICK, RUNG_ENTRIES
from test_distributed import PARITY_ARGS, ddp_command, ddp_env
from test_logging import READERS, wandb_records

BATCH = 32
SHORT = ["--trainer.max_epochs", "2", "--data.batch_size", str(BATCH), "--test", "false", "--save_every_n_steps", "0"]
LAST = {"trainer": "last.ckpt", "fabric": "last.pt", "manual": "last.pt"}


@pytest.fixture
def where() -> tuple[int, int]:
    """Where the signal stops a run of SHORT: epoch 1, batch 2; it comes right after that batch's step."""
    return 1, 2


def steps_to(where: tuple[int, int], datamodule) -> int:
    """The optimizer steps from the start of a run of SHORT to the end of batch ``where`` (one step a batch)."""
    datamodule.setup("fit")
    return where[0] * math.ceil(len(datamodule.splits["train"]) / BATCH) + where[1]


@contextmanager
def signal_after(steps: int, signum: signal.Signals):
    """Send ``signum`` to this process right after the optimizer's ``steps``-th step, as a scheduler would."""
    count, saved = 0, {signum: signal.getsignal(signum) for signum in SIGNALS}

    def hook(optimizer, args, kwargs) -> None:
        nonlocal count
        count += 1
        if count == steps:
            os.kill(os.getpid(), signum)

    handle = register_optimizer_step_post_hook(hook)
    try:
        yield
    finally:
        handle.remove()
        for each, handler in saved.items():  # pytest's own, back
            signal.signal(each, handler)


def position(checkpoint: Path) -> tuple[int, int]:
    """(epoch, batches done in it) that a checkpoint of any rung resumes at."""
    state = torch.load(checkpoint, weights_only=False)
    if "next_epoch" in state:  # a hand-written loop's
        return state["next_epoch"], state["next_batch"]
    return state["epoch"], state["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]["ready"]


def stop_then_resume(rung: str, args: list[str], signum: signal.Signals, where, datamodule, capsys) -> tuple[Path, str]:
    """Train until ``signum`` stops the run at ``where``, check what it left, then resume it; its run directory
    and its line."""
    entry = RUNG_ENTRIES[rung]
    with signal_after(steps_to(where, datamodule), signum), pytest.raises(SystemExit) as stopped, one_line_errors():
        entry.main(args)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert stopped.value.code == STOPPED, line
    [run_dir] = Path(args[args.index("--run_root") + 1]).iterdir()
    assert position(run_dir / "checkpoints" / LAST[rung]) == where
    handlers = [signal.getsignal(each) for each in SIGNALS]
    resumed = entry.main([*args, "--ckpt_path", "last"])
    assert resumed.run_dir == run_dir  # the same run, in the same directory
    assert [signal.getsignal(each) for each in SIGNALS] == handlers  # a finished run gives the signals back
    return run_dir, line


@pytest.mark.parametrize("rung", ["manual", "fabric", "trainer"])
def test_sigterm_mid_epoch_stops_every_rung_alike_and_the_rerun_ends_bit_identical(
    rung, quick_args, tmp_path, where, datamodule, capsys
):
    args = [*quick_args, *SHORT, "--logger", "csv"]
    run_dir, line = stop_then_resume(rung, args, signal.SIGTERM, where, datamodule, capsys)
    assert line == f"stopped by SIGTERM at epoch {where[0]}, batch {where[1]}: resume with --ckpt_path last"
    reference = RUNG_ENTRIES[rung].main([*args, "--run_root", str(tmp_path / "reference")])
    weights = network_weights(torch.load(run_dir / "checkpoints" / LAST[rung], weights_only=False))
    expected = network_weights(torch.load(reference.run_dir / "checkpoints" / LAST[rung], weights_only=False))
    assert all(torch.equal(weights[key], expected[key]) for key in expected)
    # one metrics.csv, each epoch's row once, at the steps of the run that was never stopped
    assert READERS["csv"](run_dir) == READERS["csv"](reference.run_dir)


@pytest.mark.parametrize("rung", ["manual", "fabric", "trainer"])
def test_slurms_signal_stops_the_run_as_sigterm_does(rung, quick_args, where, datamodule, capsys):
    _, line = stop_then_resume(rung, [*quick_args, *SHORT], signal.SIGUSR1, where, datamodule, capsys)
    assert line.startswith(f"stopped by SIGUSR1 at epoch {where[0]}, batch {where[1]}: ")


@pytest.mark.parametrize("rung", ["manual", "trainer"])
def test_the_rerun_continues_the_same_tracker_run(rung, quick_args, tmp_path, where, datamodule, capsys, monkeypatch):
    if DEFAULT_LOGGER in ("none", "csv"):
        pytest.skip("this bake's tracker is the CSV file, which the test above reads")
    monkeypatch.setenv("WANDB_MODE", "offline")
    args = [*quick_args, *SHORT, "--logger", DEFAULT_LOGGER]
    run_dir, _ = stop_then_resume(rung, args, signal.SIGTERM, where, datamodule, capsys)
    reference = RUNG_ENTRIES[rung].main([*args, "--run_root", str(tmp_path / "reference")])
    if DEFAULT_LOGGER == "wandb":  # one offline directory per process, both of the same wandb run
        runs = sorted(run_dir.glob("wandb/offline-run-*"))
        ids = {next(path.glob("run-*.wandb")).stem for path in runs}  # run-<id>.wandb
        assert len(runs) == 2 and len(ids) == 1, runs
        rows = [record.history for path in runs for record in wandb_records(next(path.glob("*.wandb")).read_bytes())]
        steps = [item.value_json for row in rows for item in row.item if item.key == "trainer/global_step"]
        assert steps == sorted(steps, key=int) and len(steps) == len(set(steps))  # neither repeated nor skipped
    else:
        assert READERS[DEFAULT_LOGGER](run_dir) == READERS[DEFAULT_LOGGER](reference.run_dir)


def test_a_stop_during_a_save_leaves_the_previous_checkpoint_readable(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint({"steps": 1}, path)
    real_save = torch.save

    def killed_midway(state, file):  # half a file written, then the process dies
        real_save(state, file)
        Path(file).write_bytes(Path(file).read_bytes()[:10])
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(torch, "save", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"steps": 2}, path)
    assert torch.load(path, weights_only=True) == {"steps": 1}  # the temporary file took the damage
    monkeypatch.setattr(torch, "save", real_save)
    stop = StopSignal().install()  # a signal during a save only sets its flag
    try:
        monkeypatch.setattr(
            torch, "save", lambda state, file: (os.kill(os.getpid(), signal.SIGTERM), real_save(state, file))
        )
        save_checkpoint({"steps": 3}, path)
    finally:
        stop.restore()
    assert stop.received == signal.SIGTERM and torch.load(path, weights_only=True) == {"steps": 3}


def rank_pid(root: int, rank: int, timeout: float = 120) -> int:
    """The pid of the process of ``rank`` below ``root`` (its environment names its LOCAL_RANK), once it runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in process_tree(root):
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue  # ended, or not ours to read
            if f"LOCAL_RANK={rank}".encode() in environ:
                return pid
        time.sleep(0.2)
    raise AssertionError(f"no rank {rank} under {root}")


def stop_ddp_run(command: list[str], run_root: Path, target: str) -> tuple[str, float]:
    """Start a 2-process run, slowed down so it is under way, and SIGTERM ``target`` ("rank 1" or "launcher")
    once training has begun; its stderr, and the seconds from the signal to the end of every process."""
    # every batch loads half a second slower (fake_data.py's BATCH_DELAY): on the smallest fake data set too,
    # the run is still in its first epoch a second after it has started
    proc = start(command, {**ddp_env(), "BATCH_DELAY": "0.5"}, run_root.parent / run_root.name)
    try:
        victim = proc.pid if target == "launcher" else rank_pid(proc.pid, 1)
        deadline = time.monotonic() + 120
        while not list(run_root.glob("*/config.yaml")):  # the run has started; its first epoch is under way
            assert time.monotonic() < deadline and proc.poll() is None, read(run_root.parent / run_root.name)[1]
            time.sleep(0.2)
        time.sleep(1)
        signalled = time.monotonic()
        os.kill(victim, signal.SIGTERM)
        proc.wait(timeout=60)
        return read(run_root.parent / run_root.name)[1], time.monotonic() - signalled
    finally:  # the tree while it runs; once it has ended, its pid is not its own
        (signal_tree if proc.poll() is None else signal_group)(proc.pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.parametrize(
    "rung, target", [("manual", "rank 1"), ("manual", "launcher"), ("fabric", "rank 1"), ("trainer", "rank 1")]
)
@pytest.mark.timeout(300)  # about 3x its time beside another suite, manual_ddp_run included
def test_ddp_every_rank_stops_at_the_same_step_and_the_rerun_ends_bit_identical(
    rung, target, tmp_path, data_dir, manual_ddp_run
):
    run_root = tmp_path / "runs"
    args = [*QUICK, "--data.data_dir", data_dir, "--run_root", str(run_root), *PARITY_ARGS, "--test", "false"]
    err, seconds = stop_ddp_run(ddp_command(rung, args), run_root, target)
    stopped = [line for line in err.splitlines() if line.startswith("stopped by SIGTERM at epoch ")]
    assert len(stopped) == 1 and seconds < 30, err[-4000:]  # one line, well within a 30 s grace period
    if rung == "manual" and target == "rank 1":  # torchrun reports its workers' exit status: stopped, 75
        assert err.count(f"exitcode  : {STOPPED}") + err.count(f"exitcode: {STOPPED}") >= 1, err[-4000:]
    [run_dir] = run_root.iterdir()
    epoch, batch = (int(n) for n in re.match(r"stopped by SIGTERM at epoch (\d+), batch (\d+)", stopped[0]).groups())
    assert position(run_dir / "checkpoints" / LAST[rung]) == (epoch, batch)

    result = run_bounded(ddp_command(rung, [*args, "--ckpt_path", "last"]), ddp_env())
    assert result.returncode == 0 and list(run_root.iterdir()) == [run_dir], result.stderr[-4000:]
    weights = network_weights(torch.load(run_dir / "checkpoints" / LAST[rung], weights_only=False))
    reference = network_weights(torch.load(manual_ddp_run / "checkpoints" / "last.pt", weights_only=True))
    assert all(torch.equal(weights[key], reference[key]) for key in reference)
