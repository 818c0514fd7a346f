"""ladder/trace_steps.py's trace: each of the six operations once per batch, in the order docs/six_steps.md shows."""

import re
from pathlib import Path

import pytest

from ladder import trace_steps

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "six_steps.md").read_text()


def documented_trace() -> str:
    """The trace that docs/six_steps.md prints, under its heading "The order, traced"."""
    text = (ROOT / "docs" / "six_steps.md").read_text()
    return re.search(r"## The order, traced.*?```text\n(.*?)\n```", text, re.DOTALL).group(1)


def documented_orders(trace: str) -> dict[str, list[int]]:
    """Each rung's six operations, by number, in the order the trace shows them."""
    orders: dict[str, list[int]] = {}
    for line in trace.splitlines():
        if not line.startswith(" "):  # "trainer, batch 0:"
            rung = line.split(",")[0]
            orders[rung] = []
        elif re.match(r"\s+\d\. ", line):
            orders[rung].append(int(line.split(".")[0]))
    return orders


def step_numbers(events: list[tuple[int, int, str]], batch: int) -> list[int]:
    return [int(label[0]) for index, _, label in events if index == batch and re.match(r"\d\. ", label)]


def test_every_rung_takes_each_of_the_six_steps_once_per_batch_in_the_documented_order(quick_args):
    args = [*quick_args, "--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "1"]
    documented = documented_trace()
    orders = documented_orders(documented)
    assert list(orders) == list(trace_steps.ENTRIES)
    fresh = []
    for rung, order in orders.items():
        assert sorted(order) == [1, 2, 3, 4, 5, 6], f"the docs show {rung} taking the six steps as {order}"
        events = trace_steps.trace(rung, args, batches=3)
        batches = sorted({index for index, _, _ in events})
        assert len(batches) >= 2, events
        for batch in batches:
            assert step_numbers(events, batch) == order, f"{rung}, batch {batch}"
        fresh.append(trace_steps.format_trace(rung, [event for event in events if event[0] == 0]))
    assert "\n".join(fresh) == documented, "docs/six_steps.md shows another trace: paste `python -m ladder.trace_steps`"


def clipped_and_stepped(events: list[tuple[int, int, str]]) -> dict[int, tuple[bool, bool, bool]]:
    """Per batch: whether it cleared the gradients, clipped them, and updated the weights."""
    labels = {}
    for index, _, label in events:
        labels.setdefault(index, []).append(label)
    clipped = {index: any("clip the gradients" in label for label in found) for index, found in labels.items()}
    return {
        index: ("2. optimizer.zero_grad()" in found, clipped[index], "6. update the weights" in found)
        for index, found in labels.items()
    }


@pytest.mark.slow
def test_accumulation_and_clipping_fall_on_the_same_batches_on_every_rung(quick_args):
    options = ["--trainer.accumulate_grad_batches", "2", "--trainer.gradient_clip_val", "1"]
    args = [*quick_args, *options]
    traces = {rung: clipped_and_stepped(trace_steps.trace(rung, args, 4)) for rung in trace_steps.ENTRIES}
    # batch 0 opens a group (zero_grad), batch 1 closes it (clip, then step)
    expected = {0: (True, False, False), 1: (False, True, True), 2: (True, False, False), 3: (False, True, True)}
    assert traces == {rung: expected for rung in trace_steps.ENTRIES}
    documented = re.search(
        r"ladder.trace_steps --trainer.accumulate_grad_batches 2.*?```text\n(.*?)\n```", DOC, re.DOTALL
    )
    fresh = [trace_steps.format_trace(rung, trace_steps.trace(rung, args, 2)) for rung in ["manual", "trainer"]]
    assert documented and documented.group(1) == "\n".join(fresh)
