"""With no network and no wandb key, every entry point finishes on its own: no prompt, no hang, no connection.

In-process: the boundary a test of being offline needs is the socket, not the process. Every connection
to anything but this machine fails at once, as with no network, and is written down; pytest's stdin
raises on a read, so a prompt fails too.
"""

import os
import socket

import pytest

import evaluate
import predict
import train
import train_fabric
import train_manual
from {{ cookiecutter.package_name }}.runs import DEFAULT_LOGGER
from ladder import compare

from conftest import QUICK
from test_entries import write_images

LOCAL = {"localhost", "127.0.0.1", "::1", "0.0.0.0", None}


@pytest.fixture
def no_network(monkeypatch) -> list[str]:
    """Sockets that refuse every address but this machine's; the refused addresses, in order."""
    refused: list[str] = []

    def refuse(address):
        refused.append(str(address))
        raise OSError(101, f"network is unreachable (the offline test): {address}")

    def is_local(address) -> bool:
        return not isinstance(address, tuple) or address[0] in LOCAL or str(address[0]).startswith("127.")

    connect, connect_ex, getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo
    monkeypatch.setattr(socket.socket, "connect", lambda self, a: connect(self, a) if is_local(a) else refuse(a))
    monkeypatch.setattr(socket.socket, "connect_ex", lambda self, a: connect_ex(self, a) if is_local(a) else refuse(a))
    monkeypatch.setattr(socket, "getaddrinfo", lambda h, *a, **k: getaddrinfo(h, *a, **k) if h in LOCAL else refuse(h))
    return refused


@pytest.mark.slow
@pytest.mark.timeout(120)  # about 3x its 40 s in the template's suite
def test_every_entry_point_finishes_offline_without_a_prompt(tmp_path, data_dir, monkeypatch, no_network):
    with pytest.raises(OSError, match="unreachable"):
        socket.create_connection(("example.com", 443), timeout=5)
    assert no_network == ["example.com"]  # the block is in place
    no_network.clear()
    for name in [name for name in os.environ if name.startswith("WANDB_") or "PROXY" in name.upper()]:
        monkeypatch.delenv(name)  # no key, no mode: the baked default logger must go offline by itself
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    quick = [arg for arg in QUICK if arg not in ("--logger", "none")]
    runs = tmp_path / "runs"
    args = ["--data.data_dir", data_dir, "--trainer.max_epochs", "2", "--data.batch_size", "64"]
    args += ["--run_root", str(runs), *quick]
    for entry in (train, train_manual, train_fabric):
        entry.main(args)
    assert compare.main([*args, "--plot", ""]) == 0
    best = str(sorted(runs.glob("*-manual/checkpoints/best.pt"))[0])
    evaluate.main(["--ckpt_path", best, "--data.data_dir", data_dir])
    images = write_images(tmp_path / "images", data_dir)
    predict.main(["--ckpt_path", best, str(images), "--output", str(tmp_path / "p.csv")])
    assert not no_network, f"connections were attempted: {no_network}"
    if DEFAULT_LOGGER == "wandb":
        assert len(list(runs.glob("*/wandb/offline-run-*"))) == 6  # three entries, and compare's three rungs
