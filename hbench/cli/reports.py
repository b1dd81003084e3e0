"""`hbench table RESULTS_DIR`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hbench.atomic import write_text


def register(app: typer.Typer) -> None:
    app.command("table")(table)


def table(
    results: Annotated[Path, typer.Argument(help="A results directory (searched recursively for finished runs).")] = Path("results"),
    fmt: Annotated[str, typer.Option("--format", "-f", help="markdown | latex | csv.")] = "markdown",
    metric: Annotated[list[str] | None, typer.Option("--metric", "-m", help="Test metric column(s); repeatable (default: the protocol's).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")] = None,
) -> None:
    """Paper-style tables: one per dataset × protocol, mean ± std over seeds, best in bold."""
    from hbench.reports.collect import collect_runs
    from hbench.reports.tables import build_tables, render

    text = render(build_tables(collect_runs(results), metric), fmt)
    if output is None:
        typer.echo(text, nl=False)
    else:
        write_text(output, text)
