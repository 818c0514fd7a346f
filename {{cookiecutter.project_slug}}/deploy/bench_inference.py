"""Figures of the exported and served model, printed and never asserted: ONNX Runtime against eager PyTorch, and
deploy/serve.py under load with and without dynamic batching, with good requests alone and with half of them bad
(each good request's latency, with and without bad traffic beside it).

    python -m deploy.bench_inference --ckpt_path runs/<run>/checkpoints/best.pt [--requests 2000] [--clients 8]
"""

import argparse
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from PIL import Image

import predict
from deploy import export

ROOT = Path(__file__).resolve().parents[1]  # the project root, where `python -m deploy.serve` runs


def median_seconds(function, repeats: int) -> float:
    function()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def onnx_against_eager(ckpt_path: str, output_dir: Path) -> None:
    export.main(["--ckpt_path", ckpt_path, "--output_dir", str(output_dir), "--format", "onnx", "pt2"])
    eager, _, _ = predict.load_model(ckpt_path, [])  # model.DeployedClassifier from the checkpoint, eager
    session = onnxruntime.InferenceSession(str(output_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    shape = json.loads((output_dir / "model.json").read_text())["input"]["shape"][1:]
    print("\nbatch | eager PyTorch | ONNX Runtime | ONNX Runtime / eager (medians, alternating)")
    for batch in (1, 64):
        images = np.random.default_rng(0).integers(0, 256, (batch, *shape), dtype=np.uint8)
        with torch.no_grad():
            ratios, pairs = [], []
            for _ in range(5):
                t_eager = median_seconds(lambda images=images: eager(images), 20)
                t_onnx = median_seconds(lambda images=images: session.run(None, {"images": images}), 20)
                ratios.append(t_onnx / t_eager)
                pairs.append((t_eager, t_onnx))
        t_eager, t_onnx = statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)
        print(f"{batch:>5} | {t_eager * 1e3:>10.3f} ms | {t_onnx * 1e3:>9.3f} ms | x{statistics.median(ratios):.3f}")


def serve_under_load(ckpt_path: str, max_batch_size: int, requests: int, clients: int) -> None:
    """One server; a run of good requests only, then one where every other request is bad."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "deploy.serve", "--ckpt_path", ckpt_path, "--port", str(port)]
    command += ["--max_batch_size", str(max_batch_size)]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    server = subprocess.Popen(command, cwd=ROOT, start_new_session=True, **quiet)
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("deploy/serve.py did not start") from None
                time.sleep(0.5)
        for bad_share in (0.0, 0.5):
            load(port, max_batch_size, requests, clients, bad_share)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def load(port: int, max_batch_size: int, requests: int, clients: int, bad_share: float) -> None:
    """``requests`` from ``clients`` threads at once, a ``bad_share`` of them bad: the good ones' figures."""
    buffer = io.BytesIO()
    Image.new("L", (8, 8), 128).save(buffer, format="PNG")
    good = b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n\r\n'
    good += buffer.getvalue() + b"\r\n--b--\r\n"
    bad = good.replace(buffer.getvalue(), b"not an image")  # decoded in the batch, refused there
    every = round(1 / bad_share) if bad_share else 0

    def one(index: int) -> tuple[bool, bool, float]:
        is_bad = bool(every) and index % every == 0
        start = time.perf_counter()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=bad if is_bad else good)
        request.add_header("Content-Type", "multipart/form-data; boundary=b")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        except OSError:
            status = 0
        return is_bad, (400 <= status < 500) if is_bad else status == 200, time.perf_counter() - start

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, range(requests)))
    seconds = time.perf_counter() - start
    latencies = sorted(latency for is_bad, _, latency in results if not is_bad)
    wrong = sum(not right for _, right, _ in results)
    p50, p99 = statistics.median(latencies), latencies[int(0.99 * len(latencies)) - 1]
    print(
        f"{max_batch_size:>14} | {bad_share * 100:>8.0f}% | {requests} from {clients} clients | {wrong:>13} "
        f"| {requests / seconds:>7.0f} | {p50 * 1e3:>7.1f} ms | {p99 * 1e3:>7.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ckpt_path", required=True)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    own = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        onnx_against_eager(own.ckpt_path, Path(tmp))
    print("\nmax_batch_size | bad share | load | wrong answers | req/s | good p50 | good p99")
    for max_batch_size in (8, 1):
        serve_under_load(own.ckpt_path, max_batch_size, own.requests, own.clients)


if __name__ == "__main__":
    main()
