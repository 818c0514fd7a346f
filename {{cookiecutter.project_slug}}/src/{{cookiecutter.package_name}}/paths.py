"""The two ways to train, as functions: ``train.py``, ``train_manual.py`` and ``compare.py`` call them."""

import torch
from lightning.pytorch.loggers import Logger
from torch import nn

from .checkpoints import CheckpointError, load_weights, read_checkpoint, resolve
from .cli import ProjectCLI
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
    """The hand-written loop on the same network, data and recipe. Returns what ``run_lightning`` does."""
    net: nn.Module = cli.model.net  # the plain nn.Module; the LightningModule around it stays unused
    data, hp = cli.datamodule, cli.model.hparams
    epochs = cli.config.trainer.max_epochs
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    data.prepare_data()
    data.setup("fit")
    optimizer, scheduler = build_optimizer(net.parameters(), hp.lr, hp.weight_decay, hp.scheduler, epochs)
    cli.save_run_config()
    loggers = [logger for logger in (cli.logger, *extra_loggers) if logger is not None]
    for logger in loggers:
        logger.log_hyperparams(cli.config.as_dict())
    ckpt_dir = cli.run_dir / "checkpoints"
    train_metrics = Metrics(data.num_classes, persistent=True)  # in the checkpoint, for a resume mid-epoch
    run = Run(net, optimizer, scheduler, train_metrics, ckpt_dir, cli.config.save_every_n_steps)
    start = None
    if cli.config.ckpt_path:
        path = resolve(cli.config.ckpt_path, cli.config.run_root, "manual")
        start = read_checkpoint(path, cli.config.trust_checkpoint)
        if "optimizer" not in start:
            raise CheckpointError(f"{cli.config.ckpt_path} is not a manual-loop checkpoint: resume .ckpt with train.py")
    progress_bar = cli.config.trainer.enable_progress_bar is not False
    fit(run, data.train_dataloader(), data.val_dataloader(), epochs, device, loggers, progress_bar, start)
    results = {"net": net, "run_dir": cli.run_dir, "test": None}
    if test:
        # Test the best epoch's weights, as Trainer.test(ckpt_path="best") does.
        load_weights(net, ckpt_dir / "best.pt")
        data.setup("test")
        results["test"] = evaluate(net, data.test_dataloader(), device, Metrics(data.num_classes).to(device))
        for logger in loggers:
            logger.log_metrics({f"test/{k}": v for k, v in results["test"].items()})
    close_logger(cli.logger)
    return results
