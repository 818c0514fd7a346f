"""Where each rung performs the six steps: real training steps, with the calls that matter traced.

    python -m ladder.trace_steps                    # the first batch of every rung: manual, Fabric, the Trainer
    python -m ladder.trace_steps --batches 3        # more batches of each
    python -m ladder.trace_steps --rungs trainer    # one rung
    python -m ladder.trace_steps --data.batch_size 8   # any option train.py takes

The six operations are caught where torch performs them, whoever asks for them: the batch's
``Tensor.to`` (1), ``Optimizer.zero_grad`` (2), the network's forward (3), ``F.cross_entropy`` (4),
``Tensor.backward`` (5) and the optimizer's update (6, when ``step`` returns). Around them the trace shows,
indented, the calls that led there: the LightningModule's hooks for the Trainer, Fabric's methods and
wrappers for Fabric. docs/six_steps.md shows this trace, and tests/test_trace.py checks it against a new one.
"""

import io
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, redirect_stdout
from functools import wraps

import torch
import torch.nn.functional as F
from jsonargparse.typing import PositiveInt
from lightning.fabric import Fabric
from lightning.fabric.wrappers import _FabricModule, _FabricOptimizer
from lightning.pytorch import LightningModule
from torch import nn
from torch.nn.modules.module import register_module_forward_pre_hook
from torch.nn.parallel import DistributedDataParallel
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook
from torch.utils.data import DataLoader

import train
import train_fabric
import train_manual
from {{ cookiecutter.package_name }}.errors import ArgumentParser, one_line_errors
from {{ cookiecutter.package_name }}.module import LitClassifier

SIX = {
    1: "1. move the batch to the device",
    2: "2. optimizer.zero_grad()",
    3: "3. forward",
    4: "4. loss",
    5: "5. loss.backward()",
    6: "6. update the weights",
}
# The calls of each rung that lead to the six steps, as (owner, attribute, label).
LIGHTNING_HOOKS = [
    "on_train_batch_start", "on_before_batch_transfer", "transfer_batch_to_device", "on_after_batch_transfer",
    "optimizer_step", "training_step", "optimizer_zero_grad", "on_before_zero_grad", "on_before_backward",
    "backward", "on_after_backward", "on_before_optimizer_step", "on_train_batch_end",
]  # fmt: skip
CALLS = {
    "manual": [],
    "fabric": [
        (Fabric, "to_device", "fabric.to_device"),
        (Fabric, "autocast", "fabric.autocast"),
        (_FabricModule, "forward", "_FabricModule.forward"),
        (Fabric, "backward", "fabric.backward"),
        (Fabric, "clip_gradients", "fabric.clip_gradients"),
        (_FabricOptimizer, "step", "_FabricOptimizer.step"),
    ],
    "trainer": [(LitClassifier, name, f"LightningModule.{name}") for name in LIGHTNING_HOOKS],
}
ENTRIES = {"manual": train_manual.main, "fabric": train_fabric.main, "trainer": train.main}


class Trace:
    """What happened during each batch that any DataLoader handed out, as (pass, batch, depth, label), in order.

    A pass is one iteration over a loader. Which passes trained is known at the end: those during which the
    optimizer stepped. The others (validation, the Trainer's sanity check) are left out.
    """

    def __init__(self) -> None:
        self.events: list[tuple[int, int, int, str]] = []
        self.passes = 0
        self.batch: tuple[int, int] | None = None  # (pass, batch) of the batch handed out last
        self.depth = 0
        self.forwarded = False  # the network's forward of this batch has been seen
        self.batch_tensors: set[int] = set()
        self.trained: set[int] = set()  # the passes during which the optimizer stepped

    def add(self, label: str) -> None:
        if self.batch is not None:
            self.events.append((*self.batch, self.depth, label))

    @contextmanager
    def nested(self, label: str) -> Iterator[None]:
        self.add(label)
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    def batches(self, batches: int) -> list[tuple[int, int, str]]:
        """The events of the first ``batches`` batches of the first pass that trained."""
        first = min(self.trained)
        return [
            (batch, depth, label) for pass_, batch, depth, label in self.events if pass_ == first and batch < batches
        ]


TRACE = Trace()
# The modules that wrap the network: its forward is the first call of another module in a batch.
WRAPPERS = (LightningModule, _FabricModule, DistributedDataParallel)


def traced_iter(iterate: Callable) -> Callable:
    """``DataLoader.__iter__`` that opens a new batch in the trace as it hands each one out."""

    def each_batch(loader: DataLoader) -> Iterator:
        TRACE.passes += 1
        for index, batch in enumerate(iterate(loader)):
            TRACE.batch, TRACE.depth, TRACE.forwarded = (TRACE.passes, index), 0, False
            TRACE.batch_tensors = {id(tensor) for tensor in batch}
            yield batch

    return each_batch


def traced_forward(module: nn.Module, args: tuple) -> None:
    """A forward pre-hook on every module: the first one of a batch that is not a wrapper is the network."""
    if module.training and not TRACE.forwarded and not isinstance(module, WRAPPERS):
        TRACE.forwarded = True
        step(3)


