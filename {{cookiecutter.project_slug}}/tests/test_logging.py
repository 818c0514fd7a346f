"""Every rung logs each metric at the same step, read back with each tracker's own reader.

The convention is the Trainer's: an epoch's metrics at the step of its last batch, counted from 0
(global_step - 1), and the test metrics at global_step. The hand-written loops log at the same steps,
so on a dashboard the rungs' curves lie on top of each other.
"""

import csv
import json
import struct
import time
from collections import defaultdict
from pathlib import Path

from {{ cookiecutter.package_name }}.runs import DEFAULT_LOGGER

from conftest import Series


def read_csv(run_dir: Path) -> Series:
    series = defaultdict(list)
    with open(run_dir / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                if key not in ("step", "epoch") and value:
                    series[key].append((int(row["step"]), float(value)))
    return dict(series)


def read_tensorboard(run_dir: Path) -> Series:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    series = defaultdict(list)
    for events in sorted(run_dir.glob("events.out.tfevents.*")):  # the Trainer's test opens a second file
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            if "/" in tag:  # not "epoch", nor the hp_metric placeholder the logger writes with the hparams
                series[tag] += [(event.step, event.value) for event in accumulator.Scalars(tag)]
    return dict(series)


def read_wandb(run_dir: Path) -> Series:
    """The history rows of an offline run file, once wandb's service has written the run's exit record."""
    (path,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    for _ in range(120):  # the service writes the file in a process of its own: wait for the whole run
        records = wandb_records(path.read_bytes())
        if any(record.HasField("exit") for record in records):
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"{path} has no exit record after 60 s")
    series = defaultdict(list)
    for record in records:
        row = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
        for key, value in row.items():
            if "/" in key and key != "trainer/global_step":  # the WandbLogger logs its step as a metric
                series[key].append((row["trainer/global_step"], float(value)))
    return dict(series)


def wandb_records(data: bytes) -> list:
    """The records of a wandb run file: after a 7-byte header, 32 KiB blocks of framed protobuf records."""
    from wandb.proto.wandb_internal_pb2 import Record

    assert data[:4] == b":W&B", "not a wandb run file"
    block, position, pending, records = 32768, 7, b"", []
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a record header is padding
            position += block - position % block
            continue
        length, kind = struct.unpack("<HB", data[position + 4 : position + 7])  # after a 4-byte checksum
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            records.append(Record.FromString(pending))
            pending = b""
    return records


READERS = {"csv": read_csv, "tensorboard": read_tensorboard, "wandb": read_wandb}


def test_every_rung_logs_each_metric_at_the_same_steps(trained_runs, recorders):
    # conftest's runs: 2 epochs of each rung, with the default logger and a History logger passed in
    run_dirs = {name: run.run_dir for name, run in trained_runs.items()}
    recorded = {name: dict(recorder.series) for name, recorder in recorders.items()}
    for name, recorder in recorders.items():  # a logger passed in gets the run's config and every row
        assert recorder.config["trainer"]["max_epochs"] == 2 and recorded[name] == recorded["trainer"], name
    assert [step for step, _ in recorded["trainer"]["test/acc"]] == [recorded["trainer"]["val/acc"][-1][0] + 1]
    for run_dir in run_dirs.values():
        assert list(run_dir.glob("checkpoints/last.*")), sorted(run_dir.rglob("*"))  # the run itself happened
    if DEFAULT_LOGGER == "none":  # nothing but the run's own config and checkpoints
        for run_dir in run_dirs.values():
            assert {p.name for p in run_dir.iterdir()} <= {"config.yaml", "checkpoints"}, sorted(run_dir.rglob("*"))
        return
    logged = {name: READERS[DEFAULT_LOGGER](run_dir) for name, run_dir in run_dirs.items()}
    trainer = logged["trainer"]
    steps = [step for step, _ in trainer["train/loss"]]
    assert len(steps) == 2 and [step for step, _ in trainer["test/acc"]] == [steps[-1] + 1], trainer
    assert set(trainer) >= {f"{stage}/{name}" for stage in ("train", "val", "test") for name in ("loss", "acc")}
    for name in ("manual", "fabric"):
        assert logged[name] == trainer, f"{name} logs other steps or values than the Trainer"
    assert trainer == {key: rows for key, rows in recorded["trainer"].items() if key in trainer}
