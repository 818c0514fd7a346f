"""Train with Lightning's Trainer, then test the best checkpoint.

    python train.py                                   # the defaults in configs/default.yaml
    python train.py --model.lr 0.003 --trainer.max_epochs 5 --data.batch_size 128
    python train.py --config my.yaml                  # a config of your own
    python train.py --help                            # every option

The CLI builds the LightningModule (module.py), the DataModule (data.py) and the Trainer; the Trainer
runs the loop that train_manual.py writes out by hand.
"""

from collections.abc import Sequence

from lightning.pytorch.loggers import Logger

from {{ cookiecutter.package_name }}.checkpoints import read_checkpoint
from {{ cookiecutter.package_name }}.distributed import leave_process_group
from {{ cookiecutter.package_name }}.errors import one_line_errors
from {{ cookiecutter.package_name }}.runs import RunResult, close_loggers, say
from {{ cookiecutter.package_name }}.trainer import TrainerCLI


def main(args: list[str] | None = None, loggers: Sequence[Logger] = ()) -> RunResult:
    """Train on ``args`` (sys.argv when None); ``loggers`` get what the run logs, beside the --logger one."""
    cli = TrainerCLI(args, loggers)
    trainer = cli.trainer
    trusted, ckpt_path = cli.config.trust_checkpoint, cli.ckpt_path  # --ckpt_path, found ("last") by the CLI
    if ckpt_path is not None:  # a missing, corrupt or unsafe file fails here, in one line
        read_checkpoint(ckpt_path, trusted)
    results = RunResult(cli.model.net, cli.datamodule, cli.run_dir)
    try:
        trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path, weights_only=not trusted)
        if cli.config.test:
            best = cli.best_checkpoint.best_model_path or None  # none under fast_dev_run
            metrics = trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=best, verbose=False)[0]
            results.test = {"loss": metrics["test/loss"], "acc": metrics["test/acc"]}
            say(f"test accuracy: {results.test['acc']:.4f}")
    finally:
        close_loggers(cli.loggers)  # also when a stop signal or an error ends the run: the logs are flushed
    say(f"outputs: {cli.run_dir}")
    return results


if __name__ == "__main__":
    with one_line_errors():
        main()
        leave_process_group()  # under DDP: every rank leaves together
