"""P2 of the benchmark: the manual loop's time per step with its DataLoader, and on the same batches in memory.

Run inside a baked project (bench.py does): it takes the project's own options. Both measurements run
the same six steps as train_manual.py (without its checkpoints); only where the batches come from differs. A step's time is an epoch's time
over its batch count, after one warm-up epoch, median over epochs; the two kinds alternate.
"""

import argparse
import json
import statistics
import time

import torch

# bench.py bakes the default project, whose package is digits_classifier.
from digits_classifier.cli import ProjectCLI
from digits_classifier.trainer_options import autocast_dtype
from digits_classifier.recipe import Metrics, build_optimizer, loss_fn


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs of each kind per repeat")
    own, rest = parser.parse_known_args()
    cli = ProjectCLI(args=rest)
    net, data, hp = cli.model.net, cli.datamodule, cli.model.hparams
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    autocast = autocast_dtype(cli.config.trainer.precision)
    data.setup("fit")
    optimizer, _ = build_optimizer(net.parameters(), hp.lr, hp.weight_decay, "none", 1)
    metrics = Metrics(data.num_classes).to(device)
    net.to(device).train()
    loader = data.train_dataloader()

    def ms_per_step(batches) -> float:
        start = time.perf_counter()
        for x, y in batches:  # train_manual.py's six steps
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            optimizer.zero_grad()
            with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
                logits = net(x)
                loss = loss_fn(logits, y)
            loss.backward()
            optimizer.step()
            metrics.update(loss, logits, y)
        metrics.reset()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return 1000 * (time.perf_counter() - start) / len(batches)

    ms_per_step(loader)  # warm-up
    times: dict[str, list[float]] = {"end_to_end": [], "compute": []}
    for epoch in range(own.repeats * own.epochs):
        loader.sampler.set_epoch(epoch)
        in_memory = [(x.to(device), y.to(device)) for x, y in loader]  # this epoch's very batches, on the device
        for kind in ("end_to_end", "compute")[:: 1 if epoch % 2 == 0 else -1]:
            times[kind].append(ms_per_step(loader if kind == "end_to_end" else in_memory))
    figures = {f"{kind}_ms": statistics.median(t) for kind, t in times.items()}
    figures["ratio"] = figures["compute_ms"] / figures["end_to_end_ms"]
    with open(own.json, "w") as f:
        json.dump(figures, f)


if __name__ == "__main__":
    main()
