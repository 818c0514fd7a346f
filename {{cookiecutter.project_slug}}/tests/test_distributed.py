"""Both paths on 2 processes (DDP, gloo on CPU): Lightning launched by itself, the manual loop by torchrun.

Each run is a subprocess in its own session with a free port and a time limit: a dead or stuck rank
fails the test instead of hanging it.
"""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from {{ cookiecutter.package_name }}.checkpoints import network_weights

from conftest import QUICK

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_bounded(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run ``command``; past TIMEOUT, kill its whole process group (the ranks too) and fail."""
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"{command[:4]} ran past {TIMEOUT} s")
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


@pytest.mark.slow
def test_ddp_on_two_processes_gives_bit_identical_weights_in_both_paths(tmp_path, data_dir):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    args = [*QUICK, "--data.data_dir", data_dir, "--trainer.max_epochs", "2", "--run_root", str(tmp_path)]
    args += ["--data.batch_size", "16"]
    port = free_port()
    lightning = [sys.executable, "tests/fake_data.py", "train.py", *args]
    lightning += ["--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    manual = [*torchrun, "--master_addr", "127.0.0.1", "--master_port", str(free_port())]
    manual += ["tests/fake_data.py", "train_manual.py", *args]
    for command in (lightning, manual):
        result = run_bounded(command, {**env, "MASTER_PORT": str(port)})
        assert result.returncode == 0, result.stderr[-4000:]
        assert result.stdout.count("test accuracy:") == 1, result.stdout  # rank 0 alone prints
    [lightning_dir] = tmp_path.glob("*-lightning")  # one run directory for both ranks
    [manual_dir] = tmp_path.glob("*-manual")
    final = network_weights(torch.load(lightning_dir / "checkpoints" / "last.ckpt", weights_only=True))
    reference = network_weights(torch.load(manual_dir / "checkpoints" / "last.pt", weights_only=True))
    assert final.keys() == reference.keys()
    assert all(torch.equal(final[k], reference[k]) for k in final)
