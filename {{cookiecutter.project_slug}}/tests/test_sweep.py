"""sweeps/sweep.py: the space is checked first; trials prune, fail, resume; workers share a study; killed trials
run again."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from optuna.trial import TrialState

import train
from {{ cookiecutter.package_name }}.checkpoints import network_weights, read_checkpoint
from {{ cookiecutter.package_name }}.errors import one_line_errors
from sweeps import sweep

from bounded import ROOT, run_bounded

LR_ONLY = "model.lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}\n"  # every trial trains
LR_WIDE = "model.lr: {type: float, low: 1.0e-7, high: 1.0e+7, log: true}\n"  # room for a NaN and a pruned trial


def sweep_args(tmp_path: Path, quick_args: list[str], space: str = LR_ONLY, epochs: int = 2) -> list[str]:
    (tmp_path / "space.yaml").write_text(space)
    own = ["--sweep", str(tmp_path / "space.yaml"), "--storage", f"sqlite:///{tmp_path / 'study.db'}"]
    return [*own, *quick_args, "--trainer.max_epochs", str(epochs), "--data.batch_size", "32"]


def load(tmp_path: Path) -> optuna.Study:
    return optuna.load_study(study_name="space", storage=f"sqlite:///{tmp_path / 'study.db'}")


BAD_SPACES = {
    "unknown option": ("model.learning_rate: {type: float, low: 0.1, high: 0.2}", "learning_rate"),
    "wrong type": ("data.batch_size: {type: float, low: 0.5, high: 2.0}", "data.batch_size"),
    "out of domain": ("model.net.init_args.dropout: {type: float, low: 0.5, high: 1.5}", "dropout"),
    "empty range": ("model.lr: {type: float, low: 0.1, high: 0.01}", "low <= high"),
    "no choices": ("data.batch_size: {type: categorical, choices: []}", "choices"),
    "no type": ("model.lr: {low: 0.1, high: 0.2}", "needs type"),
}


@pytest.mark.parametrize(("space", "expected"), list(BAD_SPACES.values()), ids=list(BAD_SPACES))
def test_a_bad_search_space_is_one_line_before_any_trial(tmp_path, quick_args, capsys, space, expected):
    with pytest.raises(SystemExit) as exit_info, one_line_errors():  # what `python -m sweeps.sweep ...` runs
        sweep.main(sweep_args(tmp_path, quick_args, space + "\n"))
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert exit_info.value.code == 2 and len(errors) == 1 and expected in errors[0], errors
    assert not (tmp_path / "study.db").exists()  # no study, no trial


def test_a_short_sweep_trains_each_trial_and_writes_the_best_config_and_plots(tmp_path, quick_args):
    short = ["--trainer.limit_train_batches", "4", "--trainer.limit_val_batches", "2", "--n_trials", "2"]
    study = sweep.main([*sweep_args(tmp_path, quick_args, epochs=1), *short, "--rung", "manual"])
    assert [trial.state for trial in study.trials] == [TrialState.COMPLETE] * 2
    assert [trial.number for trial in load(tmp_path).trials] == [0, 1]  # in the storage, for the next worker
    for trial in study.trials:  # each in a run of its own, trained with the trial's value
        config = yaml.safe_load((Path(trial.user_attrs["run_dir"]) / "config.yaml").read_text())
        assert config["model"]["lr"] == trial.params["model.lr"]
    study_dir = tmp_path / "runs" / "sweeps" / "space"
    best = yaml.safe_load((study_dir / "best.yaml").read_text())
    assert best["model"]["lr"] == study.best_trial.params["model.lr"] and best["run_root"] == "runs"
    assert (study_dir / "history.png").stat().st_size > 0 and (study_dir / "importances.png").stat().st_size > 0


@pytest.mark.slow
@pytest.mark.timeout(120)  # about 3x its 40 s beside a busy process (11 s alone)
def test_trials_prune_fail_resume_and_the_best_config_trains_the_same_weights(tmp_path, quick_args):
    args = sweep_args(tmp_path, quick_args, LR_WIDE)
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}", study_name="space", direction="maximize")
    for lr in (1e-2, 3e-3, 1e6, 1e-7):  # two good ones, a loss that turns NaN, one far below the median: pruned
        study.enqueue_trial({"model.lr": lr})
    sweep.main([*args, "--n_trials", "2"])
    assert [trial.state for trial in load(tmp_path).trials[:2]] == [TrialState.COMPLETE] * 2
    sweep.main([*args, "--n_trials", "4"])  # the same command, more trials: the study resumes
    states = [trial.state for trial in load(tmp_path).trials]
    assert states == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED], states
    assert "NonFiniteLossError" in load(tmp_path).trials[2].user_attrs["fail_reason"]
    sweep.main([*args, "--n_trials", "4"])  # nothing missing: no new trial
    assert len(load(tmp_path).trials) == 4

    study_dir = Path(tmp_path / "runs" / "sweeps" / "space")
    assert {path.name for path in study_dir.iterdir()} >= {"best.yaml", "history.png", "importances.png"}
    best = load(tmp_path).best_trial
    weights = network_weights(read_checkpoint(next(Path(best.user_attrs["run_dir"]).glob("checkpoints/last.*"))))
    again = train.main(
        ["--config", str(study_dir / "best.yaml"), "--run_root", str(tmp_path / "again"), "--test", "false"]
    )
    assert all(torch.equal(weights[k], again.net.state_dict()[k]) for k in weights)


@pytest.mark.slow
@pytest.mark.timeout(120)  # about 3x its 40 s alone (two workers finish the study)
def test_a_killed_worker_leaves_its_trial_failed_and_the_next_workers_run_it_again(tmp_path, quick_args):
    # Then two workers at once finish the study: each trial counts once, whichever worker ran it.
    args = [*sweep_args(tmp_path, quick_args, epochs=100), "--n_trials", "3", "--heartbeat", "1", "--rung", "manual"]
    sweep = [sys.executable, "tests/fake_data.py", "sweeps/sweep.py"]  # on the fake files, the workers it starts too
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen([*sweep, *args], cwd=ROOT, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not running_trial(tmp_path):  # a trial has started training
            assert time.monotonic() < deadline and worker.poll() is None, "no trial started"
            time.sleep(0.5)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    time.sleep(4)  # past the grace period (3 heartbeats): the killed trial is stale
    again = [*sweep, *args, "--trainer.max_epochs", "1", "--n_workers", "2"]
    result = run_bounded(again, env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    killed, *rest = load(tmp_path).trials
    assert killed.state == TrialState.FAIL
    retry = next(trial for trial in rest if trial.system_attrs.get("failed_trial") == killed.number)
    assert retry.params == killed.params  # the same trial, run again
    summary = [(trial.number, trial.state.name, trial.user_attrs) for trial in rest]
    assert [trial.number for trial in rest] == [1, 2, 3], summary  # 3 trials: the retry and two more
    assert all(trial.state in (TrialState.COMPLETE, TrialState.PRUNED) for trial in rest), summary
    assert len({trial.user_attrs["run_dir"] for trial in rest}) == 3  # each ran once, in a run of its own


def running_trial(tmp_path: Path) -> bool:
    """Whether a trial is training, read with sqlite3 alone: Optuna would create the tables, racing the worker."""
    query = "SELECT COUNT(*) FROM trials JOIN trial_user_attributes USING (trial_id)"
    query += " WHERE state = 'RUNNING' AND key = 'run_dir'"
    try:
        with closing(sqlite3.connect(f"file:{tmp_path / 'study.db'}?mode=ro", uri=True, timeout=5)) as db:
            return db.execute(query).fetchone()[0] > 0
    except sqlite3.OperationalError:  # no database, or no tables yet
        return False
