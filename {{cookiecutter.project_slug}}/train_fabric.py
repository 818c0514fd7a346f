"""Train the network with your own loop and Lightning Fabric: train_manual.py, with Fabric taking its devices.

    python train_fabric.py --model.lr 0.003  # and --trainer.devices 2 --trainer.strategy ddp: Fabric starts 2 processes

Its options: configs/default.yaml, and any option of train.py (docs/distributed.md for several processes).
train_epoch() holds the six steps of every iteration, one line each, and the trainer options that touch
them; main() sets up, runs the epochs and tests. docs/six_steps.md shows where the Trainer takes each
step, docs/trainer_options.md what becomes of each --trainer option on this rung.
"""

from collections.abc import Sequence

import lightning as L
from lightning.pytorch.loggers import Logger
from tqdm import tqdm

from {{ cookiecutter.package_name }}.cli import ProjectCLI
from {{ cookiecutter.package_name }}.distributed import fabric_arguments, leave_process_group
from {{ cookiecutter.package_name }}.errors import one_line_errors
from {{ cookiecutter.package_name }}.evaluation import evaluate, test_best
from {{ cookiecutter.package_name }}.loop_checkpoint import LoopCheckpoint, Progress, read_loop_checkpoint
from {{ cookiecutter.package_name }}.preemption import StopSignal
from {{ cookiecutter.package_name }}.recipe import Metrics, build_optimizer, loss_fn
from {{ cookiecutter.package_name }}.runs import RunResult, close_loggers, log_epoch, start_run
from {{ cookiecutter.package_name }}.trainer_options import LoopOptions

RUNG = "fabric"  # names its run directories, runs/<date>_<time>-fabric


def train_epoch(model, loader, optimizer, fabric, options: LoopOptions, progress: Progress, metrics, checkpoint):
    """One epoch: the six steps for every batch, and the trainer options that touch them."""
    model.train()
    for batch, (x, y) in enumerate(loader, start=progress.batch):
        if batch == options.train_batches or options.done(progress.steps):
            break  # --trainer.limit_train_batches, --trainer.max_steps
        steps = options.steps_after(batch)  # --trainer.accumulate_grad_batches: gradients add up until then
        x, y = fabric.to_device((x, y))  # 1. move the batch to the device
        if options.starts_group(batch):
            optimizer.zero_grad()  # 2. clear the last step's gradients
        with fabric.no_backward_sync(model, enabled=not steps):  # DDP averages them only before a step
            with fabric.autocast():  # --trainer.precision
                logits = model(x)  # 3. forward: (B, C, H, W) -> (B, num_classes)
                loss = loss_fn(logits, y)  # 4. loss
            fabric.backward(loss / options.accumulate)  # 5. backward: add this batch's share to every .grad
        if steps:
            if options.clip_val:  # --trainer.gradient_clip_val, between backward and step as in the Trainer
                fabric.clip_gradients(model, optimizer, **options.clip_arguments())
            optimizer.step()  # 6. update the weights
            progress.steps += 1
        metrics.update(loss, logits, y)
        progress.batch = batch + 1
        checkpoint.after_batch(loss, progress, steps)  # the NaN check; last.pt every --save_every_n_steps


def main(args: list[str] | None = None, loggers: Sequence[Logger] = ()) -> RunResult:
    """Train on ``args`` (sys.argv when None); ``loggers`` get what the run logs, beside the --logger one."""
    cli = ProjectCLI(args)
    net, data, hp, config = cli.model.net, cli.datamodule, cli.model.hparams, cli.config  # the Trainer's very network
    options = LoopOptions.from_trainer(config.trainer, RUNG)  # the options it mirrors; a refused one stops here
    resume = read_loop_checkpoint(config, RUNG)  # --ckpt_path: a missing or unsafe file stops here
    fabric = L.Fabric(**fabric_arguments(config.trainer, config.dist_timeout))  # torchrun's processes, or its own
    fabric.launch()
    device, writer = fabric.device, fabric.is_global_zero  # only rank 0 writes files
    train_loader, val_loader = data.fit_loaders(fabric.rank_zero_first(local=True))  # one download per machine
    options = options.for_loaders(len(train_loader), len(val_loader))
    optimizer, scheduler = build_optimizer(net.parameters(), hp.lr, hp.weight_decay, hp.scheduler, options.max_epochs)
    run_dir, loggers = start_run(cli, RUNG, loggers)  # the run directory and loggers; re-seeds under DDP
    train_metrics = Metrics(data.num_classes, persistent=True).to(device)  # saved: a resume mid-epoch goes on
    val_metrics = Metrics(data.num_classes).to(device)
    model, optimizer = fabric.setup(net, optimizer)  # to the device, wrapped for DDP and precision
    stop = StopSignal(device).install()  # SIGTERM, or SLURM's SIGUSR1: save and stop after the batch under way
    checkpoint = LoopCheckpoint(
        run_dir, net, optimizer, scheduler, train_metrics, config.save_every_n_steps, writer, stop
    )
    progress = checkpoint.resume(resume)  # where the saved run stopped: this epoch, after this many batches
    try:
        for epoch in range(progress.epoch, options.max_epochs):
            train_loader.sampler.set_epoch(epoch, start=progress.batch * data.hparams.batch_size)  # the Trainer's order
            bar = tqdm(train_loader, desc=f"epoch {epoch}", leave=False, disable=not options.progress_bar or not writer)
            train_epoch(model, bar, optimizer, fabric, options, progress, train_metrics, checkpoint)
            val = None
            if options.validates(epoch, progress.batch):  # --trainer.check_val_every_n_epoch, limit_val_batches
                val = evaluate(net, val_loader, device, val_metrics, options.autocast, options.val_batches)
            if scheduler is not None:
                scheduler.step()  # once per epoch, after validation, as Lightning does for interval="epoch"
            log_epoch(loggers, epoch, progress.steps, train_metrics, val)
            checkpoint.end_epoch(progress, val)  # last.pt, and best.pt when val/acc improved
            if options.done(progress.steps):
                break  # --trainer.max_steps
        fabric.barrier()  # rank 0 has written best.pt
        test = test_best(net, data, device, options, checkpoint, loggers, progress) if config.test else None
    finally:
        close_loggers(loggers)  # also when an error (or a sweep's pruner) stops the run: the logs are flushed
        stop.restore()  # SIGTERM and SIGUSR1 do again what they did before the run
    fabric.print(f"outputs: {run_dir}")
    return RunResult(net, data, run_dir, test)


if __name__ == "__main__":
    with one_line_errors():
        main()
        leave_process_group()  # under DDP: every rank leaves together
