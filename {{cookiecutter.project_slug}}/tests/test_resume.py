"""A run killed at a random point and resumed from its last checkpoint ends with the weights of an uninterrupted run."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import train
import train_manual
from {{ cookiecutter.package_name }}.checkpoints import network_weights

from conftest import QUICK

ROOT = Path(__file__).resolve().parents[1]
ENTRIES = {"lightning": (train, "train.py", "last.ckpt"), "manual": (train_manual, "train_manual.py", "last.pt")}
EPOCHS = 4


def epochs_done(run_root: Path, name: str) -> int:
    """Epochs the run's last checkpoint has finished, or 0 while there is none (writes are atomic)."""
    try:
        return torch.load(next(run_root.glob(f"*/checkpoints/{name}")), weights_only=True)["epoch"] + 1
    except (StopIteration, FileNotFoundError, RuntimeError, EOFError):
        return 0


def final_weights(results: dict, name: str) -> dict[str, torch.Tensor]:
    """The network after the last epoch (the entries hand back the best epoch's, which they test)."""
    return network_weights(torch.load(results["run_dir"] / "checkpoints" / name, weights_only=True))


@pytest.mark.slow
@pytest.mark.parametrize("path", ["lightning", "manual"])
def test_sigkill_mid_run_then_resume_ends_bit_identical(tmp_path, data_dir, path):
    module, script, last = ENTRIES[path]
    args = [*QUICK, "--data.data_dir", data_dir, "--trainer.max_epochs", str(EPOCHS), "--data.batch_size", "16"]
    reference = final_weights(module.main([*args, "--run_root", str(tmp_path / "reference")]), last)

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    killed_root = tmp_path / "killed"
    command = [sys.executable, "tests/fake_data.py", script, *args, "--run_root", str(killed_root)]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while epochs_done(killed_root, last) < 1:
            assert proc.poll() is None and time.monotonic() < deadline, "the run ended before its first checkpoint"
            time.sleep(0.02)
        time.sleep(random.uniform(0.0, 0.3))  # somewhere in a later epoch, between two checkpoints
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    checkpoint = next(killed_root.glob(f"*/checkpoints/{last}"))
    done = epochs_done(killed_root, last)
    assert 1 <= done < EPOCHS, f"the kill came after {done} epochs"
    resumed = final_weights(module.main([*args, "--run_root", str(killed_root), "--ckpt_path", "last"]), last)
    assert resumed.keys() == reference.keys()
    assert all(torch.equal(resumed[k], reference[k]) for k in reference), f"resumed after {done} epochs"
    assert not all(torch.equal(v, reference[k]) for k, v in network_weights(torch.load(checkpoint)).items())
