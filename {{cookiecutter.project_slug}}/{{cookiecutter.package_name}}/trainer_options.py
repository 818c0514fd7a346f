"""Every option of Lightning's Trainer, as the hand-written loops (train_manual.py, train_fabric.py) take it.

The loops parse the same ``--trainer.*`` options as train.py. Each option is in one of three classes:

- ``mirrored``: the loops do what the Trainer does, in a few visible lines, and end bit-identical to it;
- ``no effect``: it changes what is shown, logged or saved, or where, but no weight;
- ``refused``: a value other than the Trainer's default stops the loop before anything runs, in one line
  that names the option and the rung.

``OPTIONS`` is the one table; docs/trainer_options.md prints it, and a test holds it against the installed
Trainer's signature, so a new Lightning option fails that test until it is classified here.
"""

import inspect
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import cache
from typing import Any, Literal

import torch
from lightning.pytorch import Trainer

from .errors import RefusedOption

MIRRORED, NO_EFFECT, REFUSED = "mirrored", "no effect", "refused"


@dataclass(frozen=True)
class Option:
    kind: Literal["mirrored", "no effect", "refused"]
    how: str  # what the loops do with it, or why they refuse it
    neutral: tuple = ()  # values, besides the Trainer's default, that ask for nothing a loop lacks (refused only)


OPTIONS: dict[str, Option] = {
    "accelerator": Option(MIRRORED, "Fabric takes it; the manual loop uses the GPU of its LOCAL_RANK, or the CPU"),
    "strategy": Option(MIRRORED, "Fabric takes it; the manual loop runs DDP when torchrun or srun start it"),
    "devices": Option(MIRRORED, "Fabric launches that many processes; for the manual loop torchrun does"),
    "num_nodes": Option(MIRRORED, "Fabric takes it; for the manual loop torchrun or srun do"),
    "precision": Option(
        MIRRORED,
        "32-true as it is, bf16-mixed under torch.autocast; 16-mixed runs as bf16-mixed on a CPU, as Lightning "
        "does. On a GPU Fabric scales the loss for 16-mixed and the manual loop refuses it: it has no GradScaler",
    ),
    "logger": Option(NO_EFFECT, "what is logged, not what is trained; the loops log to it too"),
    "callbacks": Option(REFUSED, "callbacks are hooks into the Trainer's own loop; the loops have none", ([],)),
    "fast_dev_run": Option(MIRRORED, "N (or 1 for true) batches of train, val and test, and one epoch", (0,)),
    "max_epochs": Option(MIRRORED, "the epochs loop: `for epoch in range(progress.epoch, options.max_epochs)`"),
    "min_epochs": Option(NO_EFFECT, "it only holds back an early stop, and the loops never stop early"),
    "max_steps": Option(
        MIRRORED, "stops after N optimizer steps, mid-epoch if need be, without that epoch's validation"
    ),
    "min_steps": Option(NO_EFFECT, "it only holds back an early stop, and the loops never stop early"),
    "max_time": Option(REFUSED, "a stop by the clock falls on a different step in every run: nothing to match"),
    "limit_train_batches": Option(MIRRORED, "an int: that many batches per epoch; a float: that share, rounded down"),
    "limit_val_batches": Option(MIRRORED, "an int: that many validation batches; a float: that share"),
    "limit_test_batches": Option(MIRRORED, "an int: that many test batches; a float: that share"),
    "limit_predict_batches": Option(NO_EFFECT, "the loops do not predict"),
    "overfit_batches": Option(REFUSED, "the Trainer trains on the first batches, unshuffled; use train.py", (0,)),
    "val_check_interval": Option(
        REFUSED, "validation inside an epoch is the Trainer's; the loops validate at epoch ends", (1.0,)
    ),
    "check_val_every_n_epoch": Option(MIRRORED, "validates after epoch e only when (e + 1) % N == 0"),
    "num_sanity_val_steps": Option(
        NO_EFFECT, "a few validation batches before training, in eval mode: no gradient, no random draw"
    ),
    "log_every_n_steps": Option(NO_EFFECT, "the loops log once per epoch, as the LightningModule does"),
    "enable_checkpointing": Option(NO_EFFECT, "what is saved, not what is trained; the loops always save"),
    "enable_progress_bar": Option(NO_EFFECT, "the loops draw a tqdm bar unless it is false"),
    "enable_model_summary": Option(NO_EFFECT, "a printed table"),
    "accumulate_grad_batches": Option(
        MIRRORED,
        "zero_grad on the first batch of each group of N, the loss divided by N, a step on the group's last "
        "batch or the epoch's last; under DDP only that batch syncs gradients (no_sync, no_backward_sync)",
    ),
    "gradient_clip_val": Option(
        MIRRORED, "clip_grad_norm_ or clip_grad_value_ (fabric.clip_gradients) between backward and step"
    ),
    "gradient_clip_algorithm": Option(MIRRORED, "norm (the default) or value"),
    "deterministic": Option(REFUSED, "a global torch setting the Trainer makes: set it yourself", (False,)),
    "benchmark": Option(REFUSED, "a global cuDNN setting the Trainer makes: set it yourself", (False,)),
    "inference_mode": Option(NO_EFFECT, "evaluation reads the weights under no_grad; it never writes them"),
    "use_distributed_sampler": Option(NO_EFFECT, "the DataModule shards with its own sampler on every rung"),
    "profiler": Option(NO_EFFECT, "it times the Trainer's hooks"),
    "detect_anomaly": Option(REFUSED, "autograd's anomaly mode is the Trainer's switch: set it yourself", ()),
    "barebones": Option(NO_EFFECT, "it turns off the Trainer's extras, none of which touch the weights"),
    "plugins": Option(REFUSED, "plugins change the Trainer's precision, environment or checkpoint I/O", ([],)),
    "sync_batchnorm": Option(REFUSED, "SyncBatchNorm is the Trainer's and Fabric's conversion: set it yourself"),
    "reload_dataloaders_every_n_epochs": Option(
        REFUSED, "the loops build their loaders once; the sampler reshuffles each epoch"
    ),
    "default_root_dir": Option(NO_EFFECT, "where the Trainer writes; the loops write under --run_root"),
    "enable_autolog_hparams": Option(NO_EFFECT, "what is logged"),
    "model_registry": Option(NO_EFFECT, "where a model is uploaded"),
}


