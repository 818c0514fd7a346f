"""Train with Lightning and with the hand-written loop, same config and seed, and compare.

python compare.py                          # the defaults; prints the table, writes compare.png
python compare.py --json figures.json      # also the figures as JSON, for CI
python compare.py --check                  # exit 1 unless the final weights are bit-identical
python compare.py --repeats 3              # alternate the order, pool the timings: steadier figures
python compare.py --trainer.max_epochs 3 --data.batch_size 100   # any option train.py takes
torchrun --nproc_per_node 2 compare.py --trainer.devices 2 --trainer.strategy ddp   # both on 2 processes
"""

import argparse
import json
import sys
import time

_start = time.perf_counter()
from jsonargparse.typing import PositiveInt  # noqa: E402
from lightning.pytorch.utilities import rank_zero_only  # noqa: E402

from {{ cookiecutter.package_name }}.cli import ConfigError, clear_errors  # noqa: E402
from {{ cookiecutter.package_name }}.compare import compare, format_report, plot  # noqa: E402
from {{ cookiecutter.package_name }}.distributed import finish  # noqa: E402

IMPORT_S = time.perf_counter() - _start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, exit_on_error=False
    )
    parser.add_argument("--json", help="write the figures to this JSON file")
    parser.add_argument("--plot", default="compare.png", help="the loss curves' PNG ('' for none)")
    parser.add_argument("--check", action="store_true", help="exit 1 unless the weights are identical")
    parser.add_argument("--repeats", type=PositiveInt, default=1, help="run the pair this often for steadier timings")
    try:
        own, rest = parser.parse_known_args(argv)
    except argparse.ArgumentError as error:
        raise ConfigError(str(error)) from None
    figures = compare(rest, own.repeats)
    finish()  # under torchrun: every rank leaves the process group together
    if rank_zero_only.rank != 0:
        return 0  # under torchrun every rank ran both paths; rank 0 reports
    figures["import_s"] = IMPORT_S
    print(format_report(figures))
    print(f"imports (torch, lightning, the project): {IMPORT_S:.2f} s")
    if own.plot:
        plot(figures, own.plot)
        print(f"loss curves: {own.plot}")
    if own.json:
        with open(own.json, "w") as f:
            json.dump(figures, f, indent=2)
    if own.check and not figures["identical"]:
        print("FAIL: the two paths ended with different weights", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    with clear_errors():
        sys.exit(main())
