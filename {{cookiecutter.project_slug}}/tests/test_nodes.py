"""Beyond one machine: two nodes (torchrun's static rendezvous), SLURM (srun stood in for), and a node that dies.

Both nodes run on this machine, each a process tree of its own, as on two machines; they meet over
127.0.0.1. Every rung must end with the weights of one node with two processes (conftest's manual_ddp_run),
bit for bit, with accumulation and clipping. One launch trains every rung: each node runs ladder/compare.py,
which trains the rungs one after the other in its process (each process costs seconds of imports here;
the rungs' own launches are tested in test_distributed).
"""

import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest
import torch

from {{ cookiecutter.package_name }}.checkpoints import network_weights

from bounded import ROOT, process_tree, read, run_bounded, signal_group, signal_tree, start, wait_all
from conftest import QUICK
from test_distributed import PARITY_ARGS, ddp_env

# Every run here trains with test_distributed's PARITY_ARGS, as the one-node reference did.
RUNGS = ["manual", "fabric", "trainer"]
EVERY_RUNG = [
    "ladder/compare.py",
    "--rungs",
    *RUNGS,
    "--plot",
    "",
]  # compare's own flags first: its options end with ours
TWO_NODES = ["--trainer.accelerator", "cpu", "--trainer.num_nodes", "2", "--trainer.devices", "1"]
TWO_NODES += ["--trainer.strategy", "ddp"]  # the manual loop ignores them: torchrun or srun tell it


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def node_command(node: int, port: int, entry: list[str], args: list[str]) -> list[str]:
    """One node's torchrun: static rendezvous, so --node_rank decides the ranks (c10d would ignore it)."""
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(node)]
    torchrun += ["--nproc_per_node", "1", "--rdzv_backend", "static", "--master_addr", "127.0.0.1"]
    return [*torchrun, "--master_port", str(port), "tests/fake_data.py", *entry, *args, *TWO_NODES]


def start_nodes(run_root: Path, entry: list[str], args: list[str], env: dict[str, str] | None = None) -> dict:
    port, env = free_port(), {**ddp_env(), **(env or {})}
    return {
        run_root / f"node{n}": start(node_command(n, port, entry, args), env, run_root / f"node{n}") for n in (0, 1)
    }


def final_weights(run_root: Path, rung: str) -> dict[str, torch.Tensor]:
    run_dir = sorted(run_root.glob(f"*-{rung}"))[-1]  # the newest run: a resumed one, if any
    [last] = run_dir.glob("checkpoints/last.*")
    return network_weights(torch.load(last, weights_only=True))


def assert_same(weights: dict[str, torch.Tensor], reference: dict[str, torch.Tensor], what: str) -> None:
    assert weights.keys() == reference.keys()
    assert all(torch.equal(weights[k], reference[k]) for k in reference), f"{what}: other weights"


def assert_all_passed(results: dict) -> None:
    for log, (code, _, err) in results.items():
        assert code == 0, f"{log.name} exited {code}:\n{err[-4000:]}"


@pytest.fixture(scope="module")
def reference(manual_ddp_run) -> dict[str, torch.Tensor]:
    """One node, two processes: the manual loop's weights, which every rung ends with in test_distributed."""
    return final_weights(manual_ddp_run.parent, "manual")


@pytest.mark.slow
@pytest.mark.timeout(180)  # about 3x its time beside another suite, manual_ddp_run included (22 + 21 s alone)
def test_two_nodes_end_with_the_weights_of_one_node_with_two_processes(tmp_path, data_dir, reference):
    args = [*QUICK, "--data.data_dir", data_dir, "--run_root", str(tmp_path), *PARITY_ARGS]
    assert_all_passed(wait_all(start_nodes(tmp_path, EVERY_RUNG, args)))
    for rung in RUNGS:
        assert_same(final_weights(tmp_path, rung), reference, f"{rung} on two nodes")


# srun on one machine: the job's tasks as local processes, each with the variables srun gives its task.
FAKE_SRUN = """
import os, subprocess, sys

nodes, per_node = int(os.environ["SLURM_NNODES"]), int(os.environ["SLURM_NTASKS_PER_NODE"])
tasks = []
for task in range(nodes * per_node):
    ids = {"SLURM_PROCID": task, "SLURM_LOCALID": task % per_node, "SLURM_NODEID": task // per_node}
    env = {**os.environ, **{key: str(value) for key, value in ids.items()}, "SLURM_NTASKS": str(nodes * per_node)}
    tasks.append(subprocess.Popen(sys.argv[1:], env=env))
sys.exit(max(task.wait() for task in tasks))
"""