@cache
def trainer_defaults() -> dict[str, Any]:
    """The installed Trainer's options and their defaults, read from its signature."""
    parameters = inspect.signature(Trainer.__init__).parameters
    return {name: p.default for name, p in parameters.items() if name != "self"}


def refuse_unmirrored(trainer: Any, rung: str) -> None:
    """Stop, naming the first refused option set to anything but the Trainer's default (or a neutral value)."""
    defaults = trainer_defaults()
    for name, option in OPTIONS.items():
        value = getattr(trainer, name, defaults[name])
        if option.kind == REFUSED and value != defaults[name] and value not in option.neutral:
            raise RefusedOption(
                f"--trainer.{name} {value}: the {rung} loop does not mirror it ({option.how}); "
                "train.py runs it (docs/trainer_options.md)"
            )


def limit_batches(limit: int | float | None, length: int) -> int:
    """Batches a loop takes from a loader of ``length``: an int is a count, a float a share, as Lightning rounds."""
    if limit is None:
        return length
    if limit > 1 and limit % 1 == 0:  # 4.0 is 4 batches, as the Trainer reads it (_determine_batch_limits)
        limit = int(limit)
    if isinstance(limit, int):  # bool is an int too: fast_dev_run=True is 1
        return min(length, int(limit))
    count = int(length * limit)
    if count == 0 and limit > 0:
        raise RefusedOption(f"a limit of {limit} takes 0 of {length} batches: ask for at least {1 / length:.4f}")
    return count


