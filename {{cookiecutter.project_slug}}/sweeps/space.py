"""A sweep's search space: read from YAML, checked against the project's parser, suggested by a trial.

The space speaks the command line's own option names (``model.lr``), so every value a trial can draw is
parsed, domains included, before any trial runs.
"""

import argparse
import json
from pathlib import Path

import yaml
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import Trial

from {{ cookiecutter.package_name }}.cli import ProjectCLI
from {{ cookiecutter.package_name }}.errors import ConfigError

DISTRIBUTIONS = {"float": FloatDistribution, "int": IntDistribution, "categorical": CategoricalDistribution}


def load_space(path: Path) -> dict[str, BaseDistribution]:
    """The search space of a YAML file: each option's type (float, int or categorical) and Optuna's arguments."""
    try:
        spec = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"--sweep {path}: {error}") from None
    if not isinstance(spec, dict) or not spec:
        raise ConfigError(f"--sweep {path}: " + "expected lines like `model.lr: {type: float, low: 1.0e-4, high: 0.1}`")
    space = {}
    for option, entry in spec.items():
        kind = entry.get("type") if isinstance(entry, dict) else None
        if kind not in DISTRIBUTIONS:
            raise ConfigError(f"--sweep {path}: {option}: needs type: float, int or categorical")
        arguments = {key: value for key, value in entry.items() if key != "type"}
        if kind == "float":  # YAML reads 1e-4 (no dot) as a string
            arguments = {
                key: float(value) if key in ("low", "high", "step") else value for key, value in arguments.items()
            }
        try:
            space[option] = DISTRIBUTIONS[kind](**arguments)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"--sweep {path}: {option}: {error}") from None
    return space


def check_space(space: dict[str, BaseDistribution], args: list[str]) -> ProjectCLI:
    """Parse every trial's common options once, then each end of each range and each choice, as a flag."""
    cli = ProjectCLI(args=args)
    if cli.config.trainer.devices not in (1, "1"):
        raise ConfigError("a sweep runs each trial in one process: for more devices, start more workers")
    cli.parser.exit_on_error = False  # a refused value raises here, and is reported with the option's name
    for option, distribution in space.items():
        for value in candidates(distribution):
            try:
                cli.parser.parse_args([*args, f"--{option}={flag_value(value)}"])  # the network's domains too
            except (argparse.ArgumentError, ConfigError) as error:
                raise ConfigError(f"--sweep: {option}: {value!r} is refused: {' '.join(str(error).split())}") from None
    return cli


def candidates(distribution: BaseDistribution) -> list:
    if isinstance(distribution, CategoricalDistribution):
        return list(distribution.choices)
    return [distribution.low, distribution.high]


def flag_value(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)  # True -> true, None -> null


def suggest(trial: Trial, option: str, distribution: BaseDistribution) -> object:
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(option, distribution.choices)
    kind = trial.suggest_float if isinstance(distribution, FloatDistribution) else trial.suggest_int
    return kind(option, distribution.low, distribution.high, step=distribution.step, log=distribution.log)
