"""Search hyperparameters with Optuna: trials on any rung, in a real database, resumable, in parallel.

    python -m sweeps.sweep                                       # configs/sweep.yaml, 20 trials of the Trainer
    python -m sweeps.sweep --n_trials 40                         # the same command again tops the study up to 40
    python -m sweeps.sweep --rung manual --n_workers 2           # the hand-written loop, two workers at once
    python -m sweeps.sweep --trainer.max_epochs 5                # any option of train.py, for every trial
    python -m sweeps.sweep --storage postgresql://me@host/optuna # workers on several machines share one study
    optuna-dashboard sqlite:///runs/sweeps.db             # watch it (pip install optuna-dashboard)

The search space maps train.py's own option names to Optuna's distributions (configs/sweep.yaml):

    model.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
    data.batch_size: {type: categorical, choices: [32, 64, 128]}

It is checked against train.py's parser before any trial runs. Each trial is an ordinary run directory
under runs/sweeps/<study>/ with its config.yaml: `python train.py --config <it>` trains it again, to the
same weights. A weak trial is pruned after an epoch (the median rule); a trial that raises is recorded
as FAIL with its reason, and the study goes on; a worker killed mid-trial leaves that trial FAIL once its
heartbeat stops, and the next worker runs it again. At the end: the best trial, best.yaml and two plots.
"""

import argparse
import os
import subprocess
import sys
import warnings
from collections import Counter
from functools import partial
from pathlib import Path

import optuna
import yaml
from filelock import FileLock
from jsonargparse.typing import PositiveInt
from optuna.distributions import BaseDistribution
from optuna.trial import Trial, TrialState

import train
import train_fabric
import train_manual
from {{ cookiecutter.package_name }}.errors import ArgumentParser, one_line_errors
from ladder.history import History
from sweeps.space import check_space, flag_value, load_space, suggest

RUNGS = {"trainer": train.main, "manual": train_manual.main, "fabric": train_fabric.main}
METRICS = {"val/acc": "maximize", "val/loss": "minimize", "train/acc": "maximize", "train/loss": "minimize"}
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # the heartbeat's, the plots'


def report_epoch(trial: Trial, metric: str, epoch: int, row: dict[str, float]) -> None:
    """Report an epoch's metric to the trial, and stop the run when the pruner says so.

    Every rung takes loggers of its own beside the --logger one and logs its epoch rows through them, so
    one ``History`` logger that calls this serves the Trainer and both hand-written loops.
    """
    if metric in row:
        trial.report(row[metric], epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"{metric} {row[metric]:.4f} after epoch {epoch}")


def objective(
    trial: Trial, space: dict[str, BaseDistribution], args: list[str], rung: str, metric: str, study_dir: Path
) -> float:
    """Train one trial: the common options, then the trial's values as flags; the metric's last value.

    ``args`` put the runs in ``study_dir``. The trial's run directory is named before it starts,
    trial-<number>-<rung>, so that a trial whose worker dies still points to its run.
    """
    values = {option: suggest(trial, option, distribution) for option, distribution in space.items()}
    flags = [f"--{option}={flag_value(value)}" for option, value in values.items()]
    name = f"trial-{trial.number}"
    trial.set_user_attr("run_dir", str(study_dir / f"{name}-{rung}"))
    history = History(on_epoch=partial(report_epoch, trial, metric))
    try:
        results = RUNGS[rung]([*args, *flags, "--run_name", name, "--test", "false"], loggers=[history])
    except optuna.TrialPruned:
        raise
    except SystemExit as error:  # the parser refused a combination, on stderr
        trial.set_user_attr("fail_reason", f"the options were refused (exit {error.code}): {' '.join(flags)}")
        raise RuntimeError(trial.user_attrs["fail_reason"]) from None
    except Exception as error:
        trial.set_user_attr("fail_reason", f"{type(error).__name__}: {error}")
        raise
    trial.set_user_attr("run_dir", str(results.run_dir))  # the same, unless a directory of that name was there
    if metric not in history.series:
        raise RuntimeError(f"the run logged no {metric}")
    return history.series[metric][-1][1]


def open_storage(url: str, heartbeat: int) -> optuna.storages.BaseStorage:
    """Optuna's storage: a database by URL (SQLite, PostgreSQL, MySQL), or a journal file on a shared disk (.log)."""
    if url.endswith(".log"):  # no heartbeat: a killed worker's trial stays RUNNING in a journal
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        Path(url).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(url, lock_obj=JournalFileOpenLock(url)))
    engine = {}
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = {"connect_args": dict(timeout=60)}  # workers take turns to write; wait for the file's lock
    return optuna.storages.RDBStorage(
        url,
        engine_kwargs=engine,
        heartbeat_interval=heartbeat,  # a running trial writes a heartbeat this often...
        grace_period=3 * heartbeat,  # ...and one silent this long is marked FAIL: its worker died
        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
    )


def trials_used(study: optuna.Study) -> int:
    """Trials that count toward --n_trials, whatever their state: a retry takes the place of the trial it repeats."""
    trials = study.get_trials(deepcopy=False)
    return len(trials) - sum("failed_trial" in trial.system_attrs for trial in trials)


def work(study: optuna.Study, trial_objective, n_trials: int, lock: FileLock) -> None:
    """Run trials until the study has ``n_trials``. Counting and starting a trial happen under a file lock,
    so two workers on this machine never both take the last one."""

    def started(trial: Trial) -> float:
        lock.release()  # the trial is in the storage now: the next worker counts it
        return trial_objective(trial)

    optuna.storages.fail_stale_trials(study)  # a trial whose worker died, silent past the grace period: FAIL
    while True:
        lock.acquire()
        try:
            waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))  # retries of killed trials
            if trials_used(study) >= n_trials and not waiting:
                return
            study.optimize(started, n_trials=1, catch=(Exception,))
        finally:
            if lock.is_locked:
                lock.release()