def step(number: int) -> None:
    TRACE.add(SIX[number])


def wrapped(function: Callable, label: str) -> Callable:
    @wraps(function)
    def call(*args, **kwargs):
        with TRACE.nested(label):
            return function(*args, **kwargs)

    return call


@contextmanager
def patched(owner: object, name: str, replacement: object) -> Iterator[None]:
    """``owner.name`` replaced for the duration; an attribute the owner only inherits is deleted afterwards."""
    own = name in vars(owner)
    original = vars(owner)[name] if own else None
    setattr(owner, name, replacement)
    try:
        yield
    finally:
        if own:
            setattr(owner, name, original)
        else:
            delattr(owner, name)


@contextmanager
def six_steps_traced(rung: str) -> Iterator[None]:
    """The six operations traced in torch itself, and the rung's own calls around them."""
    to, zero_grad, cross_entropy, backward = (
        torch.Tensor.to,
        torch.optim.Optimizer.zero_grad,
        F.cross_entropy,
        torch.Tensor.backward,
    )

    def traced_to(tensor, *args, **kwargs):
        if id(tensor) in TRACE.batch_tensors:
            TRACE.batch_tensors.remove(id(tensor))
            if not TRACE.batch_tensors:  # the batch's last tensor (y, after x): the whole batch has moved
                step(1)
        return to(tensor, *args, **kwargs)

    def traced_zero_grad(optimizer, *args, **kwargs):
        step(2)
        return zero_grad(optimizer, *args, **kwargs)

    def traced_cross_entropy(*args, **kwargs):
        step(4)
        return cross_entropy(*args, **kwargs)

    def traced_backward(tensor, *args, **kwargs):
        step(5)
        return backward(tensor, *args, **kwargs)

    with ExitStack() as stack:
        stack.enter_context(patched(torch.Tensor, "to", traced_to))
        stack.enter_context(patched(torch.optim.Optimizer, "zero_grad", traced_zero_grad))
        stack.enter_context(patched(F, "cross_entropy", traced_cross_entropy))
        stack.enter_context(patched(torch.Tensor, "backward", traced_backward))
        # optimizer.step(): entered, then (after the closure, for the Trainer) the update itself
        pre = register_optimizer_step_pre_hook(lambda optimizer, *_: start_of_step(optimizer))
        post = register_optimizer_step_post_hook(lambda *_: end_of_step())
        forward = register_module_forward_pre_hook(traced_forward)
        for hook in (pre, post, forward):
            stack.callback(hook.remove)
        stack.enter_context(patched(DataLoader, "__iter__", traced_iter(DataLoader.__iter__)))
        for owner, name, label in CALLS[rung]:
            stack.enter_context(patched(owner, name, wrapped(getattr(owner, name), label)))
        # --trainer.gradient_clip_val: torch's clipping, called by Lightning, by Fabric and by the manual loop
        for name in ("clip_grad_norm_", "clip_grad_value_"):
            clip = wrapped(getattr(torch.nn.utils, name), f"{name}: clip the gradients")
            stack.enter_context(patched(torch.nn.utils, name, clip))
        yield


def start_of_step(optimizer: torch.optim.Optimizer) -> None:
    """torch's optimizer.step() begins: what runs before the update (the Trainer's closure) is nested in it."""
    TRACE.add(f"{type(optimizer).__name__}.step")
    TRACE.depth += 1


def end_of_step() -> None:
    step(6)
    TRACE.depth -= 1
    if TRACE.batch is not None:
        TRACE.trained.add(TRACE.batch[0])


def trace(rung: str, args: list[str], batches: int = 1) -> list[tuple[int, int, str]]:
    """Train ``rung`` for one epoch on ``args``, traced; the events of its first ``batches`` batches."""
    global TRACE
    TRACE = Trace()
    quiet = ["--logger", "none", "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    with tempfile.TemporaryDirectory() as run_root, six_steps_traced(rung), redirect_stdout(io.StringIO()):
        args = [*args, *quiet, "--trainer.max_epochs", "1", "--run_root", run_root]
        ENTRIES[rung]([*args, "--test", "false"])  # its own prints left out: the trace alone on stdout
    return TRACE.batches(batches)


def format_trace(rung: str, events: list[tuple[int, int, str]]) -> str:
    lines, batch = [], None
    for index, depth, label in events:
        if index != batch:
            lines.append(f"{rung}, batch {index}:")
            batch = index
        lines.append("    " * (depth + 1) + label)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(__doc__)
    parser.add_argument("--batches", type=PositiveInt, default=1, help="how many batches of each rung to print")
    parser.add_argument("--rungs", nargs="+", choices=list(ENTRIES), default=list(ENTRIES), help="the rungs to trace")
    own, rest = parser.parse_known_args(argv)
    for rung in own.rungs:
        print(format_trace(rung, trace(rung, rest, own.batches)))
    return 0


if __name__ == "__main__":
    with one_line_errors():
        sys.exit(main(sys.argv[1:]))
