"""Every `python ...` command of the README works on this bake, as written: run with fast options appended,
or, where a run would cost a process or a server, parsed by the project's own parser in-process."""

import argparse
import re
import shlex
import sys
import types
from importlib import import_module
from pathlib import Path

import pytest

import evaluate
import predict
import train
from {{ cookiecutter.package_name }}.cli import CheckpointCLI, ProjectCLI

from conftest import QUICK
from test_entries import write_images

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
PACKAGE = ProjectCLI.__module__.partition(".")[0]
SHORT = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1"]


def commands() -> list[list[str]]:
    """The README's `python <entry>.py ...` and `python -m <folder>.<tool> ...` lines, split as a shell would,
    comments cut: [entry, *args], the entry a script (train.py) or a module (ladder.compare)."""
    blocks = re.findall(r"```bash\n(.*?)```", README, re.DOTALL)
    lines = [line.split("  #")[0] for block in blocks for line in block.splitlines()]
    words = [shlex.split(line)[1:] for line in lines if re.match(r"python (\w+\.py|-m \w+\.\w+)", line)]
    return [command[1:] if command[0] == "-m" else command for command in words]


class Parsed(Exception):
    """Raised once an argparse entry has parsed its own options: what is left goes to the project's parser."""


def own_options_then_stop(patch: pytest.MonkeyPatch) -> list:
    """Make the next ``parse_known_args`` of argparse record its result and stop the entry there."""
    seen, parse = [], argparse.ArgumentParser.parse_known_args

    def parse_and_stop(self, args=None, namespace=None):
        seen.append(parse(self, args, namespace))
        raise Parsed

    patch.setattr(argparse.ArgumentParser, "parse_known_args", parse_and_stop)
    return seen


@pytest.fixture
def my_net(monkeypatch) -> None:
    """The README's own MyNet, importable as <package>.my_net, as if its file were in the package."""
    code = re.search(r"```python\n(from torch import nn.*?)```", README, re.DOTALL).group(1)
    module = types.ModuleType(f"{PACKAGE}.my_net")
    exec(compile(code, "README.md", "exec"), module.__dict__)
    monkeypatch.setitem(sys.modules, module.__name__, module)


def test_the_readmes_python_example_trains_with_a_logger_of_its_own(quick_args, monkeypatch, capsys):
    code = re.search(r"```python\n(import train_manual.*?)```", README, re.DOTALL).group(1)
    import train_manual

    main = train_manual.main
    monkeypatch.setattr(train_manual, "main", lambda args, loggers: main([*quick_args, *SHORT, *args], loggers))
    example: dict = {}
    exec(compile(code, "README.md", "exec"), example)
    assert len(example["losses"].rows) == 4 and example["result"].run_dir.name == "try-1-manual"  # 3 epochs, the test
    assert "try-1-manual" in capsys.readouterr().out


def test_the_readme_shows_every_entry_and_task():
    entries = {command[0] for command in commands()}
    assert {"train.py", "train_manual.py", "train_fabric.py", "evaluate.py", "predict.py"} <= entries
    assert {"ladder.compare", "ladder.trace_steps", "deploy.export", "deploy.serve", "sweeps.sweep"} <= entries
    assert any("--ckpt_path" in command and "last" in command for command in commands())  # resume


def test_every_python_command_of_the_readme_parses_or_runs(trained_runs, quick_args, data_dir, tmp_path, my_net):
    checkpoint = str(trained_runs["manual"].run_dir / "checkpoints" / "best.pt")
    images = str(write_images(tmp_path / "my_images", data_dir))
    places = {"$CKPT": checkpoint, "my_images/": images, "/path/to/my/images": data_dir}
    checked = 0
    for command in commands():
        entry, args = command[0], [places.get(arg, arg) for arg in command[1:]]
        where = f"python {'' if entry.endswith('.py') else '-m '}{shlex.join(command)}"
        if entry in {"evaluate.py", "predict.py"}:  # in-process, seconds: run it
            output = ["--output", str(tmp_path / "p.csv")] if entry == "predict.py" else []
            assert {"evaluate.py": evaluate, "predict.py": predict}[entry].main([*args, *output]), where
        elif entry.startswith("train") and "my_net" in " ".join(args):  # your own network: trained and loaded again
            result = train.main([*quick_args, *args, *SHORT])
            assert evaluate.main(["--ckpt_path", str(result.run_dir / "checkpoints" / "best.ckpt")]), where
        elif entry.startswith("train"):  # parsed and built by the project's parser: the model, the data, the options
            cli = ProjectCLI([*QUICK, "--data.data_dir", data_dir, *args])
            assert cli.model is not None and cli.datamodule is not None, where
        else:  # compare, sweep, export, serve: their own options, then the project's parser takes the rest
            with pytest.MonkeyPatch.context() as patch, pytest.raises(Parsed):
                seen = own_options_then_stop(patch)
                import_module(entry.removesuffix(".py")).main(args)
            rest = seen[0][1]
            parser = CheckpointCLI if "--ckpt_path" in args else ProjectCLI
            assert parser([*QUICK, "--data.data_dir", data_dir, *rest]).model is not None, where
        checked += 1
    assert checked == len(commands()) >= 20
