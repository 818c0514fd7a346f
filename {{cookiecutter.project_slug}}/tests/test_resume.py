"""A run stopped between two checkpoints and resumed from the last one ends as an uninterrupted one, bit for bit."""

import math
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
import train_fabric
import train_manual
from {{ cookiecutter.package_name }}.checkpoints import network_weights

from bounded import ROOT
from conftest import QUICK

# The manual loop also saves every 5 steps, so most of its checkpoints fall mid-epoch.
ENTRIES = {
    "trainer": (train, "train.py", "last.ckpt", []),
    "manual": (train_manual, "train_manual.py", "last.pt", ["--save_every_n_steps", "5"]),
    "fabric": (train_fabric, "train_fabric.py", "last.pt", ["--save_every_n_steps", "5"]),
}
EPOCHS = 4


def steps_saved(checkpoint: Path) -> int:
    """Optimizer steps done when the checkpoint was written (in any rung's format)."""
    state = torch.load(checkpoint, weights_only=True)
    return state["steps"] if "steps" in state else state["global_step"]


def final_weights(results: dict, name: str) -> dict[str, torch.Tensor]:
    """The network after the last step (the entries hand back the best epoch's, which they test)."""
    return network_weights(torch.load(results.run_dir / "checkpoints" / name, weights_only=True))


def assert_identical(resumed: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> None:
    assert resumed.keys() == reference.keys()
    assert all(torch.equal(resumed[k], reference[k]) for k in reference)


@pytest.mark.slow
@pytest.mark.parametrize("path", ["trainer", "fabric", "manual"])
@pytest.mark.timeout(180)  # about 3x its 60 s beside a busy process (22 s alone)
def test_sigkill_at_a_random_point_then_resume_ends_bit_identical(tmp_path, data_dir, path):
    module, script, last, own = ENTRIES[path]
    args = [*QUICK, *own, "--data.data_dir", data_dir, "--trainer.max_epochs", str(EPOCHS), "--data.batch_size", "16"]
    reference_run = module.main([*args, "--run_root", str(tmp_path / "reference")])
    reference, total = final_weights(reference_run, last), steps_saved(reference_run.run_dir / "checkpoints" / last)

    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # tests/fake_data.py imports the package beside the entries
    killed_root = tmp_path / "killed"
    command = [sys.executable, "tests/fake_data.py", script, *args, "--run_root", str(killed_root)]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not list(killed_root.glob(f"*/checkpoints/{last}")):  # written atomically: there means whole
            assert proc.poll() is None and time.monotonic() < deadline, "the run ended before its first checkpoint"
            time.sleep(0.02)
        time.sleep(random.uniform(0.0, 0.3))  # somewhere later, most likely between two checkpoints
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    checkpoint = next(killed_root.glob(f"*/checkpoints/{last}"))
    saved = steps_saved(checkpoint)
    assert 0 < saved < total, f"the kill came after step {saved} of {total}"
    killed = network_weights(torch.load(checkpoint))  # the resumed run writes over it, in the same run directory
    resumed = module.main([*args, "--run_root", str(killed_root), "--ckpt_path", "last"])
    assert resumed.run_dir == checkpoint.parent.parent
    assert_identical(final_weights(resumed, last), reference)
    assert not all(torch.equal(v, reference[k]) for k, v in killed.items())


@pytest.mark.slow
def test_manual_loop_interrupted_mid_epoch_repeats_the_lost_steps(tmp_path, data_dir, monkeypatch):
    args = [*QUICK, "--data.data_dir", data_dir, "--trainer.max_epochs", "2", "--data.batch_size", "16"]
    args += ["--save_every_n_steps", "3"]
    reference = final_weights(train_manual.main([*args, "--run_root", str(tmp_path / "reference")]), "last.pt")

    step, steps_done = torch.optim.AdamW.step, []

    def crash_after_step_5(optimizer, *args, **kwargs):
        if len(steps_done) == 5:  # two steps after the checkpoint at step 3
            raise KeyboardInterrupt
        steps_done.append(1)
        return step(optimizer, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", crash_after_step_5)
    with pytest.raises(KeyboardInterrupt):
        train_manual.main([*args, "--run_root", str(tmp_path / "killed")])
    monkeypatch.undo()
    checkpoint = torch.load(next((tmp_path / "killed").glob("*/checkpoints/last.pt")), weights_only=True)
    assert (checkpoint["next_epoch"], checkpoint["next_batch"], checkpoint["steps"]) == (0, 3, 3)
    resumed = train_manual.main([*args, "--run_root", str(tmp_path / "killed"), "--ckpt_path", "last"])
    assert_identical(final_weights(resumed, "last.pt"), reference)


@pytest.mark.slow
@pytest.mark.parametrize("rung", ["manual", "fabric"])
def test_a_loop_stopped_after_an_epochs_last_partial_batch_resumes_bit_identical(
    tmp_path, quick_args, datamodule, monkeypatch, rung
):
    # last.pt is written after the epoch's last batch, a partial one, and the run stops before the epoch ends
    # (in validation): the saved position counts that batch as full, past the end of the shard
    datamodule.setup("fit")
    size = len(datamodule.splits["train"])
    batch_size = next(b for b in range(16, size) if size % b)
    batches = math.ceil(size / batch_size)
    args = [*quick_args, "--trainer.max_epochs", "2", "--data.batch_size", str(batch_size)]
    args += ["--save_every_n_steps", str(batches)]
    module, _, last, _ = ENTRIES[rung]
    reference = final_weights(module.main([*args, "--run_root", str(tmp_path / "reference")]), last)

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "evaluate", stop)  # the first epoch's validation
    with pytest.raises(KeyboardInterrupt):
        module.main(args)
    monkeypatch.undo()
    checkpoint = torch.load(next((tmp_path / "runs").glob(f"*/checkpoints/{last}")), weights_only=True)
    assert (checkpoint["next_epoch"], checkpoint["next_batch"], checkpoint["steps"]) == (0, batches, batches)
    resumed = module.main([*args, "--ckpt_path", "last"])
    assert_identical(final_weights(resumed, last), reference)
