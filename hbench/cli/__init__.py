"""The `hbench` command line: a thin Typer layer over the Python API (parsing and printing only)."""

from __future__ import annotations

import os
import sys
import traceback
from typing import NoReturn

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
    help="Benchmark hyperbolic recommenders: prepare datasets, train models, evaluate, render tables. "
    "`hbench --debug COMMAND ...` (or HBENCH_DEBUG=1) prints the traceback of an unexpected error.",
    cls=Group,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)
app.callback()(version_option)
for module in (datasets_commands, feature_commands, train_commands, sweep_commands, report_commands, run_commands,
               plot_commands, demo_commands):
    module.register(app)


DEBUG_ENV = "HBENCH_DEBUG"
_INTERRUPTED = 130  # Ctrl-C, and only Ctrl-C: no command exits with it


def main(argv: list[str] | None = None) -> None:
    """Entry point: every failure is one line on stderr and a non-zero exit, never a traceback.

    Exit codes: 2 for a user error (HBenchError, a bad flag); 1 for a machine that refuses a write (disk
    full, quota, read-only file system, no permission: EnvironmentFailure, one line naming the path asked
    for) and for anything unexpected (a bug: the line names the exception type; `hbench --debug ...` or
    HBENCH_DEBUG=1 prints the traceback as well); 130 for Ctrl-C and nothing else.
    """
    from hbench.errors import EnvironmentFailure  # hbench.errors is loaded above already: this costs nothing

    args = sys.argv[1:] if argv is None else list(argv)
    debug = os.environ.get(DEBUG_ENV, "") not in ("", "0")
    while args and args[0] == "--debug":
        debug, args = True, args[1:]
    try:
        code = app(args=args or ["--help"], prog_name="hbench", standalone_mode=False)
    except EnvironmentFailure as error:  # before HBenchError, its base: not the user's mistake, not a bug
        _fail(f"error: {_one_line(str(error))}", 1, error if debug else None)
    except HBenchError as error:
        _fail(f"error: {_one_line(str(error))}", 2, error if debug else None)
    except typer.TyperException as error:  # usage errors: bad flag, missing argument, bad value
        _fail(f"error: {_one_line(error.format_message())}", error.exit_code, error if debug else None)
    except typer.Abort as error:
        # click turns an EOFError anywhere below it into Abort as well; only a real Ctrl-C is an interruption.
        cause = error.__cause__ or error.__context__
        if cause is not None and not isinstance(cause, KeyboardInterrupt):
            _unexpected(cause, debug)
        _fail("error: interrupted", _INTERRUPTED, None)
    except KeyboardInterrupt:
        _fail("error: interrupted", _INTERRUPTED, None)
    except Exception as error:  # noqa: BLE001 - the one top-level guard
        _unexpected(error, debug)
    if code == _INTERRUPTED:  # typer turns a KeyboardInterrupt into this exit code, silently
        _fail("error: interrupted", _INTERRUPTED, None)
    sys.exit(code if isinstance(code, int) else 0)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _unexpected(error: BaseException, debug: bool) -> None:
    hint = "" if debug else f" (run with --debug or {DEBUG_ENV}=1 for the traceback)"
    _fail(f"error: unexpected {type(error).__name__}: {_one_line(str(error))[:500]}{hint}", 1, error if debug else None)


def _fail(line: str, code: int, traceback_of: BaseException | None) -> NoReturn:
    if traceback_of is not None:
        traceback.print_exception(traceback_of, file=sys.stderr)
    print(line, file=sys.stderr)
    sys.exit(code)
