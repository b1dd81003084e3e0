"""`hbench table RESULTS_DIR` and `hbench compare A B`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hbench.atomic import write_text
from hbench.cli.common import Command, Quiet, feedback
from hbench.reports.settings import DEFAULT_TESTS

Output = Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")]
Unit = Annotated[str, typer.Option("--unit", help="user: per-user metrics (averaged over common seeds, users matched "
                                                  "exactly) | seed: per-run metrics paired by seed.")]
Seed = Annotated[int, typer.Option("--seed", help="Seed of the permutation and bootstrap resampling.")]
# The defaults of the tests are those of `hbench.table()` (hbench.reports.settings), written once.
D = DEFAULT_TESTS
Resamples = Annotated[int, typer.Option("--resamples", help="Resamples of the permutation and bootstrap tests.")]


def register(app: typer.Typer) -> None:
    app.command("table", cls=Command)(table)
    app.command("compare", cls=Command)(compare)


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        typer.echo(text, nl=False)
    else:
        write_text(output, text)


def table(
    results: Annotated[Path, typer.Argument(help="A results directory (searched recursively for finished runs).")] = Path("results"),
    fmt: Annotated[str, typer.Option("--format", "-f", help="markdown | latex | csv | html.")] = "markdown",
    metric: Annotated[list[str] | None, typer.Option("--metric", "-m", help="Test metric column(s); repeatable (default: the protocol's).")] = None,
    output: Output = None,
    test: Annotated[str, typer.Option("--test", help="ttest | wilcoxon | permutation | bootstrap | none.")] = D.test,
    no_test: Annotated[bool, typer.Option("--no-test", help="No significance tests (same as --test none).")] = False,
    unit: Unit = D.unit,
    correction: Annotated[str, typer.Option("--correction", help="holm | bh | bonferroni | none, over each table's family of tests.")] = D.correction,
    alpha: Annotated[float, typer.Option("--alpha", help="Significance level after correction.")] = D.alpha,
    baseline: Annotated[str | None, typer.Option("--baseline", help="Row to test against: model name, row label or group hash (default: the best non-proposed row of each column).")] = None,
    pairs: Annotated[str, typer.Option("--pairs", help="baseline: every row against the baseline (one-sided) | all: every pair of rows (two-sided).")] = D.pairs,
    seed: Seed = D.seed,
    resamples: Resamples = D.n_resamples,
    with_paper: Annotated[bool, typer.Option("--with-paper", help="Add the numbers the papers report where dataset and protocol match.")] = False,
    all_configs: Annotated[bool, typer.Option("--all-configs", help="In sweep directories, every configuration, not only those selected on validation.")] = False,
    time_to_quality: Annotated[bool, typer.Option("--time-to-quality", help="Add a column: training seconds until validation first reached 95% of its best.")] = False,
    protocol_gap: Annotated[bool, typer.Option("--protocol-gap", help="Beside each metric, the best test value on the runs' recorded test curves (`train --record-test-curve`; chosen by looking at test, as the HGCF lineage's papers report) and its gap to the validation-selected value.")] = False,
    label: Annotated[list[str] | None, typer.Option("--label", help="RUN_OR_CONFIG=NAME: a row's name in the table; the row by its run directory, label, group hash or model; repeatable.", show_default=False)] = None,
    fragment: Annotated[bool, typer.Option("--fragment", help="HTML: only the <table> elements, not a whole page.")] = False,
    quiet: Quiet = False,
) -> None:
    """Paper-style tables: one per dataset × protocol, mean ± std over seeds, best in bold, significance markers.

    Over a tree of studies, a table (or its tests) that cannot be rendered is left out with one warning line
    on stderr saying why; those warnings show even with --quiet, since they concern what the output holds."""
    from hbench.api import table as render_table
    from hbench.reports.settings import SignificanceSettings

    settings = None
    if not no_test and test != "none":
        settings = SignificanceSettings(test=test, unit=unit, correction=correction, alpha=alpha, pairs=pairs,
                                        baseline=baseline, seed=seed, n_resamples=resamples)
    _emit(render_table(results, fmt, metric, significance=settings, with_paper=with_paper, all_configs=all_configs,
                       labels=label or [], fragment=fragment, time_to_quality=time_to_quality,
                       protocol_gap=protocol_gap, progress=feedback(quiet)), output)


def compare(
    a: Annotated[Path, typer.Argument(help="Run directory, directory of one configuration's runs, or a run-name prefix (A).")],
    b: Annotated[Path, typer.Argument(help="The same for B; H1: A is better than B.")],
    unit: Unit = "user",
    metric: Annotated[list[str] | None, typer.Option("--metric", "-m", help="Metric(s); repeatable (default: all both have).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="markdown | csv | latex.")] = "markdown",
    seed: Seed = D.seed,
    resamples: Resamples = D.n_resamples,
    confidence: Annotated[float, typer.Option("--confidence", help="Level of the bootstrap CI of the difference.")] = 0.95,
    output: Output = None,
) -> None:
    """Two configurations in detail: means, difference with bootstrap CI, d_z and every test's p-value per metric."""
    from hbench.reports.compare import compare as compare_pair
    from hbench.reports.compare import render_compare

    report = compare_pair(a, b, unit=unit, metrics=metric, seed=seed, n_resamples=resamples, confidence=confidence)
    _emit(render_compare(report, fmt), output)
