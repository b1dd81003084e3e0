"""`hbench compare A B`: one pair of configurations, every metric, every test, with effect sizes.

A and B are each a run directory, a directory holding the seed runs of one configuration (e.g.
`results/ds/loo/hyperml/`), or a path prefix of such runs (`results/ds/loo/hyperml/e42016db07` for
`e42016db07-seed*`). Statistics come from hbench.reports.significance (computed once into `PairReport`,
then rendered as markdown, CSV or LaTeX). The p-values are uncorrected: this is one pair over several
metrics, which `hbench table` corrects as a family.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from hbench.errors import HBenchError
from hbench.reports.collect import collect_runs
from hbench.reports.latex import latex_escape
from hbench.reports.significance import (
    TESTS,
    Effect,
    TestOutcome,
    check_comparable,
    direction,
    effect_size,
    paired_test,
    paired_values,
)
from hbench.runs import find_runs

FORMATS = ("markdown", "csv", "latex")
TEST_COLUMNS = {"ttest": "p t-test", "wilcoxon": "p Wilcoxon", "permutation": "p permutation", "bootstrap": "p bootstrap"}


@dataclass(frozen=True)
class Side:
    """One configuration: the finished runs (rows of `collect_runs`) named by one command-line argument."""

    label: str
    source: str
    runs: pd.DataFrame

    @property
    def seeds(self) -> list[int]:
        return sorted(int(s) for s in self.runs.loc[self.runs["status"] == "completed", "seed"])


def resolve(path: Path) -> Side:
    """A run directory, a directory of one configuration's runs, or a prefix of run directory names."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise HBenchError(f"{path} is not a directory (name a run directory or a group of runs)")
        runs = collect_runs(path)
    else:
        parent, prefix = path.parent, path.name
        if not parent.is_dir():
            raise HBenchError(f"{path} does not exist")
        matching = sorted(c for c in parent.iterdir() if c.is_dir() and c.name.startswith(prefix)
                          and any(find_runs(c)))
        if not matching:
            raise HBenchError(f"{path} does not exist, and no finished run in {parent} starts with {prefix!r}")
        runs = pd.concat([collect_runs(c) for c in matching], ignore_index=True)
    groups = runs.groupby("group_hash", sort=True)
    if len(groups) > 1:
        found = "; ".join(f"{_label(g)} [{h[:10]}]" for h, g in groups)
        raise HBenchError(f"{path} holds {len(groups)} configurations ({found}); name one run directory, the "
                          f"runs of one configuration, or a prefix such as {path / runs['group_hash'].iloc[0][:10]}")
    if not (runs["status"] == "completed").any():
        raise HBenchError(f"{path} holds no completed run (only diverged ones), so there is nothing to compare")
    return Side(_label(runs), str(path), runs.reset_index(drop=True))


def _label(runs: pd.DataFrame) -> str:
    first = runs.iloc[0]
    return first["model"] + (f" ({first['settings']})" if first["settings"] else "")


@dataclass(frozen=True)
class MetricResult:
    metric: str
    effect: Effect
    outcomes: dict[str, TestOutcome]

    @property
    def n(self) -> int:
        return next(iter(self.outcomes.values())).n

    @property
    def n_effective(self) -> int:
        return next(iter(self.outcomes.values())).n_effective


@dataclass(frozen=True)
class PairReport:
    a: Side
    b: Side
    unit: str
    seeds: tuple[int, ...]
    dataset: str
    protocol: str
    split_hash: str
    results: tuple[MetricResult, ...]
    seed: int
    n_resamples: int
    confidence: float

    def lines(self) -> list[str]:
        """What the numbers are: the two sides, unit, direction of H1, resampling."""
        seeds = ", ".join(map(str, self.seeds))
        n_users = self.results[0].n if self.results else 0
        unit = (f"unit user: per-user test metrics averaged over the {len(self.seeds)} common seed(s) ({seeds}), "
                f"{n_users} users matched exactly" if self.unit == "user"
                else f"unit seed: whole-test-set metrics paired by seed ({seeds})")
        orientation = {direction(r.metric) for r in self.results}
        better = ("higher is better for every metric here" if orientation == {1} else
                  "lower is better for every metric here" if orientation == {-1} else
                  "each metric in its own direction")
        ci = {r.effect.ci_method for r in self.results if r.effect.ci_method}
        notes = sorted({o.note for r in self.results for o in r.outcomes.values()
                        if o.note and not o.note.startswith("exact")})
        return [
            f"A: {self.a.label}; seeds {', '.join(map(str, self.a.seeds))}; {self.a.source}",
            f"B: {self.b.label}; seeds {', '.join(map(str, self.b.seeds))}; {self.b.source}",
            f"Dataset {self.dataset}, protocol {self.protocol}, split {self.split_hash[:10]}; {unit}.",
            f"H1: A is better than B (one-sided; {better}); p-values uncorrected.",
            (f"Δ = A − B with a {self.confidence:.0%} bootstrap CI ({'/'.join(sorted(ci)) or '—'}); d_z = mean / sd "
             "of the paired differences; n ≠ 0 = non-zero differences (the pairs Wilcoxon ranks); permutation and "
             f"bootstrap: {self.n_resamples} resamples, seed {self.seed}."),
            *([f"Note: {'; '.join(notes)}."] if notes else []),
        ]


