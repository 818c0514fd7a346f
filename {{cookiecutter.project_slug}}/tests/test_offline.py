"""With no network and no wandb key, every entry point finishes on its own: no prompt, no hang, no connection."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.runs import DEFAULT_LOGGER

from bounded import ROOT, run_bounded
from conftest import QUICK

# Loaded by every Python process started with it on PYTHONPATH: a connection to anything but this
# machine fails at once, as with no network, and is written down.
NO_NETWORK = """
import os, socket

LOCAL = {"localhost", "127.0.0.1", "::1", "0.0.0.0", None}


def refuse(host):
    with open(os.environ["NO_NETWORK_LOG"], "a") as log:
        log.write(f"{os.getpid()} {host}\\n")
    raise OSError(101, f"network is unreachable (the offline test): {host}")


def is_local(address):
    return not isinstance(address, tuple) or address[0] in LOCAL or str(address[0]).startswith("127.")


connect, connect_ex, getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo
socket.socket.connect = lambda self, a: connect(self, a) if is_local(a) else refuse(a)
socket.socket.connect_ex = lambda self, a: connect_ex(self, a) if is_local(a) else refuse(a)
socket.getaddrinfo = lambda host, *a, **k: getaddrinfo(host, *a, **k) if host in LOCAL else refuse(host)
"""
TIMEOUT = 180  # seconds for each entry point: far above what they need, far below a hang


@pytest.mark.slow
@pytest.mark.timeout(330)  # about 3x its 107 s in the template's suite
def test_every_entry_point_finishes_offline_without_a_prompt(tmp_path, data_dir):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(NO_NETWORK)
    log = tmp_path / "connections.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_") and "PROXY" not in k.upper()}
    env |= {"HOME": str(tmp_path), "NO_NETWORK_LOG": str(log), "PYTHONPATH": f"{tmp_path / 'site'}:{ROOT}"}
    probe = ["-c", "import socket; socket.create_connection(('example.com', 443), timeout=5)"]
    assert run(probe, env).returncode != 0 and "example.com" in log.read_text()  # the block is in place
    log.unlink()
    # The baked default logger, not QUICK's "none": with wandb, it must go offline by itself.
    quick = [arg for arg in QUICK if arg not in ("--logger", "none")]
    runs = tmp_path / "runs"
    args = ["--data.data_dir", data_dir, "--trainer.max_epochs", "2", "--data.batch_size", "64"]
    args += ["--run_root", str(runs), *quick]
    images = tmp_path / "images"
    images.mkdir()
    entries = [
        ["train.py", *args],
        ["train_manual.py", *args],
        ["train_fabric.py", *args],
        ["compare.py", *args],
        ["evaluate.py", "--ckpt_path", "LAST", "--data.data_dir", data_dir],
        ["predict.py", "--ckpt_path", "LAST", str(images), "--output", str(tmp_path / "p.csv")],
    ]
    for entry in entries:
        if "LAST" in entry:
            entry[entry.index("LAST")] = str(sorted(runs.glob("*-manual/checkpoints/best.pt"))[-1])
        if entry[0] == "predict.py":
            (images / "one.png").write_bytes(first_png(tmp_path, data_dir))
        result = run(["tests/fake_data.py", *entry], env)
        assert result.returncode == 0, f"{entry[0]}: {result.stderr[-3000:]}"
    assert not log.exists(), f"connections were attempted: {log.read_text()}"
    if DEFAULT_LOGGER == "wandb":
        assert len(list(runs.glob("*/wandb/offline-run-*"))) == 6  # three entries, and compare's three rungs


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return run_bounded([sys.executable, *args], env, timeout=TIMEOUT)  # no stdin: a prompt would fail


def first_png(tmp_path: Path, data_dir: str) -> bytes:
    """One image of the data, as a PNG file's bytes."""
    from test_entries import write_images

    return next(iter(sorted(write_images(tmp_path / "png", data_dir).iterdir()))).read_bytes()
