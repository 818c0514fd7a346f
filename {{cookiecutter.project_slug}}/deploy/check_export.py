"""Check an exported model in a process of its own: does it give the probabilities the eager model gave?

    python -m deploy.check_export model.onnx images.npy expected.npy     # numpy and onnxruntime only: no torch
    python -m deploy.check_export model.pt2 images.npy expected.npy      # torch.export.load

deploy/export.py runs it after writing each file. It prints one JSON line of figures and exits 1 if the file
fails: ONNX Runtime within rtol 1e-3 and atol 1e-5 (the tolerances of Lightning's own ONNX test) with
every argmax equal; a .pt2 program bit for bit.
"""

import json
import sys

import numpy as np

from {{ cookiecutter.package_name }}.inference import run_export  # numpy, and onnxruntime for .onnx: no torch


def main(path: str, images_file: str, expected_file: str) -> int:
    images, expected = np.load(images_file), np.load(expected_file)
    got = run_export(path)(images)
    argmax_equal = float((got.argmax(axis=1) == expected.argmax(axis=1)).mean())
    if path.endswith(".onnx"):
        close = bool(np.allclose(got, expected, rtol=1e-3, atol=1e-5))
        passed, rule = close and argmax_equal == 1.0, "rtol 1e-3, atol 1e-5"
    else:
        passed, rule = bool(np.array_equal(got, expected)), "bit-identical"
    figures = {"max_abs_diff": float(np.abs(got - expected).max()), "argmax_equal": argmax_equal}
    print(json.dumps(figures | {"passed": passed, "rule": rule, "shape": list(got.shape)}))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