@dataclass(frozen=True)
class LoopOptions:
    """The trainer options that the loops mirror, read once from the config (``from_trainer``)."""

    max_epochs: int
    max_steps: int = -1  # -1: no limit, as the Trainer's default
    accumulate: int = 1  # --trainer.accumulate_grad_batches
    clip_val: float | None = None  # --trainer.gradient_clip_val
    clip_algorithm: str = "norm"  # --trainer.gradient_clip_algorithm
    val_every: int = 1  # --trainer.check_val_every_n_epoch
    autocast: torch.dtype | None = None  # --trainer.precision: None runs in float32
    progress_bar: bool = True
    limits: tuple = (None, None, None)  # --trainer.limit_{train,val,test}_batches, as given
    train_batches: int | None = None  # the limits applied to the loaders (``for_loaders``)
    val_batches: int | None = None

    @classmethod
    def from_trainer(cls, trainer: Any, rung: str) -> "LoopOptions":
        refuse_unmirrored(trainer, rung)
        epochs, limits = trainer.max_epochs, (trainer.limit_train_batches, trainer.limit_val_batches)
        limits += (trainer.limit_test_batches,)
        if trainer.fast_dev_run:  # True is one batch
            epochs, limits = 1, (int(trainer.fast_dev_run),) * 3
        if not isinstance(epochs, int) or epochs < 1:
            raise RefusedOption(f"the {rung} loop needs --trainer.max_epochs 1 or more, not {epochs}")
        if trainer.check_val_every_n_epoch is None:  # then val_check_interval counts batches across epochs
            raise RefusedOption(f"--trainer.check_val_every_n_epoch null: the {rung} loop validates at epoch ends")
        return cls(
            max_epochs=epochs,
            max_steps=trainer.max_steps if trainer.max_steps is not None else -1,
            accumulate=trainer.accumulate_grad_batches,
            clip_val=trainer.gradient_clip_val or None,
            clip_algorithm=trainer.gradient_clip_algorithm or "norm",
            val_every=trainer.check_val_every_n_epoch,
            autocast=autocast_dtype(trainer.precision, rung),
            progress_bar=trainer.enable_progress_bar is not False,
            limits=limits,
        )

    def for_loaders(self, train_length: int, val_length: int) -> "LoopOptions":
        train, val = limit_batches(self.limits[0], train_length), limit_batches(self.limits[1], val_length)
        return replace(self, train_batches=train, val_batches=val)

    @property
    def test_limit(self) -> int | float | None:
        return self.limits[2]

    def steps_after(self, batch: int) -> bool:
        """Whether the optimizer steps after ``batch``: the last of a group of N, or the epoch's last batch."""
        return (batch + 1) % self.accumulate == 0 or batch + 1 == self.train_batches

    def starts_group(self, batch: int) -> bool:
        """Whether ``batch`` opens a group of N, whose gradients start from zero."""
        return batch % self.accumulate == 0

    def validates(self, epoch: int, batches_done: int) -> bool:
        """Validation after an epoch that ran to its end, every N epochs, when there are batches to validate."""
        whole = batches_done == self.train_batches
        return whole and (epoch + 1) % self.val_every == 0 and bool(self.val_batches)

    def done(self, steps: int) -> bool:
        return steps == self.max_steps

    def clip(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """The Trainer's clipping with torch's own functions (looked up at each call, so a wrapper sees them)."""
        clip = torch.nn.utils.clip_grad_value_ if self.clip_algorithm == "value" else torch.nn.utils.clip_grad_norm_
        clip(parameters, self.clip_val)

    def clip_arguments(self) -> dict[str, Any]:
        """``fabric.clip_gradients``' arguments for the Trainer's clipping (which never raises on inf)."""
        if self.clip_algorithm == "value":
            return {"clip_val": self.clip_val}
        return {"max_norm": self.clip_val, "error_if_nonfinite": False}


def autocast_dtype(precision: str | int | None, rung: str = "manual") -> torch.dtype | None:
    """The autocast dtype of a Trainer precision flag: None runs in float32."""
    if precision in (None, 32, "32", "32-true"):
        return None
    if precision == "bf16-mixed" or (precision in ("16-mixed", 16, "16") and not torch.cuda.is_available()):
        return torch.bfloat16  # on a CPU, Lightning runs 16-mixed as bf16-mixed too (with a warning)
    if precision in ("16-mixed", 16, "16") and rung == "fabric":
        return torch.float16  # Fabric scales the loss itself
    raise RefusedOption(
        f"--trainer.precision {precision}: the {rung} loop runs 32-true, bf16-mixed and, on a CPU, 16-mixed; "
        "16-mixed on a GPU also needs a GradScaler, which it leaves out (train_fabric.py and train.py have one)"
    )


def markdown_table() -> str:
    """OPTIONS as the table in docs/trainer_options.md."""
    rows = ["| option | class | what the hand-written loops do |", "|---|---|---|"]
    rows += [f"| `{name}` | {option.kind} | {option.how} |" for name, option in OPTIONS.items()]
    return "\n".join(rows)
