"""The `hbench` command line: a thin Typer layer over the Python API (parsing and printing only)."""

from __future__ import annotations

import sys

import typer

from hbench.cli import datasets as datasets_commands
from hbench.cli import demo as demo_commands
from hbench.cli import features as feature_commands
from hbench.cli import plots as plot_commands
from hbench.cli import reports as report_commands
from hbench.cli import runs as run_commands
from hbench.cli import sweep as sweep_commands
from hbench.cli import train as train_commands
from hbench.cli.common import Group, version_option
from hbench.errors import HBenchError

app = typer.Typer(
    name="hbench",
    help="Benchmark hyperbolic recommenders: prepare datasets, train models, evaluate, render tables.",
    cls=Group,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)
app.callback()(version_option)
for module in (datasets_commands, feature_commands, train_commands, sweep_commands, report_commands, run_commands,
               plot_commands, demo_commands):
    module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and a non-zero exit, never a traceback."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        code = app(args=args or ["--help"], prog_name="hbench", standalone_mode=False)
    except HBenchError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except typer.TyperException as error:  # usage errors: bad flag, missing argument, bad value
        print(f"error: {error.format_message()}", file=sys.stderr)
        sys.exit(error.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
