"""`hbench plot sweep | norms | disk | training`: figures of finished runs (PDF, PNG or SVG) at a paper's size."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from hbench.cli.common import Command, Group, Home, Quiet, feedback
from hbench.errors import HBenchError

plot_app = typer.Typer(
    cls=Group,
    help="Figures of runs: sweeps over a setting, distance from the origin, the Poincaré disk, training curves.",
    no_args_is_help=True,
)

Output = Annotated[Path | None, typer.Option("--output", "-o", help="Figure file: .pdf, .png or .svg (default: <kind>.<format> here).",
                                             show_default=False)]
Format = Annotated[str | None, typer.Option("--format", "-f", help="pdf | png | svg (default: the output's suffix, else png).",
                                            show_default=False)]
Dpi = Annotated[int, typer.Option(help="Resolution of PNG output.")]
Width = Annotated[float | None, typer.Option(help="Width in inches (a paper's column: about 3.3; a page: 7; default 7). "
                                                  "Below 5 in, two panels stack.", show_default=False)]
Height = Annotated[float | None, typer.Option(help="Height in inches (default: fits the width).", show_default=False)]
FontSize = Annotated[float | None, typer.Option(help="Base font size in points (default: the style's, 10).",
                                                show_default=False)]
Style = Annotated[str | None, typer.Option(help="A matplotlib style (e.g. seaborn-v0_8-paper, grayscale) or .mplstyle file.",
                                           show_default=False)]


def register(app: typer.Typer) -> None:
    app.add_typer(plot_app, name="plot")


def _write(draw: Callable[[Any], Any], look: Any, output: Path | None, fmt: str | None, stem: str, dpi: int) -> None:
    from hbench.reports.plots.figures import render_figure, resolve_output

    path, chosen = resolve_output(output, fmt, stem)
    typer.echo(str(render_figure(draw, look, path, chosen, dpi)))


def _check_output(output: Path | None, fmt: str | None, stem: str, width: float | None, height: float | None,
                  font_size: float | None, style: str | None) -> Any:
    """Refuse a bad --output/--format/size/style before any slow loading; the figure's style."""
    from hbench.reports.plots.figures import FigureStyle, resolve_output

    resolve_output(output, fmt, stem)
    return FigureStyle(width, height, font_size, style)


@plot_app.command("sweep", cls=Command)
def sweep(
    results: Annotated[Path, typer.Argument(help="A results directory (searched recursively for finished runs).")],
    axis: Annotated[str, typer.Option("--axis", "-a", help="The setting on the x axis: a model option (c, gamma...) "
                                                          "or train setting (dim, lr, batch_size...).")],
    metric: Annotated[str | None, typer.Option("--metric", "-m", help="Metric (default: the runs' selection metric).")] = None,
    stage: Annotated[str, typer.Option(help="valid | test | both.")] = "both",
    band: Annotated[str, typer.Option(help="Band over seeds: minmax | std (±1 sample std) | none.")] = "minmax",
    xscale: Annotated[str, typer.Option(help="auto (log when positive values span a decade) | linear | log.")] = "auto",
    output: Output = None,
    fmt: Format = None,
    dpi: Dpi = 150,
    width: Width = None,
    height: Height = None,
    font_size: FontSize = None,
    style: Style = None,
    quiet: Quiet = False,
) -> None:
    """A metric against one varying setting: mean over seeds with a band, one line per model and other setting."""
    from hbench.reports.plots.figures import sweep_figure
    from hbench.reports.plots.sweep import aggregate_sweep, sweep_runs, use_log_scale

    look = _check_output(output, fmt, f"sweep-{axis}", width, height, font_size, style)
    if stage not in ("valid", "test", "both"):
        raise HBenchError(f"--stage must be valid, test or both, not {stage!r}")
    stages = ("valid", "test") if stage == "both" else (stage,)
    result = aggregate_sweep(sweep_runs(results), axis, metric=metric, stages=stages, band=band)
    if result.categorical and xscale == "log":
        raise HBenchError(f"--xscale log needs numeric values of {axis!r} (got {', '.join(result.categories)})")
    log_x = not result.categorical and use_log_scale(result.points["x"].to_numpy(float), xscale)
    if result.left_out:
        left = ", ".join(f"{model} ({n})" for model, n in sorted(result.left_out.items()))
        feedback(quiet).log(f"left out runs of models without {axis!r}: {left}")
    _write(lambda look: sweep_figure(result, log_x, look), look, output, fmt, f"sweep-{axis}", dpi)


