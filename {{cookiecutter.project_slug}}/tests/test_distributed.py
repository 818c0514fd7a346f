"""Every rung on 2 processes (DDP, gloo on CPU): the Trainer and Fabric launch their own, the manual loop torchrun.

Where the launch is not what a test is about, one torchrun of ladder/compare.py trains every rung on the same two
processes, one rung after the other: each process costs seconds of imports here.

Each run is bounded twice: by the run's own timeouts (a loader worker, a collective), which end a stall
in one error line that names the rank, and by ``run_bounded``, which dumps every thread of every process
and fails the test if even those did not fire. ``benchmarks/stress_ddp.py`` in the template repeats
these very commands many times.

Two quick tests stay in-process: srun's variables read as torchrun's, and the collectives the loops call,
in a real gloo group of one rank.
"""

import os
import sys

import pytest
import torch
import torch.distributed as dist

from {{ cookiecutter.package_name }} import distributed
from {{ cookiecutter.package_name }}.checkpoints import network_weights

from bounded import ROOT, run_bounded
from conftest import QUICK

# The parity runs load in the main process: a loader worker hands out the main process's very batches
# (test_data.py), and under DDP each rank's workers start from a server that imports the project, seconds
# of CPU per rank here. Workers under DDP, where a stall can start, are the stalled-worker tests' (one on
# the stalled rank, every rung) and `make stress`'s (two per rank, many runs). The process-group timeout also bounds
# joining the group, which waits for the slowest rank's imports: on 2 busy cores those took over 10 s.
DDP_ARGS = ["--trainer.max_epochs", "2", "--data.batch_size", "16", "--data.num_workers", "0"]
DDP_ARGS += ["--dist_timeout", "120", "--data.worker_timeout", "60"]
# The parity runs also accumulate gradients in groups of 3 batches (the last group of each epoch short;
# DDP syncs only a group's last batch) and clip them: one launch per rung checks all three.
PARITY_ARGS = [*DDP_ARGS, "--trainer.accumulate_grad_batches", "3", "--trainer.gradient_clip_val", "0.5"]


ENTRY = {"trainer": "train.py", "fabric": "train_fabric.py"}


DDP = ["--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]
# --standalone: torchrun binds a free port itself and keeps it, so no other process can take it
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def ddp_command(rung: str, args: list[str]) -> list[str]:
    """The command that trains ``rung`` ("trainer", "fabric" or "manual") on 2 processes on the fake data."""
    if rung in ENTRY:  # Lightning's Trainer and Fabric launch their processes themselves
        return [sys.executable, "tests/fake_data.py", ENTRY[rung], *args, *DDP]
    return [*TORCHRUN, "tests/fake_data.py", "train_manual.py", *args]


def ddp_env() -> dict[str, str]:
    # the package without `pip install -e .`, as pytest's pythonpath has it; 2 ranks on 2 cores: a thread each
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
@pytest.mark.timeout(300)  # about 3x its time beside another suite, manual_ddp_run included (50 + 21 s alone)
def test_ddp_on_two_processes_gives_bit_identical_weights_on_every_rung(tmp_path, data_dir, manual_ddp_run):
    """Each rung launched as a user launches it: torchrun for the manual loop (manual_ddp_run), Lightning's own
    for the others. With accumulation and clipping (PARITY_ARGS)."""
    reference = network_weights(torch.load(manual_ddp_run / "checkpoints" / "last.pt", weights_only=True))
    args = [*QUICK, "--data.data_dir", data_dir, "--run_root", str(tmp_path), *PARITY_ARGS]
    for rung, last in (("fabric", "last.pt"), ("trainer", "last.ckpt")):
        result = run_bounded(ddp_command(rung, args), ddp_env())
        assert result.returncode == 0, result.stderr[-4000:]
        assert result.stdout.count("test accuracy:") == 1, result.stdout  # rank 0 alone prints
        [run_dir] = tmp_path.glob(f"*-{rung}")
        final = network_weights(torch.load(run_dir / "checkpoints" / last, weights_only=True))
        assert final.keys() == reference.keys()
        assert all(torch.equal(final[k], reference[k]) for k in final), rung


@pytest.mark.slow
@pytest.mark.parametrize("rung", ["manual", "fabric", "trainer"])
@pytest.mark.timeout(160)  # about 3x its 53 s in the template's suite
def test_a_stalled_loader_worker_ends_the_run_with_one_line_that_names_the_rank(tmp_path, data_dir, rung):
    # Rank 1's loader worker never returns a batch (fake_data.py's STALL_RANK, which gives rank 1 one worker
    # and rank 0 none); rank 0 waits on rank 1.
    args = [*QUICK, "--data.data_dir", data_dir, "--run_root", str(tmp_path), *DDP_ARGS]
    args += ["--data.worker_timeout", "5"]  # rank 0 learns of it when rank 1 leaves
    result = run_bounded(ddp_command(rung, args), {**ddp_env(), "STALL_RANK": "1"}, timeout=150)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode != 0
    assert [line for line in errors if line.startswith("error: rank 1: DataLoader timed out after 5")], result.stderr[
        -4000:
    ]


TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def test_sruns_variables_become_torchruns(monkeypatch):
    for name in TORCHRUN_VARIABLES:  # set, then removed: the test's end removes what env_from_slurm writes
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    job = {"SLURM_NNODES": "2", "SLURM_NTASKS_PER_NODE": "2", "SLURM_NTASKS": "4", "SLURM_PROCID": "3"}
    job |= {"SLURM_LOCALID": "1", "SLURM_NODEID": "1"}
    job |= {"SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "slurm.sbatch", "SLURM_NODELIST": "127.0.0.1"}
    for name, value in job.items():
        monkeypatch.setenv(name, value)
    distributed.env_from_slurm()
    translated = {name: os.environ[name] for name in TORCHRUN_VARIABLES}
    assert translated == {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1",
                          "MASTER_PORT": str(15000 + 4242)}  # fmt: skip
    monkeypatch.setenv("SLURM_PROCID", "0")  # torchrun's variables win: srun may start torchrun
    distributed.env_from_slurm()
    assert os.environ["RANK"] == "3" and distributed.local_rank() == 1


def test_the_collectives_work_in_a_process_group_of_one(tmp_path):
    # A real gloo group in this process, of one rank: the calls a rank makes, without a launch
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        assert distributed.rank() == 0 and distributed.from_rank_zero({"run": "dir"}) == {"run": "dir"}
        with distributed.local_rank_zero_first():
            distributed.barrier()
        distributed.leave_process_group()
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()  # the other tests run without a group