def compare(a_path: Path, b_path: Path, *, unit: str = "user", metrics: Sequence[str] | None = None, seed: int = 0,
            n_resamples: int = 9999, confidence: float = 0.95) -> PairReport:
    """Every test of `TESTS` and the effect size of A vs B, for each metric (default: all both have)."""
    if not 0 < confidence < 1:
        raise HBenchError(f"--confidence must lie strictly between 0 and 1, not {confidence}")
    if n_resamples < 99:
        raise HBenchError(f"--resamples must be at least 99, not {n_resamples}")
    a, b = resolve(a_path), resolve(b_path)
    check_comparable(pd.concat([a.runs, b.runs]))
    shared = [c[5:] for c in a.runs.columns if c.startswith("test/") and c in b.runs.columns
              and a.runs[c].notna().any() and b.runs[c].notna().any()]
    wanted = list(metrics) if metrics else shared
    missing = [m for m in wanted if m not in shared]
    if missing:
        raise HBenchError(f"metric(s) {', '.join(missing)} not in the runs of both A and B; shared: {', '.join(shared)}")
    cache: dict[str, pd.DataFrame] = {}
    results, seeds = [], ()
    for metric in wanted:
        paired = paired_values(a.runs, b.runs, metric, unit, cache)
        if paired.n == 0:
            raise HBenchError(f"A and B cannot be paired: {paired.note}; runs are paired by seed")
        x, y = paired.oriented()
        outcomes = {t: paired_test(x, y, t, seed=seed, n_resamples=n_resamples) for t in TESTS}
        effect = effect_size(paired.a, paired.b, direction(metric), seed=seed, n_resamples=n_resamples,
                             confidence=confidence)
        results.append(MetricResult(metric, effect, outcomes))
        seeds = paired.seeds
    first = a.runs.iloc[0]
    return PairReport(a, b, unit, seeds, first["dataset"], first["protocol"], first["split_hash"], tuple(results),
                      seed, n_resamples, confidence)


def _p(p: float) -> str:
    if math.isnan(p):
        return "—"
    return f"{p:.1e}" if p < 1e-4 else f"{p:.4f}"


def _num(value: float, digits: int = 4) -> str:
    if math.isnan(value):
        return "—"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    return f"{value:.{digits}f}"


def _rows(report: PairReport) -> tuple[list[str], list[list[str]]]:
    ci_head = f"{report.confidence:.0%} CI"
    header = ["metric", "A", "B", "Δ (A − B)", ci_head, "d_z", "n", "n ≠ 0", *TEST_COLUMNS.values()]
    rows = []
    for r in report.results:
        e = r.effect
        ci = f"[{_num(e.ci_low)}, {_num(e.ci_high)}]" if not math.isnan(e.ci_low) else "—"
        rows.append([r.metric, _num(e.mean_a), _num(e.mean_b), _num(e.difference), ci, _num(e.d_z, 3), str(r.n),
                     str(r.n_effective), *[_p(r.outcomes[t].p_value) for t in TEST_COLUMNS]])
    return header, rows


def render_compare(report: PairReport, fmt: str = "markdown") -> str:
    if fmt not in FORMATS:
        raise HBenchError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "csv":
        records = []
        for r in report.results:
            e = r.effect
            record = {"metric": r.metric, "a": report.a.label, "b": report.b.label, "unit": report.unit,
                      "seeds": " ".join(map(str, report.seeds)), "mean_a": e.mean_a, "mean_b": e.mean_b,
                      "difference": e.difference, "ci_low": e.ci_low, "ci_high": e.ci_high, "ci_method": e.ci_method,
                      "confidence": e.confidence, "d_z": e.d_z, "n": r.n, "n_nonzero": r.n_effective,
                      "alternative": "greater"}
            record.update({f"p_{t}": r.outcomes[t].p_value for t in TESTS})
            records.append(record)
        buffer = io.StringIO()
        pd.DataFrame(records).to_csv(buffer, index=False)
        return buffer.getvalue()
    header, rows = _rows(report)
    if fmt == "markdown":
        table = tabulate(rows, headers=header, tablefmt="pipe", disable_numparse=True)
        return "\n".join(report.lines()) + "\n\n" + table + "\n"
    frame = pd.DataFrame([[latex_escape(c) for c in row] for row in rows], columns=[latex_escape(h) for h in header])
    body = frame.style.hide(axis="index").to_latex(hrules=True, column_format="l" + "r" * (len(header) - 1))
    caption = latex_escape(" ".join(report.lines()))
    return "\\begin{table}[t]\n\\centering\n" + body + f"\\caption{{{caption}}}\n\\end{{table}}\n"