@plot_app.command("norms", cls=Command)
def norms(
    run: Annotated[Path, typer.Argument(help="A run directory of a hyperbolic model (holds checkpoint.pt).")],
    home: Home = None,
    output: Output = None,
    fmt: Format = None,
    dpi: Dpi = 150,
    width: Width = None,
    height: Height = None,
    font_size: FontSize = None,
    style: Style = None,
    quiet: Quiet = False,
) -> None:
    """Item distance from the origin against popularity (Spearman ρ on stdout), and user/item distance histograms."""
    from hbench.reports.plots.embeddings import (
        distance_from_origin,
        load_run_embeddings,
        popularity_correlation,
    )
    from hbench.reports.plots.figures import correlation_text, norms_figure

    look = _check_output(output, fmt, "norms", width, height, font_size, style)
    emb = load_run_embeddings(run, home, purpose="`hbench plot norms`", feedback=feedback(quiet))
    item_distance = distance_from_origin(emb.items, emb.c)
    popularity = emb.popularity
    correlation = popularity_correlation(popularity, item_distance)
    typer.echo(f"{correlation_text(correlation)}: popularity against distance from the origin")
    user_distance = distance_from_origin(emb.users, emb.c)
    _write(lambda look: norms_figure(popularity, item_distance, user_distance, correlation,
                                     f"{emb.label} · {emb.dataset.name}", emb.c, look), look, output, fmt, "norms", dpi)


@plot_app.command("disk", cls=Command)
def disk(
    run: Annotated[Path, typer.Argument(help="A run directory of a hyperbolic model (holds checkpoint.pt).")],
    color_by: Annotated[str, typer.Option(help="popularity (log training count) | category (an item label).")] = "popularity",
    labels: Annotated[Path | None, typer.Option(help="CSV/TSV/Parquet of original item id and label; implies --color-by "
                                                     "category (default: the dataset's own categories, if any).",
                                                show_default=False)] = None,
    max_points: Annotated[int, typer.Option(help="At most this many users and this many items (random, seeded).")] = 3000,
    seed: Annotated[int, typer.Option(help="Seed of the subsample.")] = 0,
    home: Home = None,
    output: Output = None,
    fmt: Format = None,
    dpi: Dpi = 150,
    width: Width = None,
    height: Height = None,
    font_size: FontSize = None,
    style: Style = None,
    quiet: Quiet = False,
) -> None:
    """Users and items on the Poincaré disk (higher dimensions: log0, principal axes, exp0; radii kept exact)."""
    import numpy as np

    from hbench.reports.plots.embeddings import (
        item_labels,
        load_run_embeddings,
        project_to_disk,
        subsample,
    )
    from hbench.reports.plots.figures import disk_figure, disk_note

    look = _check_output(output, fmt, "disk", width, height, font_size, style)
    color_by = "category" if labels is not None else color_by
    if color_by not in ("popularity", "category"):
        raise HBenchError(f"--color-by must be popularity or category, not {color_by!r}")
    if max_points < 1:
        raise HBenchError(f"--max-points must be at least 1, got {max_points}")
    emb = load_run_embeddings(run, home, purpose="`hbench plot disk`", feedback=feedback(quiet))
    names = item_labels(emb.dataset, labels) if color_by == "category" else None
    # One projection for users and items together: both must share the axes to be comparable.
    projection = project_to_disk(np.concatenate([emb.users, emb.items]), emb.c)
    n_users, n_items = len(emb.users), len(emb.items)
    rng = np.random.default_rng(seed)
    shown_users, shown_items = subsample(n_users, max_points, rng), subsample(n_items, max_points, rng)
    _write(lambda look: disk_figure(
        projection.take(shown_users), projection.take(n_users + shown_items), n_users=n_users, n_items=n_items,
        popularity=emb.popularity[shown_items], labels=None if names is None else names[shown_items],
        title=f"{emb.label} · {emb.dataset.name} · c = {emb.c:g}", note=disk_note(projection, emb.users.shape[1], emb.c),
        look=look), look, output, fmt, "disk", dpi)


@plot_app.command("training", cls=Command)
def training(
    runs: Annotated[list[Path], typer.Argument(help="Run directories, or directories to search for runs.")],
    metric: Annotated[str | None, typer.Option("--metric", "-m", help="Validation metric (default: the runs' selection metric).")] = None,
    output: Output = None,
    fmt: Format = None,
    dpi: Dpi = 150,
    width: Width = None,
    height: Height = None,
    font_size: FontSize = None,
    style: Style = None,
) -> None:
    """Training loss and validation metric per epoch: one line per configuration (mean over seeds, min–max
    band), a colour per model (runs in progress included)."""
    from hbench.reports.plots.figures import training_figure
    from hbench.reports.plots.training import training_curves

    look = _check_output(output, fmt, "training", width, height, font_size, style)
    curves, chosen = training_curves(runs, metric)
    _write(lambda look: training_figure(curves, chosen, look), look, output, fmt, "training", dpi)
