"""Where each rung performs the six steps: real training steps, with the calls that matter traced.

    python trace_steps.py                    # the first batch of every rung: manual, Fabric, the Trainer
    python trace_steps.py --batches 3        # more batches of each
    python trace_steps.py --rungs trainer    # one rung
    python trace_steps.py --data.batch_size 8   # any option train.py takes

The six operations are caught where torch performs them, whoever asks for them: the batch's
``Tensor.to`` (1), ``Optimizer.zero_grad`` (2), the network's forward (3), ``F.cross_entropy`` (4),
``Tensor.backward`` (5) and the optimizer's update (6, when ``step`` returns). Around them the trace shows,
indented, the calls that led there: the LightningModule's hooks for the Trainer, Fabric's methods and
wrappers for Fabric. docs/six_steps.md shows this trace, and tests/test_trace.py checks it against a new one.
"""

import argparse
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
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook
from torch.utils.data import DataLoader

import train
import train_fabric
import train_manual
from {{ cookiecutter.package_name }}.cli import ConfigError, ProjectCLI, one_line_errors
from {{ cookiecutter.package_name }}.data import DataModule
from {{ cookiecutter.package_name }}.module import Classifier

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
    "trainer": [(Classifier, name, f"LightningModule.{name}") for name in LIGHTNING_HOOKS],
}
ENTRIES = {"manual": train_manual.main, "fabric": train_fabric.main, "trainer": train.main}


class Trace:
    """What happened during each traced batch, as (batch, depth, label), in order."""

    def __init__(self) -> None:
        self.events: list[tuple[int, int, str]] = []
        self.batch: int | None = None  # None outside the training batches: validation is not traced
        self.depth = 0
        self.batch_tensors: set[int] = set()

    def add(self, label: str) -> None:
        if self.batch is not None:
            self.events.append((self.batch, self.depth, label))

    @contextmanager
    def nested(self, label: str) -> Iterator[None]:
        self.add(label)
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1


TRACE = Trace()


class TracedLoader(DataLoader):
    """The training loader opens a new batch in the trace as it hands each one out; any other loader ends the
    trace (validation is not traced: the Trainer never asks the training loader for more after its last batch)."""

    training = False

    def __iter__(self) -> Iterator:
        TRACE.batch = None
        for index, batch in enumerate(super().__iter__()):
            if self.training:
                TRACE.batch, TRACE.depth, TRACE.batch_tensors = index, 0, {id(tensor) for tensor in batch}
            yield batch
        TRACE.batch = None


class TracedDataModule(DataModule):
    loader_class = TracedLoader

    def train_dataloader(self) -> TracedLoader:
        loader = super().train_dataloader()
        loader.training = True
        return loader


class TracedCLI(ProjectCLI):
    """The project's CLI with the traced DataModule; the network's forward is traced from the moment it exists."""

    def __init__(self, **kwargs) -> None:
        super().__init__(datamodule_class=TracedDataModule, **kwargs)
        self.model.net.register_forward_pre_hook(lambda module, args: step(3) if module.training else None)


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
        stack.callback(pre.remove)
        stack.callback(post.remove)
        for owner, name, label in CALLS[rung]:
            stack.enter_context(patched(owner, name, wrapped(getattr(owner, name), label)))
        # --trainer.gradient_clip_val: torch's clipping, called by Lightning, by Fabric and by the manual loop
        for owner in (torch.nn.utils, train_manual):
            for name in ("clip_grad_norm_", "clip_grad_value_"):
                stack.enter_context(patched(owner, name, wrapped(getattr(owner, name), f"{name}: clip the gradients")))
        yield


def start_of_step(optimizer: torch.optim.Optimizer) -> None:
    """torch's optimizer.step() begins: what runs before the update (the Trainer's closure) is nested in it."""
    TRACE.add(f"{type(optimizer).__name__}.step")
    TRACE.depth += 1


def end_of_step() -> None:
    step(6)
    TRACE.depth -= 1


def trace(rung: str, args: list[str], batches: int = 1) -> list[tuple[int, int, str]]:
    """Train ``rung`` for one epoch on ``args``, traced; the events of its first ``batches`` batches."""
    global TRACE
    TRACE = Trace()
    quiet = ["--logger", "none", "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    with tempfile.TemporaryDirectory() as run_root, six_steps_traced(rung), redirect_stdout(io.StringIO()):
        args = [*args, *quiet, "--trainer.max_epochs", "1", "--run_root", run_root]
        ENTRIES[rung](args, cli_class=TracedCLI, test=False)  # its own prints left out: the trace alone on stdout
    return [event for event in TRACE.events if event[0] < batches]


def format_trace(rung: str, events: list[tuple[int, int, str]]) -> str:
    lines, batch = [], None
    for index, depth, label in events:
        if index != batch:
            lines.append(f"{rung}, batch {index}:")
            batch = index
        lines.append("    " * (depth + 1) + label)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, exit_on_error=False
    )
    parser.add_argument("--batches", type=PositiveInt, default=1, help="how many batches of each rung to print")
    parser.add_argument("--rungs", nargs="+", choices=list(ENTRIES), default=list(ENTRIES), help="the rungs to trace")
    try:
        own, rest = parser.parse_known_args(argv)
    except argparse.ArgumentError as error:
        raise ConfigError(str(error)) from None
    for rung in own.rungs:
        print(format_trace(rung, trace(rung, rest, own.batches)))
    return 0


if __name__ == "__main__":
    argv, sys.argv = sys.argv[1:], sys.argv[:1]  # the rungs get their options from main, not from sys.argv
    with one_line_errors():
        sys.exit(main(argv))