def run_workers(argv: list[str], n_workers: int) -> None:
    """Start ``n_workers`` processes of this same sweep on the same storage, each with its share of the cores."""
    threads = max(1, (os.cpu_count() or 1) // n_workers)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    # started as this process was (python -m sweeps.sweep, or a script that runs it), as Lightning starts DDP ranks
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    this = ["-m", spec.name] if spec is not None else [sys.argv[0]]
    command = [sys.executable, *this, *argv, "--n_workers", "1", "--worker"]  # the last --n_workers wins
    workers = [subprocess.Popen(command, env=env) for _ in range(n_workers)]
    failed = sum(worker.wait() != 0 for worker in workers)
    if failed:
        print(f"warning: {failed} of {n_workers} workers ended with an error", file=sys.stderr)


def report(study: optuna.Study, study_dir: Path, metric: str) -> optuna.trial.FrozenTrial | None:
    """Print the outcome, and write best.yaml and the plots beside the trials' run directories."""
    trials = study.get_trials(deepcopy=False)
    states = Counter(trial.state.name.lower() for trial in trials)
    print(f"study {study.study_name}: {len(trials)} trials: " + ", ".join(f"{n} {s}" for s, n in states.items()))
    for trial in trials:
        if trial.state == TrialState.FAIL:
            print(f"  trial {trial.number} failed: {trial.user_attrs.get('fail_reason', 'its worker stopped')}")
    if states["complete"] == 0:
        print("no trial completed: no best trial yet")
        return None
    best = study.best_trial
    print(f"best: trial {best.number}, {metric} {best.value:.4f}, {best.params}")
    config = yaml.safe_load((Path(best.user_attrs["run_dir"]) / "config.yaml").read_text())
    config |= {"run_root": "runs", "logger_group": None, "ckpt_path": None}  # a run of its own, not a trial
    (study_dir / "best.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    print(f"its run: {best.user_attrs['run_dir']}; train it again: python train.py --config {study_dir / 'best.yaml'}")
    plot(study, study_dir)
    return best


def plot(study: optuna.Study, study_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt
    from optuna.visualization.matplotlib import plot_optimization_history, plot_param_importances

    plots = {"history.png": plot_optimization_history}
    if len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) >= 2:
        plots["importances.png"] = plot_param_importances  # needs two finished trials to compare
    for name, draw in plots.items():
        axes = draw(study)
        axes.figure.savefig(study_dir / name, dpi=120, bbox_inches="tight")
        plt.close(axes.figure)
    print(f"plots: {', '.join(str(study_dir / name) for name in plots)}")


def open_study(storage: str, name: str, direction: str, heartbeat: int, lock: FileLock) -> optuna.Study:
    """The study in ``storage``: created, or loaded when it exists (the same command again resumes it)."""
    with lock:  # two workers creating a new database's tables at once would collide
        return optuna.create_study(
            storage=open_storage(storage, heartbeat),
            study_name=name,
            direction=direction,
            pruner=optuna.pruners.MedianPruner(n_startup_trials=2),  # from the 3rd trial: below the median of an epoch
            load_if_exists=True,
        )


def main(argv: list[str] | None = None) -> optuna.Study:
    argv = sys.argv[1:] if argv is None else argv
    parser = ArgumentParser(__doc__)
    parser.add_argument(
        "--sweep",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "configs" / "sweep.yaml",
        help="the search space",
    )
    parser.add_argument("--n_trials", type=PositiveInt, default=20, help="trials in the study, all workers together")
    parser.add_argument(
        "--storage", help="a database URL, or a .log journal file (default: sqlite:///<run_root>/sweeps.db)"
    )
    parser.add_argument("--study_name", help="the study (default: the name of the --sweep file)")
    parser.add_argument("--rung", choices=list(RUNGS), default="trainer", help="the rung that trains each trial")
    parser.add_argument(
        "--metric", choices=list(METRICS), default="val/acc", help="the objective: its last epoch's value"
    )
    parser.add_argument("--direction", choices=["maximize", "minimize"], help="(default: the metric's own)")
    parser.add_argument("--n_workers", type=PositiveInt, default=1, help="worker processes on this machine")
    parser.add_argument(
        "--heartbeat", type=PositiveInt, default=10, help="seconds between a running trial's heartbeats"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # one of --n_workers' processes
    own, rest = parser.parse_known_args(argv)
    space = load_space(own.sweep)
    study_name = own.study_name or own.sweep.stem
    cli = check_space(space, ["--trainer.devices", "1", *rest])
    study_dir = Path(cli.config.run_root) / "sweeps" / study_name
    study_dir.mkdir(parents=True, exist_ok=True)
    trial_args = [
        "--trainer.devices",
        "1",
        *rest,
        "--run_root",
        str(study_dir),
        "--logger_group",
        f"sweep-{study_name}",
    ]
    storage = own.storage or f"sqlite:///{Path(cli.config.run_root) / 'sweeps.db'}"
    lock = FileLock(study_dir / "worker.lock")  # the workers of this machine take turns at the storage
    study = open_study(storage, study_name, own.direction or METRICS[own.metric], own.heartbeat, lock)
    if own.n_workers > 1:
        run_workers(argv, own.n_workers)
    else:
        trial_objective = partial(
            objective, space=space, args=trial_args, rung=own.rung, metric=own.metric, study_dir=study_dir
        )
        work(study, trial_objective, own.n_trials, lock)
    if not own.worker:
        report(study, study_dir, own.metric)
    return study


if __name__ == "__main__":
    with one_line_errors():
        main(sys.argv[1:])
