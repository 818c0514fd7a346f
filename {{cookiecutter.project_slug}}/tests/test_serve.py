"""serve.py: predict.py's answers, 4xx for bad input and still serving, a bounded load, SIGTERM.

The quick test makes LitServe's calls to the API and the middleware by hand, in-process; the slow one
starts the server on a real port, as a user would (one server: no data set of its own).
"""

import asyncio
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
from fastapi import HTTPException
from PIL import Image
from starlette.datastructures import FormData, UploadFile
from test_entries import write_images

import predict
import serve
import train_manual
from {{ cookiecutter.package_name }}.cli import one_line_errors

from bounded import ROOT
from conftest import QUICK


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


def refusal(api: serve.ImageAPI, request) -> HTTPException:
    """What ``decode_request`` raises for a request it cannot read."""
    with pytest.raises(HTTPException) as refused:
        api.decode_request(request)
    return refused.value


def through_middleware(body: bytes, content_type: str) -> tuple[int | None, bytes | None]:
    """The middleware's answer to a POST (its status, or None), and the body LitServe got (or None)."""
    seen, sent = [], []

    async def litserve(scope, receive, send) -> None:
        seen.append((await receive())["body"])

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "headers": [(b"content-type", content_type.encode())]}
    asyncio.run(serve.RefuseUnreadableBodies(litserve)(scope, receive, send))
    status = next((message["status"] for message in sent if message["type"] == "http.response.start"), None)
    return status, seen[0] if seen else None


def test_the_api_answers_as_predict_and_refuses_bad_input_in_process(trained_runs, tmp_path, data_dir, capsys):
    checkpoint = str(trained_runs["manual"].run_dir / "checkpoints" / "best.pt")
    files = sorted(write_images(tmp_path / "images", data_dir).iterdir())
    expected = predict.main(["--ckpt_path", checkpoint, "--output", str(tmp_path / "p.csv"), str(tmp_path / "images")])
    api = serve.ImageAPI(checkpoint, ["--data.data_dir", data_dir], max_batch_size=4, batch_timeout=0.01)
    api.setup("cpu")
    # LitServe decodes each request, batches them, predicts once, unbatches and encodes each answer
    requests = [{"image": base64.b64encode(path.read_bytes()).decode()} for path in files[:2]]
    requests += [
        FormData([("file", UploadFile(io.BytesIO(path.read_bytes()), filename="d.png"))]) for path in files[2:]
    ]
    probabilities = api.unbatch(api.predict(api.batch([api.decode_request(request) for request in requests])))
    for answer, row in zip(map(api.encode_response, probabilities), expected, strict=True):
        assert answer["class"] == row["class"] and round(max(answer["probabilities"]), 6) == row["confidence"]
        assert answer["class"] == api.classes[answer["index"]] and len(answer["probabilities"]) == len(api.classes)
    single = api.predict(api.decode_request(requests[0]))  # --max_batch_size 1: one image, unbatched
    assert single.shape == probabilities[0].shape and int(single.argmax()) == int(probabilities[0].argmax())

    good = files[0].read_bytes()
    bad = {
        "JSON without an image": {"picture": "x"},
        "base64 that does not decode": {"image": "!!! not base64 !!!"},
        "an empty image": {"image": ""},
        "not an image": {"image": base64.b64encode(b"hello, not an image").decode()},
        "a truncated PNG": {"image": base64.b64encode(good[: len(good) // 2]).decode()},
        "too many pixels": {"image": base64.b64encode(png(Image.new("L", (4097, 4096)))).decode()},
        "a form without the file": FormData([("other", "x")]),
    }
    for what, request in bad.items():
        error = refusal(api, request)
        assert 400 <= error.status_code < 500 and error.detail and "\n" not in error.detail, what

    # The middleware: a body that is neither a form nor JSON is refused; JSON reaches LitServe unchanged
    assert through_middleware(b"", "application/json") == (400, None)
    assert through_middleware(b'{"image": ', "application/json") == (400, None)
    assert through_middleware(good, "image/png") == (415, None)
    assert through_middleware(b'{"image": "x"}', "application/json") == (None, b'{"image": "x"}')

    with pytest.raises(SystemExit), one_line_errors():  # a missing checkpoint: one line, before any worker
        serve.main(["--ckpt_path", str(tmp_path / "missing.pt")])
    assert "missing.pt" in capsys.readouterr().err


def session_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


@pytest.mark.slow
@pytest.mark.timeout(100)  # about 3x its 31 s in the template's suite
def test_the_server_answers_as_predict_refuses_bad_input_bears_load_and_stops_on_sigterm(tmp_path, data_dir):
    args = [*QUICK, "--data.data_dir", data_dir, "--run_root", str(tmp_path / "runs"), "--trainer.max_epochs", "1"]
    checkpoint = train_manual.main(args).run_dir / "checkpoints" / "best.pt"
    files = sorted(write_images(tmp_path / "images", data_dir, 8).iterdir())
    expected = predict.main(
        ["--ckpt_path", str(checkpoint), "--output", str(tmp_path / "p.csv"), str(tmp_path / "images")]
    )

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
