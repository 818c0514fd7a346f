"""F2 of the benchmark: what Fabric adds to each step, priced call by call against the manual loop's lines.

Run inside a baked project (bench.py does): it takes the project's own options. ``diff train_manual.py
train_fabric.py`` shows every line Fabric changes in a step: the batch's move (``fabric.to_device``), the
two contexts (``fabric.no_backward_sync``, ``fabric.autocast``), the backward (``fabric.backward``), and
the model and optimizer that ``fabric.setup`` wraps. Each is timed beside the manual loop's line for the
same job, on a network of one weight so that only the call's own cost is left. It writes each pair and
the sum of the differences; bench.py divides the sum by the manual loop's step that ladder/compare.py measured
(P1's) for F2. Each figure is the fastest of several timed loops, so a slow spell of a shared machine,
which F1's whole runs pay, drops out.
"""

import argparse
import json
import sys
import time
from contextlib import nullcontext

import lightning as L
import torch

# bench.py bakes the default project, whose package is digits_classifier.
from digits_classifier.cli import ProjectCLI


def best_us(call, loops: int, repeats: int) -> float:
    """The fastest mean time of ``call`` over ``repeats`` loops of ``loops`` calls, in µs."""
    call()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(loops):
            call()
        times.append((time.perf_counter() - start) / loops)
    return 1e6 * min(times)


def priced_calls(fabric: L.Fabric, x: torch.Tensor, y: torch.Tensor, loops: int, repeats: int) -> dict:
    """Each step line Fabric changes, and the manual loop's line for it: (Fabric's µs, the manual µs)."""
    device = fabric.device
    tiny = torch.nn.Linear(1, 1)  # one weight: what is left of a call is the call's own cost
    tiny_opt = torch.optim.AdamW(tiny.parameters())
    wrapped = torch.nn.Linear(1, 1)
    wrapped.load_state_dict(tiny.state_dict())
    wrapped, wrapped_opt = fabric.setup(wrapped, torch.optim.AdamW(wrapped.parameters()))
    one = torch.ones(1, 1)

    def enter(context_factory):
        def call():
            with context_factory():
                pass

        return call

    return {
        "to_device": (
            best_us(lambda: fabric.to_device((x, y)), loops, repeats),
            best_us(lambda: (x.to(device, non_blocking=True), y.to(device, non_blocking=True)), loops, repeats),
        ),
        "no_backward_sync": (
            best_us(enter(lambda: fabric.no_backward_sync(wrapped, enabled=False)), loops, repeats),
            best_us(enter(nullcontext), loops, repeats),  # the manual loop's choice off DDP
        ),
        "autocast": (
            best_us(enter(fabric.autocast), loops, repeats),
            best_us(enter(lambda: torch.autocast(device.type, dtype=None, enabled=False)), loops, repeats),
        ),
        "forward (setup's module) and backward": (
            best_us(lambda: fabric.backward(wrapped(one).sum()), loops, repeats),
            best_us(lambda: tiny(one).sum().backward(), loops, repeats),
        ),
        "zero_grad + step (setup's optimizer)": (
            best_us(lambda: (wrapped_opt.zero_grad(), wrapped_opt.step()), loops, repeats),
            best_us(lambda: (tiny_opt.zero_grad(), tiny_opt.step()), loops, repeats),
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", required=True)
    parser.add_argument("--loops", type=int, default=2000, help="calls per timed loop")
    parser.add_argument("--repeats", type=int, default=7, help="timed loops per call; the fastest counts")
    own, rest = parser.parse_known_args()
    sys.argv = sys.argv[:1]  # the project's options are in rest
    cli = ProjectCLI(args=rest)
    fabric = L.Fabric(**cli.fabric_arguments())
    fabric.launch()
    cli.datamodule.setup("fit")
    x, y = next(iter(cli.datamodule.train_dataloader()))  # a real batch, on the CPU as the loader gives it
    calls = priced_calls(fabric, x, y, own.loops, own.repeats)
    added = sum(fabric_us - manual_us for fabric_us, manual_us in calls.values())
    figures = {"calls_us": calls, "added_us": added}
    with open(own.json, "w") as f:
        json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()
