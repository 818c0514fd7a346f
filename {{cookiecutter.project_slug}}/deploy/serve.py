"""Serve a checkpoint of any rung over HTTP, on LitServe: POST an image, get its class and the probabilities.

    python -m deploy.serve --ckpt_path runs/<run>/checkpoints/best.pt          # http://127.0.0.1:8000
    curl -F "file=@digit.png" localhost:8000/predict                   # an upload
    curl -H "Content-Type: application/json" -d "{\"image\": \"$(base64 -w0 digit.png)\"}" localhost:8000/predict
    curl localhost:8000/health

The image is brought to the training resolution and channels with the DataModule's own transform, as
predict.py does, and the answer is {"class", "index", "probabilities"}. Requests are batched dynamically
(--max_batch_size, --batch_timeout). A request that is not an image gets its own 4xx and a one-line
reason; the requests batched with it are answered as if it had not been sent. A body over
--max_request_mb is refused with 413 before it is read; beyond --max_concurrent_requests requests at
once, a client gets 503 at once and may retry. SIGTERM stops every process of the server.
"""

import base64
import binascii
import io
import json
import signal
import sys

import litserve as ls
import torch
from fastapi import HTTPException
from PIL import Image, UnidentifiedImageError
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from {{ cookiecutter.package_name }}.checkpoints import read_checkpoint
from {{ cookiecutter.package_name }}.errors import ArgumentParser, one_line_errors
from {{ cookiecutter.package_name }}.inference import from_checkpoint, picture_to_pixels

MAX_PIXELS = 4096 * 4096  # refused before decoding: PIL only warns up to twice its own limit of 89M pixels
USAGE = 'send a form upload (curl -F "file=@digit.png") or JSON {"image": "<base64 of a PNG or JPEG>"}'


