"""serve.py on a real port: predict.py's answers, 4xx for bad input and still serving, a bounded load, SIGTERM."""

import base64
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

import predict
import train_manual
from {{ cookiecutter.package_name }}.data import DataModule

from bounded import ROOT
from conftest import QUICK

pytestmark = pytest.mark.slow  # one server, started as a user would; no data set of its own


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port: int, body: bytes, content_type: str | None) -> tuple[int, dict]:
    headers = {"Content-Type": content_type} if content_type else {}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def upload(port: int, data: bytes, name: str = "digit.png") -> tuple[int, dict]:
    """A multipart form with the image in the field "file", as `curl -F file=@digit.png` sends it."""
    head = f'--b\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n\r\n'.encode()
    return post(port, head + data + b"\r\n--b--\r\n", "multipart/form-data; boundary=b")


def as_json(port: int, payload) -> tuple[int, dict]:
    return post(port, json.dumps(payload).encode(), "application/json")


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def session_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


@pytest.mark.timeout(100)  # about 3x its 31 s in the template's suite
def test_the_server_answers_as_predict_refuses_bad_input_bears_load_and_stops_on_sigterm(tmp_path, data_dir):
    args = [*QUICK, "--data.data_dir", data_dir, "--run_root", str(tmp_path / "runs"), "--trainer.max_epochs", "1"]
    checkpoint = train_manual.main(args).run_dir / "checkpoints" / "best.pt"
    data = DataModule(data_dir=data_dir)
    data.setup("test")
    pixels, _ = data.pixels("test")
    mode = "L" if data.num_channels == 1 else "RGB"
    files = []
    for i in range(8):
        path = tmp_path / f"{i}.png"
        Image.fromarray(pixels[i].permute(1, 2, 0).squeeze(-1).numpy()).convert(mode).save(path)
        files.append(path)
    expected = predict.main(["--ckpt_path", str(checkpoint), "--output", str(tmp_path / "p.csv"), str(tmp_path)])

    port = free_port()
    command = [sys.executable, "serve.py", "--ckpt_path", str(checkpoint), "--port", str(port), "--data.data_dir"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = open(tmp_path / "serve.log", "w")
    server = subprocess.Popen([*command, data_dir], cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while True:
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.5)

        # The same classes and probabilities as predict.py, by upload and by JSON
        for path, row in zip(sorted(files), sorted(expected, key=lambda r: r["path"]), strict=True):
            encoded = base64.b64encode(path.read_bytes()).decode()
            for status, answer in (upload(port, path.read_bytes()), as_json(port, {"image": encoded})):
                assert status == 200 and answer["class"] == row["class"], (answer, row)
                assert round(max(answer["probabilities"]), 6) == row["confidence"]

        good = files[0].read_bytes()
        bad = {
            "an empty body": post(port, b"", None),
            "an upload that is not an image": upload(port, b"hello, not an image", "notes.txt"),
            "a truncated PNG": upload(port, good[: len(good) // 2]),
            "a 10,000 x 10,000 image": upload(port, png(Image.new("L", (10_000, 10_000)))),
            "wrong JSON": post(port, b'{"image": ', "application/json"),
            "JSON without an image": as_json(port, {"picture": "x"}),
            "base64 that does not decode": as_json(port, {"image": "!!! not base64 !!!"}),
            "a raw body, no form, no JSON": post(port, good, "image/png"),
        }
        for what, (status, answer) in bad.items():
            assert 400 <= status < 500, (what, status, answer)
            assert answer["detail"] and "\n" not in answer["detail"], what
            assert upload(port, good)[0] == 200, f"the server stopped serving after {what}"

        # A bounded load: 8 clients at once
        def timed_request(_) -> tuple[int, float]:
            start = time.perf_counter()
            status, _ = upload(port, good)
            return status, time.perf_counter() - start

        start = time.perf_counter()
        with ThreadPoolExecutor(8) as clients:
            results = list(clients.map(timed_request, range(400)))
        seconds = time.perf_counter() - start
        latencies = sorted(latency for _, latency in results)
        errors = sum(status != 200 for status, _ in results)
        p50, p99 = statistics.median(latencies), latencies[int(0.99 * len(latencies)) - 1]
        rate = f"{400 / seconds:.0f} req/s, p50 {p50:.4f} s, p99 {p99:.4f} s"
        print(f"load: 400 requests from 8 clients at once, {errors} errors, {rate}")
        assert errors == 0

        # SIGTERM to the main process only: every process of the server ends, and the port closes
        server.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while (server.poll() is None or session_alive(server.pid)) and time.monotonic() < deadline:
            time.sleep(0.1)  # poll() reaps the main process, so that only live ones count
        assert not session_alive(server.pid), "a process of the server outlived SIGTERM by 10 s"
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
    finally:
        if session_alive(server.pid):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
        log.close()