@pytest.mark.slow
@pytest.mark.timeout(120)  # about 3x its time beside another suite, manual_ddp_run included (18 + 21 s alone)
def test_the_slurm_script_trains_every_rung_on_two_nodes(tmp_path, data_dir, reference):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(f"#!{sys.executable}\n{FAKE_SRUN}")
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')  # the script's `python`: this one
    for tool in ("srun", "python"):
        (bin_dir / tool).chmod(0o755)
    job = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "slurm.sbatch", "SLURM_NNODES": "2", "SLURM_NTASKS_PER_NODE": "1"}
    job |= {"SLURM_NTASKS": "2", "SLURM_NODELIST": "127.0.0.1", "SLURM_JOB_NODELIST": "127.0.0.1"}
    job |= {"MASTER_PORT": str(free_port()), "FAKE_DATA_ENTRY": str(ROOT / "ladder/compare.py")}
    env = {**ddp_env(), **job, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    args = [*EVERY_RUNG[1:], *QUICK, "--data.data_dir", data_dir, "--run_root", str(tmp_path), *PARITY_ARGS]
    result = run_bounded(
        ["bash", "scripts/slurm.sbatch", "tests/fake_data.py", *args, "--trainer.accelerator", "cpu"], env
    )
    assert result.returncode == 0, result.stderr[-4000:]
    for rung in RUNGS:
        assert_same(final_weights(tmp_path, rung), reference, f"{rung} under srun")


@pytest.mark.slow
@pytest.mark.timeout(180)  # about 3x its 34 s alone, manual_ddp_run included (21 s), with room beside a suite
def test_a_node_that_dies_stops_the_other_in_one_line_and_the_run_resumes_to_the_same_weights(
    tmp_path, data_dir, reference
):
    # The reference's options, with last.pt every 3 steps and a short process-group timeout. Until the kill,
    # every batch loads 50 ms slower (fake_data.py's BATCH_DELAY): the run is still under way when its first
    # checkpoint appears, which is when node 1 dies. The weights do not depend on it.
    run_root = tmp_path / "two_nodes"
    args = [*QUICK, "--data.data_dir", data_dir, "--run_root", str(run_root), *PARITY_ARGS]
    args += ["--dist_timeout", "60", "--save_every_n_steps", "3"]
    nodes = start_nodes(tmp_path, ["train_manual.py"], args, {"BATCH_DELAY": "0.05"})
    node0, node1 = nodes
    deadline = time.monotonic() + 120
    while not list(run_root.glob("*-manual/checkpoints/last.pt")):  # under way, with a checkpoint to resume from
        assert time.monotonic() < deadline and all(proc.poll() is None for proc in nodes.values()), "no checkpoint"
        time.sleep(0.1)
    killed = time.monotonic()
    signal_tree(nodes[node1].pid, signal.SIGKILL)  # node 1's torchrun and its rank, at once
    code, _, err = wait_all(nodes, timeout=120)[node0]
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code != 0 and len(errors) == 1 and errors[0].startswith("error: rank 0: "), err[-4000:]
    assert time.monotonic() - killed < 60, "node 0 outlived the process-group timeout"  # --dist_timeout 60

    assert_all_passed(wait_all(start_nodes(tmp_path, ["train_manual.py"], [*args, "--ckpt_path", "last"])))
    assert_same(final_weights(run_root, "manual"), reference, "the resumed run")


@pytest.mark.slow
@pytest.mark.timeout(240)  # about 3x its time beside another suite, manual_ddp_run included
def test_slurms_warning_signal_saves_requeues_and_the_requeued_job_resumes_to_the_same_weights(
    tmp_path, data_dir, reference
):
    # The job script with a stand-in srun (2 tasks on one node) and a stand-in scontrol that records its
    # arguments. SIGUSR1 reaches the tasks, as `#SBATCH --signal=USR1@120` sends it; the job exits 75 and
    # requeues itself; run again under the same job id, as SLURM runs a requeued job, it resumes its run.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(f"#!{sys.executable}\n{FAKE_SRUN}")
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> "{tmp_path}/scontrol.log"\n')
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    for tool in ("srun", "scontrol", "python"):
        (bin_dir / tool).chmod(0o755)
    run_root = tmp_path / "runs"
    job = {"SLURM_JOB_ID": "77", "SLURM_JOB_NAME": "slurm.sbatch", "SLURM_NNODES": "1", "SLURM_NTASKS_PER_NODE": "2"}
    job |= {"SLURM_NTASKS": "2", "SLURM_NODELIST": "127.0.0.1", "SLURM_JOB_NODELIST": "127.0.0.1"}
    job |= {
        "MASTER_PORT": str(free_port()),
        "RUN_ROOT": str(run_root),
        "FAKE_DATA_ENTRY": str(ROOT / "train_manual.py"),
    }
    env = {**ddp_env(), **job, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    args = [*QUICK, "--data.data_dir", data_dir, *PARITY_ARGS, "--trainer.accelerator", "cpu"]
    command = ["bash", "scripts/slurm.sbatch", "tests/fake_data.py", *args]  # the manual loop: FAKE_DATA_ENTRY

    job_log = tmp_path / "job"
    proc = start(command, {**env, "BATCH_DELAY": "0.5"}, job_log)  # still in its first epoch a second in
    try:
        deadline = time.monotonic() + 120
        while not list(run_root.glob("job-77-manual/config.yaml")):  # under way
            assert time.monotonic() < deadline and proc.poll() is None, read(job_log)[1][-4000:]
            time.sleep(0.2)
        time.sleep(1)
        [srun] = [pid for pid in process_tree(proc.pid) if b"srun" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        for task in process_tree(srun)[1:]:  # SLURM signals every task of the step, not the script
            os.kill(task, signal.SIGUSR1)
        assert proc.wait(timeout=60) == 75, read(job_log)[1][-4000:]
    finally:
        (signal_tree if proc.poll() is None else signal_group)(proc.pid, signal.SIGKILL)
    assert (tmp_path / "scontrol.log").read_text() == "requeue 77\n"
    assert read(job_log)[1].count("stopped by SIGUSR1 at epoch ") == 1

    requeued = run_bounded(command, env)  # SLURM starts the same script again, with the same job id
    assert requeued.returncode == 0, requeued.stderr[-4000:]
    assert [path.name for path in run_root.iterdir()] == ["job-77-manual"]  # the same run, resumed
    assert_same(final_weights(run_root, "manual"), reference, "the requeued job")
