"""Train the network with your own loop and Lightning Fabric: the rung between train_manual.py and train.py.

    python train_fabric.py                                   # the defaults in configs/default.yaml
    python train_fabric.py --model.lr 0.003 --trainer.max_epochs 5
    python train_fabric.py --trainer.devices 2 --trainer.strategy ddp     # Fabric launches 2 processes

The loop is train_manual.py's, line for line: `diff train_manual.py train_fabric.py` shows only what
Fabric takes over (devices, DDP, precision, the batch transfer, backward). It reads the trainer options
accelerator, devices, num_nodes, strategy, precision and max_epochs.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))  # the package, installed or not

import lightning as L
from lightning.fabric.utilities.seed import reset_seed
from tqdm import tqdm

from {{ cookiecutter.package_name }}.checkpoints import (
    find_checkpoint,
    load_weights,
    read_checkpoint,
    save_checkpoint,
    set_rng_state,
)
from {{ cookiecutter.package_name }}.cli import ConfigError, ProjectCLI, one_line_errors
from {{ cookiecutter.package_name }}.distributed import barrier, from_rank_zero, leave_process_group, local_rank, rank
from {{ cookiecutter.package_name }}.loops import autocast_dtype, checkpoint, compute_and_reset, evaluate, prefixed, progress_bar
from {{ cookiecutter.package_name }}.runs import close_loggers, say
from {{ cookiecutter.package_name }}.shared import FiniteLossCheck, Metrics, build_optimizer, loss_fn

RUNG = "fabric"  # names its run directories, runs/<date>_<time>-fabric


def main(args: list[str] | None = None, cli_class=ProjectCLI, test: bool = True) -> dict:
    cli = cli_class(rung=RUNG, args=args)
    net, data, hp = cli.model.net, cli.datamodule, cli.model.hparams  # the very network the Trainer trains
    epochs, save_every = cli.config.trainer.max_epochs, cli.config.save_every_n_steps
    if not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"the manual loop needs a number of epochs: --trainer.max_epochs 1 or more, not {epochs}")
    autocast = autocast_dtype(cli.config.trainer.precision)
    resume = None  # a missing or corrupt checkpoint fails here, before anything is written
    if cli.config.ckpt_path:
        path = find_checkpoint(cli.config.ckpt_path, cli.config.run_root, RUNG)
        resume = read_checkpoint(path, cli.config.trust_checkpoint)
        if "optimizer" not in resume:
            raise ConfigError(
                f"{cli.config.ckpt_path} is not a hand-written loop's checkpoint: resume .ckpt with train.py"
            )

    # Setup: the process group (under torchrun), the data, the optimizer, the run's directory and loggers
    fabric = L.Fabric(**cli.fabric_arguments())  # instead of init_from_env: Fabric joins or starts the processes
    fabric.launch()
    if fabric.world_size > 1:
        reset_seed()  # as init_from_env and the Trainer's DDP do once the group is up (Fabric's DDP does not)
    device = fabric.device
    if local_rank() == 0:
        data.prepare_data()  # downloads once per machine, as Lightning does
    barrier()
    data.setup("fit")
    train_loader, val_loader = data.train_dataloader(), data.val_dataloader()
    sampler = train_loader.sampler  # the DataModule's epoch-seeded sampler: a shard of its own per rank
    optimizer, scheduler = build_optimizer(net.parameters(), hp.lr, hp.weight_decay, hp.scheduler, epochs)
    train_metrics = Metrics(data.num_classes, persistent=True).to(device)  # saved: a resume mid-epoch goes on
    val_metrics = Metrics(data.num_classes).to(device)
    loss_check = FiniteLossCheck()
    run_dir, loggers = cli.start_run() if rank() == 0 else (None, [])  # only rank 0 writes
    run_dir = from_rank_zero(run_dir)
    for lg in loggers:
        lg.log_hyperparams(cli.config.as_dict())
    ckpt_dir = run_dir / "checkpoints"
    # Fabric moves the network to the device and wraps it (DDP, precision); the optimizer for the wrapper.
    model, optimizer = fabric.setup(net, optimizer)

    first_epoch, first_batch, step, best_acc = 0, 0, 0, -1.0  # best.pt starts afresh, as ModelCheckpoint's
    if resume is not None:  # where the saved run stopped: this epoch, after this many batches
        net.load_state_dict(resume["net"])
        optimizer.load_state_dict(resume["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(resume["scheduler"])
        train_metrics.load_state_dict(resume["train_metrics"])
        first_epoch, first_batch, step = resume["next_epoch"], resume["next_batch"], resume["steps"]
        set_rng_state(resume["rng_state"])  # last: nothing may draw between this and the next step

    for epoch in range(first_epoch, epochs):
        # This epoch's shuffle is seeded with seed + epoch, the order the Trainer sees too; a run resumed
        # mid-epoch skips the batches it has trained on.
        sampler.set_epoch(epoch, start=first_batch * data.hparams.batch_size)
        model.train()
        bar = tqdm(train_loader, desc=f"epoch {epoch}", leave=False, disable=not progress_bar(cli))
        for batch, (x, y) in enumerate(bar, start=first_batch):
            x, y = fabric.to_device((x, y))  # 1. move the batch to the device, instead of .to(device)
            optimizer.zero_grad()  # 2. clear the last step's gradients
            with fabric.autocast():  # --trainer.precision, instead of torch.autocast
                logits = model(x)  # 3. forward: (B, C, H, W) -> (B, num_classes)
                loss = loss_fn(logits, y)  # 4. loss
            fabric.backward(loss)  # 5. backward, instead of loss.backward()
            optimizer.step()  # 6. update the weights

            train_metrics.update(loss, logits, y)
            step += 1
            loss_check.check(loss, step)  # a NaN or inf loss stops the run (read a step late: no GPU wait)
            if save_every and step % save_every == 0:  # a checkpoint mid-epoch, to resume from after a crash
                loss_check.flush()  # never save weights that a NaN loss has spoiled
                if rank() == 0:
                    state = checkpoint(net, optimizer, scheduler, train_metrics, epoch, batch + 1, step)
                    save_checkpoint(state, ckpt_dir / "last.pt")
        loss_check.flush()
        first_batch = 0

        train = compute_and_reset(train_metrics)
        val = evaluate(net, val_loader, device, val_metrics, autocast)  # synced across ranks by torchmetrics
        if scheduler is not None:
            scheduler.step()  # once per epoch, after validation, as Lightning does for interval="epoch"
        row = {"epoch": epoch, **prefixed("train", train), **prefixed("val", val)}
        for lg in loggers:  # at the step of the epoch's last batch, counted from 0, as the Trainer logs them
            lg.log_metrics(row, step=step - 1)
        say(f"epoch {epoch}: " + "  ".join(f"{k} {v:.4f}" for k, v in row.items() if "/" in k))
        if rank() == 0:  # everything the next epoch needs; best.pt when val/acc improved, strictly
            state = checkpoint(net, optimizer, scheduler, train_metrics, epoch + 1, 0, step) | {"val_acc": val["acc"]}
            save_checkpoint(state, ckpt_dir / "last.pt")
            if val["acc"] > best_acc:
                save_checkpoint(state, ckpt_dir / "best.pt")
        best_acc = max(best_acc, val["acc"])

    results = {"net": net, "datamodule": data, "run_dir": run_dir, "test": None}
    if test:
        barrier()  # rank 0 has written best.pt
        load_weights(net, ckpt_dir / "best.pt")  # the best epoch's weights, as Trainer.test(ckpt_path="best")
        data.setup("test")
        metrics = Metrics(data.num_classes).to(device)
        results["test"] = evaluate(net, data.test_dataloader(), device, metrics, autocast)
        for lg in loggers:
            lg.log_metrics({"epoch": epochs, **prefixed("test", results["test"])}, step=step)  # as Trainer.test
        say(f"test accuracy: {results['test']['acc']:.4f}")
    close_loggers(loggers)
    say(f"outputs: {run_dir}")
    return results


if __name__ == "__main__":
    with one_line_errors():
        main()
        leave_process_group()  # under DDP: every rank leaves together
