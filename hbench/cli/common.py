"""Options shared by several commands, and how commands print tables and read lists."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup, TyperOption

from hbench.errors import HBenchError
from hbench.ui import Feedback

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or log lines (errors still print).")]
Home = Annotated[
    Path | None,
    typer.Option("--home", envvar="HBENCH_HOME", help="Where raw and prepared data live (default: user cache dir).",
                 show_default=False),
]


LogEvery = Annotated[int, typer.Option("--log-every", help="Without a terminal: a log line every N epochs (and the last).",
                                        min=1)]


def feedback(quiet: bool, **settings: Any) -> Feedback:
    return Feedback.for_stderr(quiet, **settings)

TrackerKind = Annotated[str | None, typer.Option("--tracker", help="Also log every run to mlflow | tensorboard.",
                                                 show_default=False)]
TrackerUri = Annotated[str | None, typer.Option(
    "--tracker-uri", show_default=False,
    help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI), or the TensorBoard log directory (default: each run's "
         "tensorboard/ folder).")]


def trackers(kind: str | None, uri: str | None, experiment: str) -> tuple[Any, ...]:
    """The `--tracker` as a tuple for Feedback.trackers (empty without one); its library must be installed."""
    if kind is None:
        if uri is not None:
            raise HBenchError("--tracker-uri needs --tracker mlflow|tensorboard")
        return ()
    from hbench.trackers import Tracker

    tracker = Tracker(kind, uri, experiment)
    tracker.check()
    return (tracker,)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]], title: str | None = None) -> None:
    """A table on stdout: boxed by rich on a terminal, tab-separated lines (header first, the title as a
    `# ` line) when piped or redirected, so that `grep` and `cut` see whole values.

    The first column holds identifiers (dataset, model, option names): on a terminal it is never wrapped
    or cut; the other columns wrap to fit the width.
    """
    if not sys.stdout.isatty():
        lines = ([f"# {title}"] if title else []) + ["\t".join(headers)] + ["\t".join(map(str, r)) for r in rows]
        typer.echo("\n".join(lines))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    widest = max((len(str(r[0])) for r in rows), default=0)
    table.add_column(headers[0], no_wrap=True, min_width=max(widest, len(headers[0])))
    for header in headers[1:]:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*map(str, row))
    Console().print(table)


def parse_int_list(values: Sequence[str], flag: str, expects: str = "integers, repeated or comma-separated") -> list[int]:
    """Integers given as repeated flags, comma lists or both: `--seed 0 --seed 1`, `--seed 0,1`."""
    parsed: list[int] = []
    for value in values:
        for part in value.split(","):
            try:
                parsed.append(int(part.strip()))
            except ValueError:
                raise HBenchError(f"{flag} expects {expects}, got {value!r}") from None
    return parsed


class _FlagsWithoutType:
    """Help that shows on/off flags as flags: typer's rich help prints `<bool>` after `--force`, which
    reads as if it took a value (`--force true` then fails). Flags get an empty metavar instead."""

    def get_params(self, ctx: typer.Context) -> list:
        params = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            if isinstance(param, TyperOption) and (param.is_flag or param.count):
                param.metavar = ""
        return params


class Command(_FlagsWithoutType, TyperCommand):
    """Every hbench command (`app.command(..., cls=Command)`)."""


class Group(_FlagsWithoutType, TyperGroup):
    """Every hbench command group (`typer.Typer(cls=Group)`)."""


def _print_version(value: bool) -> None:
    if value:
        from hbench import __version__

        typer.echo(f"hbench {__version__}")
        raise typer.Exit()


def version_option(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print hbench's version and exit.")] = False,
) -> None:
    """Benchmark hyperbolic recommenders: prepare datasets, train models, evaluate, render tables."""
