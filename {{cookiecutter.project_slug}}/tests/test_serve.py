"""deploy/serve.py: predict.py's answers, 4xx for bad input and still serving, each request's failure its own, a
bounded load and body size, SIGTERM.

The quick test makes LitServe's calls to the API and the middleware by hand, in-process; the slow ones
start the server on a real port, as a user would, with dynamic batching on and off.
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
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image
from starlette.datastructures import FormData, UploadFile
from starlette.responses import JSONResponse

import predict
import train_manual
from deploy import serve
from {{ cookiecutter.package_name }}.errors import one_line_errors

from bounded import ROOT
from conftest import QUICK
from test_entries import write_images


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
        body = error.read()
        return error.code, json.loads(body) if body.startswith(b"{") else {"detail": body.decode()}


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


def through_middleware(
    body: bytes, content_type: str, max_bytes: int = 2**20, length: int | None = None, chunk: int = 2**16
) -> tuple[int | None, bytes | None, int]:
    """The middleware's answer to a POST (its status, or None), the body LitServe got (or None), and how
    many bytes of the body it read. The body comes in ``chunk``-byte messages, with ``length`` as its
    Content-Length header, if given."""
    seen, sent, read = [], [], [0]
    chunks = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]

    async def litserve(scope, receive, send) -> None:
        seen.append((await receive())["body"])

    async def receive():
        part = chunks.pop(0)
        read[0] += len(part)
        return {"type": "http.request", "body": part, "more_body": bool(chunks)}

    async def send(message) -> None:
        sent.append(message)

    headers = [(b"content-type", content_type.encode())]
    headers += [(b"content-length", str(length).encode())] if length is not None else []
    scope = {"type": "http", "method": "POST", "headers": headers}
    asyncio.run(serve.RefuseUnreadableBodies(litserve, max_bytes)(scope, receive, send))
    status = next((message["status"] for message in sent if message["type"] == "http.response.start"), None)
    return status, seen[0] if seen else None, read[0]


def answer_of(response: JSONResponse) -> tuple[int, dict]:
    """The status and the JSON body of what ``encode_response`` returned, as the client gets them."""
    return response.status_code, json.loads(response.body)


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
    answers = [answer_of(api.encode_response(y)) for y in probabilities]
    for (status, answer), row in zip(answers, expected, strict=True):
        assert status == 200 and answer["class"] == row["class"]
        assert round(max(answer["probabilities"]), 6) == row["confidence"]
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
        status, answer = answer_of(api.encode_response(api.predict(api.decode_request(request))))
        assert 400 <= status < 500 and answer["detail"] and "\n" not in answer["detail"], what

    # A batch of good and bad requests, as LitServe calls the API: each bad one gets its own 4xx and
    # reason, and each good one the answer it gets alone
    good_ones = [{"image": base64.b64encode(path.read_bytes()).decode()} for path in files[:3]]
    mixed = [good_ones[0], bad["an empty image"], good_ones[1], bad["a truncated PNG"], good_ones[2]]
    mixed += [bad["too many pixels"]]
    decoded = [api.decode_request(request) for request in mixed]
    answers = [answer_of(api.encode_response(y)) for y in api.unbatch(api.predict(api.batch(decoded)))]
    alone = [answer_of(api.encode_response(api.predict(x))) for x in decoded]
    assert [status for status, _ in answers] == [200, 400, 200, 400, 200, 413]
    for (status, answer), (status_alone, answer_alone) in zip(answers, alone, strict=True):
        assert status == status_alone and answer.get("detail") == answer_alone.get("detail")
        assert answer.get("class") == answer_alone.get("class")  # a batch's sums may differ in the last bits
    assert "empty" in answers[1][1]["detail"] and "readable" in answers[3][1]["detail"]
    assert answer_of(api.encode_response(api.predict(api.batch(decoded[1:2]))[0]))[0] == 400  # none readable

    # The middleware: a body that is neither a form nor JSON is refused; JSON reaches LitServe unchanged
    assert through_middleware(b"", "application/json")[:2] == (400, None)
    assert through_middleware(b'{"image": ', "application/json")[:2] == (400, None)
    assert through_middleware(good, "image/png")[:2] == (415, None)
    assert through_middleware(b'{"image": "x"}', "application/json")[:2] == (None, b'{"image": "x"}')
    form = b"--b\r\n" + b"x" * 300_000
    assert through_middleware(form, "multipart/form-data; boundary=b")[:2] == (None, form)  # 300 kB in 5 parts
    # a body over the limit: refused unread when its length is declared, else once it grows past the limit
    assert through_middleware(form, "multipart/form-data", max_bytes=1000, length=len(form)) == (413, None, 0)
    assert through_middleware(form, "multipart/form-data", max_bytes=100_000) == (413, None, 2**17)

    with pytest.raises(SystemExit), one_line_errors():  # a missing checkpoint: one line, before any worker
        serve.main(["--ckpt_path", str(tmp_path / "missing.pt")])
    assert "missing.pt" in capsys.readouterr().err


def test_the_server_starts_with_its_limits(trained_runs, monkeypatch):
    # uvicorn answers 503 beyond limit_concurrency, and the middleware refuses a body over max_bytes
    checkpoint = str(trained_runs["manual"].run_dir / "checkpoints" / "best.pt")
    started = {}
    monkeypatch.setattr(serve.ls.LitServer, "run", lambda server, **options: started.update(options, server=server))
    monkeypatch.setattr(serve.signal, "signal", lambda *args: None)  # this process keeps its own SIGTERM
    serve.main(["--ckpt_path", checkpoint, "--max_concurrent_requests", "7", "--max_request_mb", "0.5"])
    assert started["limit_concurrency"] == 7
    assert (serve.RefuseUnreadableBodies, {"max_bytes": 2**19}) in started["server"].middlewares


def session_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


@pytest.fixture(scope="module")
def served(tmp_path_factory, data_dir) -> tuple[Path, Path, list[dict]]:
    """A checkpoint to serve, a few of the data set's images as PNG files, and predict.py's rows for them."""
    root = tmp_path_factory.mktemp("served")
    args = [*QUICK, "--data.data_dir", data_dir, "--run_root", str(root / "runs"), "--trainer.max_epochs", "1"]
    checkpoint = train_manual.main(args).run_dir / "checkpoints" / "best.pt"
    images = write_images(root / "images", data_dir, 8)
    expected = predict.main(["--ckpt_path", str(checkpoint), "--output", str(root / "p.csv"), str(images)])
    return checkpoint, images, sorted(expected, key=lambda row: row["path"])


@contextmanager
def server_on_port(checkpoint: Path, log_path: Path, *options: str):
    """deploy/serve.py on a free port, as a user starts it, once /health answers; killed with its workers after."""
    port = free_port()
    command = [sys.executable, "-m", "deploy.serve", "--ckpt_path", str(checkpoint), "--port", str(port), *options]
    log = open(log_path, "w")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while True:
            assert server.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        yield server, port
    finally:
        if session_alive(server.pid):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
        log.close()


# Bad requests of four kinds, each with the words of its own reason: a message that crossed to another
# request would show there
BAD = {
    "broken JSON": (lambda port, _: post(port, b'{"image": ', "application/json"), "not JSON"),
    "not base64": (lambda port, _: as_json(port, {"image": "!!! not base64 !!!"}), "not base64"),
    "no image": (lambda port, _: as_json(port, {"picture": "x"}), "no image in the request"),
    "a truncated PNG": (lambda port, good: upload(port, good[: len(good) // 2]), "not a readable image"),
}


def mixed_traffic(port: int, files: list[Path], expected: list[dict], clients: int, rounds: int) -> dict:
    """Good and bad requests interleaved, from ``clients`` threads at once: how each kind was answered."""
    kinds = [*(("good", index) for index in range(len(files))), *((name, 0) for name in BAD)]
    requests = [kinds[i % len(kinds)] for i in range(rounds * len(kinds))]

    def send(request) -> tuple[str, bool, float]:
        kind, index = request
        start = time.perf_counter()
        good = files[index].read_bytes()
        if kind == "good":
            status, answer = as_json(port, {"image": base64.b64encode(good).decode()})
            right = status == 200 and answer.get("class") == expected[index]["class"]
        else:
            send_it, words = BAD[kind]
            status, answer = send_it(port, good)
            right = 400 <= status < 500 and words in answer.get("detail", "")
        return kind, right, time.perf_counter() - start

    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(send, requests))
    good = [(right, seconds) for kind, right, seconds in results if kind == "good"]
    latencies = sorted(seconds for _, seconds in good)
    return {
        "good": len(good),
        "good answered right": sum(right for right, _ in good),
        "bad": len(results) - len(good),
        "bad answered with their own 4xx": sum(right for kind, right, _ in results if kind != "good"),
        "p50": statistics.median(latencies),
        "p99": latencies[int(0.99 * len(latencies)) - 1],
    }


def assert_all_answered_right(table: dict) -> None:
    print(f"mixed traffic: {table}")
    assert table["good answered right"] == table["good"] and table["bad answered with their own 4xx"] == table["bad"]


@pytest.mark.slow
@pytest.mark.timeout(120)  # about 3x its 38 s in the template's suite
def test_the_server_answers_as_predict_refuses_bad_input_bears_load_and_stops_on_sigterm(served, tmp_path):
    checkpoint, images, expected = served
    files = sorted(images.iterdir())
    limits = ["--max_request_mb", "0.25"]
    with server_on_port(checkpoint, tmp_path / "serve.log", *limits) as (server, port):
        # The same classes and probabilities as predict.py, by upload and by JSON
        for path, row in zip(files, expected, strict=True):
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
            "a body over --max_request_mb": upload(port, os.urandom(300_000)),  # within the socket's buffers
        }
        for what, (status, answer) in bad.items():
            assert 400 <= status < 500, (what, status, answer)
            assert answer["detail"] and "\n" not in answer["detail"], what
            assert upload(port, good)[0] == 200, f"the server stopped serving after {what}"
        assert bad["a body over --max_request_mb"][0] == 413

        # Dynamic batching (8 at most): good and bad requests from 16 clients at once
        assert_all_answered_right(mixed_traffic(port, files, expected, clients=16, rounds=8))

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


@pytest.mark.slow
@pytest.mark.timeout(90)  # about 3x its 25 s in the template's suite
def test_with_batching_off_each_request_of_mixed_traffic_gets_its_own_answer(served, tmp_path):
    checkpoint, images, expected = served
    with server_on_port(checkpoint, tmp_path / "serve.log", "--max_batch_size", "1") as (_, port):
        assert_all_answered_right(mixed_traffic(port, sorted(images.iterdir()), expected, clients=16, rounds=4))
