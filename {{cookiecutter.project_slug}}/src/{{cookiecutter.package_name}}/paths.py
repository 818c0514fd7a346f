"""The two ways to train, as functions: ``train.py``, ``train_manual.py`` and ``compare.py`` call them."""

import torch
import torch.distributed as dist
from lightning.pytorch.loggers import Logger
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .checkpoints import CheckpointError, load_weights, read_checkpoint, resolve
from .cli import ConfigError, ProjectCLI
from .distributed import barrier, from_rank_zero, init_from_env, local_rank, rank
from .loop import Run, evaluate, fit
from .recipe import Metrics, build_optimizer
from .runs import close_logger


def run_lightning(cli: ProjectCLI, test: bool = True, extra_loggers: tuple[Logger, ...] = ()) -> dict:
    """Trainer.fit, then Trainer.test on the best checkpoint. Returns the network and the test metrics."""
    trainer = cli.trainer
    trainer.loggers = [*trainer.loggers, *extra_loggers]
    ckpt_path = cli.config.ckpt_path and resolve(cli.config.ckpt_path, cli.config.run_root, "lightning")
    trusted = cli.config.trust_checkpoint
    if ckpt_path:
        read_checkpoint(ckpt_path, trusted)  # a missing, corrupt or unsafe file fails here, in one line
    trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path, weights_only=not trusted)
    results = {"net": cli.model.net, "run_dir": cli.run_dir, "test": None}
    if test:
        best = cli.best_checkpoint.best_model_path or None  # none under fast_dev_run
        metrics = trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=best, verbose=False)[0]
        results["test"] = {"loss": metrics["test/loss"], "acc": metrics["test/acc"]}
    close_logger(cli.logger)
    return results


def run_manual(cli: ProjectCLI, test: bool = True, extra_loggers: tuple[Logger, ...] = ()) -> dict:
    """The hand-written loop on the same network, data and recipe. Returns what ``run_lightning`` does.

    Under ``torchrun --nproc_per_node N`` it trains on N processes with DistributedDataParallel: each
    rank reads its shard of every epoch, gradients are averaged, and only rank 0 logs and checkpoints.
    """
    net: nn.Module = cli.model.net  # the plain nn.Module (compiled in place with --model.compile true)
    data, hp = cli.datamodule, cli.model.hparams
    epochs = cli.config.trainer.max_epochs
    if not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"the manual loop needs a number of epochs: --trainer.max_epochs 1 or more, not {epochs}")
    dtype = autocast_dtype(cli.config.trainer.precision)
    device = init_from_env(cli.config.dist_timeout)  # under torchrun: join the process group; the samplers then shard
    run_dir = from_rank_zero(cli.run_dir)
    start = None  # a missing or corrupt checkpoint fails here, before anything is written
    if cli.config.ckpt_path:
        path = resolve(cli.config.ckpt_path, cli.config.run_root, "manual")
        start = read_checkpoint(path, cli.config.trust_checkpoint)
        if "optimizer" not in start:
            raise CheckpointError(f"{cli.config.ckpt_path} is not a manual-loop checkpoint: resume .ckpt with train.py")
    if local_rank() == 0:
        data.prepare_data()  # downloads once per machine, as Lightning does
    barrier()
    data.setup("fit")
    optimizer, scheduler = build_optimizer(net.parameters(), hp.lr, hp.weight_decay, hp.scheduler, epochs)
    if rank() == 0:
        cli.save_run_config()
    loggers = [logger for logger in (cli.logger, *extra_loggers) if logger is not None]  # rank 0's only
    for logger in loggers:
        logger.log_hyperparams(cli.config.as_dict())
    ckpt_dir = run_dir / "checkpoints"
    train_metrics = Metrics(data.num_classes, persistent=True)  # in the checkpoint, for a resume mid-epoch
    run = Run(net, optimizer, scheduler, train_metrics, ckpt_dir, cli.config.save_every_n_steps)
    net.to(device)
    # DDP averages the gradients across ranks in backward; the optimizer still holds net's own parameters.
    model = DistributedDataParallel(net) if dist.is_initialized() else net
    progress_bar = cli.config.trainer.enable_progress_bar is not False and rank() == 0
    fit(run, model, data.train_dataloader(), data.val_dataloader(), epochs, device, loggers, dtype, progress_bar, start)
    results = {"net": net, "run_dir": run_dir, "test": None}
    if test:
        barrier()  # rank 0 has written best.pt
        # Test the best epoch's weights, as Trainer.test(ckpt_path="best") does.
        load_weights(net, ckpt_dir / "best.pt")
        data.setup("test")
        metrics = Metrics(data.num_classes).to(device)
        results["test"] = evaluate(net, data.test_dataloader(), device, metrics, dtype)
        for logger in loggers:
            logger.log_metrics({f"test/{k}": v for k, v in results["test"].items()})
    close_logger(cli.logger)
    return results


def autocast_dtype(precision: str | int | None) -> torch.dtype | None:
    """The autocast dtype of a Trainer precision flag, for the manual loop: None runs in float32."""
    if precision in (None, 32, "32", "32-true"):
        return None
    if precision == "bf16-mixed":
        return torch.bfloat16
    raise ConfigError(
        f"the manual loop runs --trainer.precision 32-true or bf16-mixed, not {precision}: "
        "16-mixed also needs a GradScaler, which this loop leaves out"
    )