def image_bytes(request) -> bytes:
    """The encoded image of a request: JSON's base64 "image", or the form's "file" upload."""
    if isinstance(request, dict) and "image" in request:  # JSON
        try:
            return base64.b64decode(request["image"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise HTTPException(400, '"image" is not base64: ' + USAGE) from None
    upload = request.get("file") if hasattr(request, "getlist") else None  # a form (starlette's FormData)
    if not hasattr(upload, "read"):
        raise HTTPException(400, "no image in the request: " + USAGE)
    return upload.file.read()


def open_image(data: bytes) -> Image.Image:
    """A decoded image, or a 4xx that says why not."""
    if not data:
        raise HTTPException(400, "the image is empty")
    try:
        image = Image.open(io.BytesIO(data))
        if image.width * image.height > MAX_PIXELS:
            raise HTTPException(413, f"the image is {image.width}x{image.height}: at most {MAX_PIXELS} pixels")
        image.load()  # a truncated file fails here, not when it is opened
    except Image.DecompressionBombError:
        raise HTTPException(413, f"the image has more than {MAX_PIXELS} pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise HTTPException(400, f"not a readable image ({error.__class__.__name__})") from None
    return image


class ImageAPI(ls.LitAPI):
    """The network of a checkpoint, behind POST /predict."""

    def __init__(self, ckpt_path: str, options: list[str], max_batch_size: int, batch_timeout: float) -> None:
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout)
        self.ckpt_path, self.options = ckpt_path, options

    def setup(self, device: str) -> None:
        model, self.data = from_checkpoint(self.ckpt_path, self.options)
        self.model, self.device, self.classes = model.to(device), device, self.data.class_names

    def decode_request(self, request) -> torch.Tensor | HTTPException:
        """The request's uint8 (C, size, size), as predict.py reads it; or its refusal, as a value.

        LitServe answers every request of a batch with the error of any one of them (it decodes inside the
        batch's try), so a request that cannot be read is carried to ``encode_response`` as its own 4xx.
        """
        try:
            return picture_to_pixels(open_image(image_bytes(request)), self.data.resize, self.data.num_channels)
        except HTTPException as refusal:
            return refusal

    def batch(self, inputs: list) -> list:
        return inputs  # predict stacks the readable ones: each refusal keeps its place in the batch

    @torch.no_grad()
    def predict(self, x: torch.Tensor | HTTPException | list) -> torch.Tensor | HTTPException | list:
        """Probabilities for every readable image, in one forward pass; a refusal passes through unchanged."""
        batched = isinstance(x, list)  # with --max_batch_size 1 LitServe passes one decoded request
        inputs = x if batched else [x]
        images = [each for each in inputs if isinstance(each, torch.Tensor)]
        rows = iter(self.model(torch.stack(images).to(self.device)).cpu() if images else [])
        outputs = [next(rows) if isinstance(each, torch.Tensor) else each for each in inputs]
        return outputs if batched else outputs[0]

    def unbatch(self, output: list) -> list:
        return output

    def encode_response(self, output: torch.Tensor | HTTPException) -> JSONResponse:
        """200 with the class, or this request's own 4xx and reason (as FastAPI words an HTTPException)."""
        if isinstance(output, HTTPException):
            return JSONResponse({"detail": output.detail}, status_code=output.status_code)
        index = int(output.argmax())
        return JSONResponse({"class": self.classes[index], "index": index, "probabilities": output.tolist()})


class RefuseUnreadableBodies:
    """Before a request reaches LitServe: a body over ``max_bytes`` gets 413, unread (its Content-Length) or
    as soon as it grows past the limit; a body that is neither a form nor JSON gets a 4xx (LitServe would
    answer it with a 500). Every other body is handed on unchanged."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers", []))
        kind = headers.get(b"content-type", b"").decode("latin-1").lower()
        too_big = (413, f"the request is over {self.max_bytes} bytes (--max_request_mb)")
        refusal, body, more = None, bytearray(), True
        if int(headers.get(b"content-length", b"0") or 0) > self.max_bytes:
            refusal, more = too_big, False  # refused before a byte of the body is read
        while more and refusal is None:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
            refusal = too_big if len(body) > self.max_bytes else None
        if refusal is None and not kind.startswith("multipart/form-data"):
            refusal = self.unreadable(body, kind)
        if refusal:
            return await JSONResponse({"detail": refusal[1]}, status_code=refusal[0])(scope, receive, send)
        replayed = False

        async def replay():  # the body once more, for LitServe; then the client's own messages
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    @staticmethod
    def unreadable(body: bytearray, kind: str) -> tuple[int, str] | None:
        """Why a body that is not a form cannot be read, as (status, reason); None if it is JSON."""
        if not body:
            return 400, "the request has no body: " + USAGE
        try:
            json.loads(body)
        except ValueError:
            return 400 if "json" in kind else 415, "the body is not JSON: " + USAGE
        return None


def stop(signum, frame) -> None:
    """SIGTERM, as from a container runtime: LitServe's own shutdown stops its workers on KeyboardInterrupt."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(__doc__)
    parser.add_argument("--ckpt_path", required=True, help="a checkpoint of any rung: .ckpt (Trainer) or .pt")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve other machines")
    parser.add_argument("--workers", type=int, default=1, help="inference processes per device")
    parser.add_argument("--max_batch_size", type=int, default=8, help="requests batched together (1: none)")
    parser.add_argument("--batch_timeout", type=float, default=0.005, help="seconds a batch waits to fill")
    parser.add_argument("--max_request_mb", type=float, default=10, help="a larger body is refused with 413")
    parser.add_argument("--max_concurrent_requests", type=int, default=128, help="more at once get 503")
    own, rest = parser.parse_known_args(argv)
    read_checkpoint(own.ckpt_path)  # a missing or corrupt file fails here, in one line, before any worker starts
    api = ImageAPI(own.ckpt_path, rest, own.max_batch_size, own.batch_timeout)
    accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    limit = (RefuseUnreadableBodies, {"max_bytes": int(own.max_request_mb * 2**20)})
    server = ls.LitServer(api, accelerator=accelerator, workers_per_device=own.workers, middlewares=[limit])
    server.uvicorn_graceful_timeout = 3  # of LitServe's 30 s: the 10 s a container runtime waits after SIGTERM
    signal.signal(signal.SIGTERM, stop)
    # uvicorn answers 503 to a request beyond limit_concurrency, at once, without queueing it
    server.run(
        host=own.host,
        port=own.port,
        generate_client_file=False,
        num_api_servers=1,
        limit_concurrency=own.max_concurrent_requests,
    )


if __name__ == "__main__":
    with one_line_errors():
        main(sys.argv[1:])
