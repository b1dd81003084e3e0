"""`hbench demo`: the main job end to end on synthetic data, offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hbench.cli.common import Command, Home, Quiet, feedback

NOTICE = """The data above is SYNTHETIC (synthetic-fashion: a generated category → sub-category → item hierarchy
with procedurally drawn item pictures; features from the offline EfficientNet-Lite0 encoder).
Real datasets are one command away, e.g.:
  hbench prepare amazon-clothing            # downloads; or --source DIR for an offline mirror
  hbench train hyperml --dataset amazon-clothing --c 1.0 --seed 0 --seed 1 --seed 2
  hbench prepare amazon-men && hbench features amazon-men   # DVBPR Amazon Men (2.1 GB) and its image features
  hbench train hvacf --dataset amazon-men --seed 0
  hbench table results/
"""


def register(app: typer.Typer) -> None:
    app.command("demo", cls=Command)(demo)


def demo(
    out: Annotated[Path, typer.Option(help="Results root for the demo runs.")] = Path("results/demo"),
    seeds: Annotated[int, typer.Option(help="Seeds per model.")] = 2,
    epochs: Annotated[int, typer.Option(help="Maximum epochs per run.")] = 40,
    home: Home = None,
    quiet: Quiet = False,
) -> None:
    """Run prepare → features → train (pop, bpr, vbpr, cml, hyperml, vacf, hvacf) → table, offline, on synthetic data."""
    from hbench.api import run_demo
    from hbench.reports.tables import render

    tables = run_demo(out, home=home, seeds=range(seeds), epochs=epochs, feedback=feedback(quiet))
    typer.echo(render(tables, "markdown"))
    typer.echo(NOTICE, err=True)
