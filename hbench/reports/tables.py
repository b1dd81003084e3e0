"""Paper-style tables: statistics computed once (`build_tables`), rendered many ways.

One table per dataset × protocol × split: a row per model configuration, a column per test metric, cells
mean ± sample standard deviation over seeds, the best value of each column in bold and the second
underlined, and the training/evaluation time of each row (Cornac-style). A note under each table names
the protocol, the selection rule and the tie rule.

With `significance` settings, every table also carries a `SignificanceReport` (hbench.reports.significance):
the paired tests of its rows against a baseline (or of all pairs), corrected as one family per table; cells
significantly better than the baseline get a marker (†) and the footnote states test, unit, α, correction
and family size. With `with_paper`, the numbers the seed papers report (hbench.reports.paper) are added as
extra rows where dataset and protocol match; they are never ranked or tested.

With `protocol_gap`, each metric gets two more columns from the runs' recorded test curves (`train
--record-test-curve`): the best test value on the curve (chosen by looking at test, as the HGCF lineage's
papers report) and its difference from the validation-selected value. Only then is a curve file read.
"""

from __future__ import annotations

import dataclasses
import html
import io
import math
import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from rich.markup import escape
from tabulate import tabulate

from hbench.errors import HBenchError
from hbench.evaluation.protocols import TIE_RULE
from hbench.protocols import PROTOCOLS
from hbench.reports import paper
from hbench.reports.collect import PROGRESS_FROM_RUNS
from hbench.reports.latex import latex_escape
from hbench.reports.names import metric_name
from hbench.reports.paper import ReportedResult
from hbench.reports.significance import (
    BaselineError,
    RowKey,
    SignificanceReport,
    SignificanceSettings,
    direction,
    table_significance,
)
from hbench.runs import PER_USER, RunDirectory
from hbench.ui import QUIET, Feedback

FORMATS = ("markdown", "latex", "csv", "html")
MARKER = "†"


@dataclass(frozen=True)
class Cell:
    mean: float
    std: float
    n: int
    rank: int  # 1 = best in its column, 2 = second, 0 = otherwise


@dataclass(frozen=True)
class Row:
    label: str
    group_hash: str
    n_runs: int
    n_diverged: int
    cells: dict[str, Cell | None]
    train_seconds: float
    eval_seconds: float
    model: str = ""
    time_to_quality_seconds: float = float("nan")  # mean over the row's runs that recorded it
    tuning: str = ""  # the search that chose the row's configuration ("" when it was not tuned by `hbench tune`)
    # The study folder of the row's runs, where one configuration was run with the same seeds in several
    # (its runs there are a row of their own, whose `group_hash` is then `hash@folder`); "" otherwise.
    study: str = ""
    # With `protocol_gap`: per metric, the best test value on each run's recorded curve and its difference
    # from the validation-selected value, over the runs that recorded a curve (`n_curves` of them).
    curve_cells: dict[str, Cell | None] = field(default_factory=dict)
    gap_cells: dict[str, Cell | None] = field(default_factory=dict)
    n_curves: int = 0


# The caption can only speak of searches it can see: a run outside an `hbench tune` output may still have
# settings that some other search chose (a tune's winner rerun by `sweep` at a longer cap), so this says
# what is known, not "not tuned".
_NO_SEARCH = "no search recorded with the runs (defaults, or settings given to `train` or `sweep`)"


@dataclass(frozen=True)
class Table:
    dataset: str
    protocol: str
    split_hash: str
    metrics: tuple[str, ...]
    rows: list[Row]
    selection_metrics: tuple[str, ...]
    shared_settings: tuple[str, ...] = ()
    significance: SignificanceReport | None = None
    reported: tuple[ReportedResult, ...] = ()
    reported_withheld: tuple[str, ...] = ()  # reasons, for --with-paper rows whose data or protocol differ
    show_time_to_quality: bool = False
    untested: str = ""  # why tests that were asked for were not run on this table ("" when they were, or not asked)
    protocol_gap: bool = False  # the best-on-test-curve and gap columns beside each metric

    @property
    def title(self) -> str:
        return f"{self.dataset} — {self.protocol}"

    @property
    def letters(self) -> dict[str, str]:
        """Row letters (a, b, …) by group hash, which mark significance when all pairs are tested."""
        if self.significance is None or self.significance.settings.pairs != "all":
            return {}
        alphabet = string.ascii_lowercase
        return {r.group_hash: alphabet[i % 26] * (i // 26 + 1) for i, r in enumerate(self.rows)}

    def marks(self, row: Row, metric: str) -> str:
        """`†` when the cell is significantly better than its column's baseline; with all pairs, the letters
        of the rows it is significantly better than."""
        if self.significance is None:
            return ""
        beaten = self.significance.beats(row.group_hash, metric)
        if self.significance.settings.pairs == "all":
            letters = self.letters
            return "".join(sorted(letters[g] for g in beaten))
        return MARKER if beaten else ""

    def row_label(self, row: Row) -> str:
        letter = self.letters.get(row.group_hash)
        return f"({letter}) {row.label}" if letter else row.label

    def headline(self) -> str:
        """One sentence for a paper's caption: what is measured, on what, over how many seeds."""
        seeds = "/".join(map(str, sorted({r.n_runs - r.n_diverged for r in self.rows})))
        if self.protocol_gap:
            return (f"Protocol gap on {self.dataset} ({self.protocol} protocol), mean ± std over {seeds} seed(s): "
                    f"per metric, the test value of the checkpoint selected on validation (hbench's number), the "
                    "best test value on the run's recorded test curve (each metric's best validation point, as the "
                    "HGCF lineage's papers report a single run's best test epoch) and the gap, best on curve − "
                    "selected. The best on the curve is chosen by looking at test: a measurement of the protocol, "
                    "not a result.")
        return (f"Test {', '.join(metric_name(m) for m in self.metrics)} on {self.dataset} ({self.protocol} protocol), "
                f"mean ± std over {seeds} seed(s); best in bold, second underlined.")

    def notes(self) -> str:
        """The protocol details a paper puts in a footnote below the table."""
        spec = PROTOCOLS[self.protocol]
        return (
            f"Protocol `{self.protocol}`: {spec.description}; {TIE_RULE}. Test metrics of the checkpoint selected on "
            f"validation {', '.join(metric_name(m) for m in self.selection_metrics)}; equal means share a place. "
            f"Split {self.split_hash[:10]}."
            + (f" All rows: {', '.join(self.shared_settings)}." if self.shared_settings else "")
            + self._tuning_note()
            + (" " + self.significance.describe({r.group_hash: r.label for r in self.rows}, MARKER)
               if self.significance is not None else "")
            + (f" No significance tests: {self.untested}." if self.untested else "")
            + (" " + paper.describe(self.reported, self.reported_withheld)
               if self.reported or self.reported_withheld else "")
            + self._gap_note()
        )

    def _gap_note(self) -> str:
        """Which rows' runs recorded no test curve (a dash), or only some of them; "" without `protocol_gap`."""
        if not self.protocol_gap:
            return ""
        done = {r.label: r.n_runs - r.n_diverged for r in self.rows}
        none = [r.label for r in self.rows if r.n_curves == 0]
        some = [f"{r.label} ({r.n_curves} of {done[r.label]})" for r in self.rows if 0 < r.n_curves < done[r.label]]
        note = (" Curve and gap columns over the runs that recorded a test curve (`train --record-test-curve`), "
                "with the selected value of the same runs")
        note += f"; no curve recorded: {', '.join(none)}" if none else ""
        note += f"; a curve for only some runs: {', '.join(some)}" if some else ""
        if self.reported:
            note += "; the papers' rows stand in the best-on-curve column"
        return note + "."

    def _tuning_note(self) -> str:
        """The budget each row's search had (`hbench tune`'s tune.json), grouped by budget; "" when none was tuned."""
        if not any(r.tuning for r in self.rows):
            return ""
        by_budget: dict[str, list[str]] = {}
        for row in self.rows:
            by_budget.setdefault(row.tuning or _NO_SEARCH, []).append(row.label)
        parts = [f"{', '.join(labels)}: {budget}" for budget, labels in by_budget.items()]
        return " Tuning budget: " + "; ".join(parts) + "."

    def caption(self) -> str:
        """Headline and notes together (markdown prints them under the table)."""
        return f"{self.headline()} {self.notes()}"


def build_tables(runs: pd.DataFrame, metrics: Sequence[str] | None = None, *,
                 significance: SignificanceSettings | None = None, with_paper: bool = False,
                 labels: Mapping[str, str] | None = None, time_to_quality: bool = False,
                 protocol_gap: bool = False, feedback: Feedback = QUIET) -> list[Table]:
    """One table per dataset × protocol × split; tests and reported rows when asked (see the module doc).

    `labels` renames rows: {run directory, row label, group hash (prefix) or model name: new label}.
    `time_to_quality` adds a column: training seconds until validation first reached 95% of its best.
    `protocol_gap` adds, per metric, the best test value on the runs' recorded test curves and the gap to the
    selected value (the only use of those curves; see the module doc).

    Over a tree of many studies, what cannot be rendered is left out table by table, each with one
    warning line on `feedback` (always shown) saying what and why: a table without the asked metrics is
    skipped; a table whose runs cannot be tested (no per_user.parquet for per-user tests, a seed twice in
    one row, users that differ) is rendered without tests, and its caption says so. One configuration
    trained with the same seed in two study folders (see `hbench.reports.collect.study_folder`) gives a
    row per folder rather than one row that averages a seed twice. Nothing renderable is an error.
    """
    tables = []
    used_labels: set[str] = set()
    skipped: list[str] = []  # why a table was left out, for the error when none is left
    warnings: list[str] = []  # printed once every table is built, and only when no error ends the command
    baseline_misses: list[HBenchError] = []
    groups = list(runs.groupby(["dataset", "protocol", "split_hash"], sort=True))
    splits = Counter((d, p) for (d, p, _), _ in groups)  # a table's split is named where its pair has several
    # Progress only where it takes a while: a small table's stderr stays empty (or one error line).
    progress = feedback if len(runs) >= PROGRESS_FROM_RUNS else QUIET
    with progress.progress("building tables", total=len(groups), unit="tables") as bar:
        for (dataset, protocol, split_hash), group in groups:
            bar.advance()
            where = f"{dataset}/{protocol}" + (f" (split {split_hash[:10]})" if splits[(dataset, protocol)] > 1 else "")
            # What this table's runs record: over a tree, the frame has a column for every metric any run has.
            recorded = {c[5:] for c in group.columns if c.startswith("test/") and group[c].notna().any()}
            if not recorded:  # only diverged runs (no test metrics): the table still shows them, as before
                recorded = {c[5:] for c in group.columns if c.startswith("test/")}
            wanted = tuple(metrics) if metrics else tuple(m for m in PROTOCOLS[protocol].report_metrics if m in recorded)
            missing = [m for m in wanted if m not in recorded]
            if missing:
                available = sorted(recorded)
                skipped.append(f"metric(s) {', '.join(missing)} not in the runs of {dataset}/{protocol}; "
                               f"available: {', '.join(available)}")
                warnings.append(f"{where}: table skipped: no runs record {', '.join(missing)} "
                                f"({len(group)} runs; they have {', '.join(available[:6])}"
                                f"{', …' if len(available) > 6 else ''})")
                continue
            group = _rows_by_study(group)
            progress.line(f"building {where}: {group['row'].nunique()} rows")
            table, hint, baseline_miss = _build_table(dataset, protocol, split_hash, group, wanted, significance,
                                                with_paper, labels, used_labels, time_to_quality, protocol_gap,
                                                warnings)
            if baseline_miss is not None:
                baseline_misses.append(baseline_miss)
            if table.untested:
                warnings.append(f"{where}: no significance tests: {table.untested}{hint}")
            tables.append(table)
    if not tables:
        raise HBenchError(skipped[0] if len(skipped) == 1 else f"no table could be rendered: {skipped[0]}")
    if significance is not None and significance.baseline is not None and len(baseline_misses) == len(tables):
        raise baseline_misses[0]  # --baseline names no row anywhere: a mistake, not a gap in the data
    unused = [key for key in labels or {} if key not in used_labels]
    if unused:
        known = sorted({r.label for t in tables for r in t.rows})
        raise HBenchError(f"--label {unused[0]!r} names no row (rows: {'; '.join(known)}; a run directory, group "
                          "hash or model name works too)")
    for warning in warnings:
        feedback.warn(escape(warning))
    return tables


def _build_table(dataset: str, protocol: str, split_hash: str, group: pd.DataFrame,
                 wanted: tuple[str, ...], significance: SignificanceSettings | None, with_paper: bool,
                 labels: Mapping[str, str] | None, used_labels: set[str],
                 time_to_quality: bool, protocol_gap: bool = False,
                 curve_warnings: list[str] | None = None) -> tuple[Table, str, HBenchError | None]:
    """One table of `build_tables` (`group` carries the `row` column of `_rows_by_study`), what the warning
    adds to its caption's reason for having no tests (where to look, which flag helps), and the error of a
    --baseline that names none of its rows (None otherwise). With `protocol_gap`, damaged curve files are
    left out with a line on `curve_warnings`."""
    curve_warnings = [] if curve_warnings is None else curve_warnings
    # Settings every row shares go under the table; labels keep only what tells rows apart.
    settings = {key: set(text.split()) for key, text in zip(group["group_hash"], group["settings"])}
    shared = set.intersection(*settings.values()) if len(settings) > 1 else set()
    rows = []
    for (model, row_key), runs_of_row in group.groupby(["model", "row"], sort=False):
        group_hash = runs_of_row["group_hash"].iloc[0]
        label = _row_label(model, sorted(settings[group_hash] - shared), runs_of_row)
        study = runs_of_row["row_study"].iloc[0]
        if study:
            label = f"{label} [{study}]"
        done = runs_of_row[runs_of_row["status"] == "completed"]
        cells: dict[str, Cell | None] = {}
        for m in wanted:
            values = done[f"test/{m}"].dropna().to_numpy(float)
            cells[m] = Cell(values.mean(), values.std(ddof=1) if len(values) > 1 else 0.0, len(values), 0) if len(values) else None
        quality = pd.to_numeric(done.get("time_to_quality_seconds", pd.Series(dtype=float)), errors="coerce").dropna()
        gap = _gap_cells(done, wanted, curve_warnings) if protocol_gap else ({}, {}, 0)
        rows.append(Row(label, row_key, len(runs_of_row), int((runs_of_row["status"] == "diverged").sum()), cells,
                        float(done["train_seconds"].mean()) if len(done) else float("nan"),
                        float(done["eval_seconds"].mean()) if len(done) else float("nan"), model,
                        float(quality.mean()) if len(quality) else float("nan"),
                        _one_text(runs_of_row, "tuning"), study, *gap))
    _rank_cells(rows, wanted)
    _disambiguate(rows)
    if labels:
        rows = _relabel(rows, group, labels, used_labels, f"{dataset}/{protocol}")
    rows.sort(key=lambda r: r.label)
    report, untested, hint, baseline_miss = None, "", "", None
    if significance is not None:
        keys = [RowKey(r.group_hash, r.model, r.label, {m: c.mean if c else None for m, c in r.cells.items()})
                for r in rows]
        untested, hint = _untestable(group, significance)
        if not untested:
            try:
                # Rows are told apart by `row` (a configuration, or one study's runs of it): the tests pair those.
                report = table_significance(group.assign(group_hash=group["row"]), keys, wanted, significance)
            except BaselineError as error:
                if not error.missing:
                    raise
                baseline_miss = error
                untested = f"--baseline {significance.baseline!r} names none of its rows"
            except HBenchError as error:  # runs that cannot be paired: the table keeps its means
                untested = _clip(str(error))
    reported, withheld = (paper.reported_for(dataset, protocol, wanted, n_users=_one_value(group, "n_users"),
                                             negatives=_one_value(group, "negatives"), dim=_one_value(group, "dim"))
                          if with_paper else ((), ()))
    table = Table(dataset, protocol, split_hash, wanted, rows, tuple(sorted(group["selection_metric"].unique())),
                  tuple(sorted(shared)), report, reported, withheld, time_to_quality, untested, protocol_gap)
    return table, hint, baseline_miss


def _gap_cells(done: pd.DataFrame, metrics: Sequence[str],
               warnings: list[str]) -> tuple[dict[str, Cell | None], dict[str, Cell | None], int]:
    """(best on the test curve, best on the curve − selected, runs with a curve) of one row's completed runs.

    Per run and metric, the best value its curve holds (the largest, or the smallest for a lower-is-better
    metric), paired with that run's validation-selected test value; mean ± sample std over those runs. A
    damaged curve file counts as none, with a warning line naming it.
    """
    best: dict[str, list[float]] = {m: [] for m in metrics}
    gaps: dict[str, list[float]] = {m: [] for m in metrics}
    n_curves = 0
    for _, run in done.iterrows():
        try:
            curve = RunDirectory(Path(run["path"])).read_test_curve()
        except HBenchError as error:
            warnings.append(f"{run['path']}: {error}; its row shows no curve for it")
            continue
        if not curve:
            continue
        n_curves += 1
        for m in metrics:
            values = [float(point[m]) for point in curve if m in point and math.isfinite(float(point[m]))]
            selected = run.get(f"test/{m}")
            if not values or selected is None or not math.isfinite(float(selected)):
                continue
            o = direction(m)
            top = o * max(o * v for v in values)
            best[m].append(top)
            gaps[m].append(top - float(selected))

    def cell(values: list[float]) -> Cell | None:
        if not values:
            return None
        array = np.asarray(values, dtype=float)
        return Cell(float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0, len(array), 0)

    return {m: cell(best[m]) for m in metrics}, {m: cell(gaps[m]) for m in metrics}, n_curves


def _rows_by_study(group: pd.DataFrame) -> pd.DataFrame:
    """`group` with a `row` column (what one table row holds) and `row_study` (the study its label names).

    A row is a configuration (model, group hash). When two study folders both ran one configuration with
    the same seed, those are two measurements of one seed; averaging them would count the seed twice and
    pair it with itself in the tests, so each study's runs become their own row, named by its folder.
    Configurations whose seeds do not repeat stay one row across folders (seeds 0–2 here, 3–4 there).
    """
    group = group.copy()
    study = group["study"] if "study" in group else pd.Series(".", index=group.index)
    group["row"], group["row_study"] = group["group_hash"], ""
    for (_, group_hash), runs_of_row in group.groupby(["model", "group_hash"], sort=False):
        if not runs_of_row["seed"].duplicated().any() or study[runs_of_row.index].nunique() < 2:
            continue
        folders = study[runs_of_row.index]
        names = _short_folders(sorted(folders.unique()))
        group.loc[runs_of_row.index, "row"] = [f"{group_hash}@{f}" for f in folders]
        group.loc[runs_of_row.index, "row_study"] = [names[f] for f in folders]
    return group


def _short_folders(folders: list[str]) -> dict[str, str]:
    """Study folders without the leading parts they all share (`reference/a`, `reference/b` → `a`, `b`)."""
    parts = [f.split("/") for f in folders]
    common = 0
    while all(len(p) > common + 1 for p in parts) and len({p[common] for p in parts}) == 1:
        common += 1
    return {f: "/".join(p[common:]) for f, p in zip(folders, parts)}


def _untestable(group: pd.DataFrame, settings: SignificanceSettings) -> tuple[str, str]:
    """Why the table's runs cannot be tested as asked, known before any test runs ("" when nothing is), and
    a hint for the warning line (an example folder and the flag that helps)."""
    if settings.unit != "user":
        return "", ""
    done = group.loc[group["status"] == "completed", "path"]
    lacking = [path for path in done if not (Path(path) / PER_USER).is_file()]
    if not lacking:
        return "", ""
    return (f"{len(lacking)} of {len(done)} runs lack {PER_USER}",
            f" (e.g. in {_folder_of(lacking[0])}); --unit seed tests them by seed")


def _folder_of(run_path: str) -> Path:
    """The study folder of a run (`<study>/<dataset>/<protocol>/<model>/<run>`): shorter than the run's own
    path on a warning line, and where a user looks for the files."""
    path = Path(run_path)
    return path.parents[3] if len(path.parents) > 4 else path.parent


def _clip(text: str, limit: int = 160) -> str:
    """One reason on a warning line: long messages (two run paths) shortened rather than wrapped."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _row_label(model: str, own: list[str], runs_of_row: pd.DataFrame) -> str:
    """`model (settings that tell it apart)`; an ablation's row says its variant's name instead of the
    options the variant sets, e.g. `hvacf: uniform attention`."""
    variant = runs_of_row["variant"].iloc[0] if "variant" in runs_of_row else ""
    if variant:
        set_by_variant = set(runs_of_row["variant_options"].iloc[0].split())
        own = [s for s in own if s.split("=", 1)[0] not in set_by_variant]
        model = f"{model}: {variant}"
    return model + (f" ({', '.join(own)})" if own else "")


def _rows_named(key: str, rows: list[Row], group: pd.DataFrame) -> list[Row]:
    """The rows a --label key names: a run directory (or a folder of one configuration's runs), else an
    exact row label, else a group hash or its prefix (6+ characters), else a model name."""
    path = Path(key)
    if path.exists():
        root = path.resolve()
        keys = group["row"] if "row" in group else group["group_hash"]  # the row identity (`_rows_by_study`)
        hashes = {h for p, h in zip(group["path"], keys, strict=True)
                  if root == Path(p).resolve() or root in Path(p).resolve().parents}
        return [r for r in rows if r.group_hash in hashes]
    for matches in ([r for r in rows if r.label == key],
                    [r for r in rows if len(key) >= 6 and r.group_hash.startswith(key)],
                    [r for r in rows if r.model == key]):
        if matches:
            return matches
    return []


def _relabel(rows: list[Row], group: pd.DataFrame, labels: Mapping[str, str], used: set[str], where: str) -> list[Row]:
    renamed = {}
    for key, name in labels.items():
        matches = _rows_named(key, rows, group)
        if len(matches) > 1:
            raise HBenchError(f"--label {key!r} names {len(matches)} rows of {where} ({'; '.join(r.label for r in matches)}); "
                              "name one by its row label, group hash or run directory")
        if matches:
            used.add(key)
            renamed[matches[0].group_hash] = name
    rows = [dataclasses.replace(r, label=renamed.get(r.group_hash, r.label)) for r in rows]
    seen = [r.label for r in rows]
    if len(set(seen)) < len(seen):
        twice = sorted({label for label in seen if seen.count(label) > 1})
        raise HBenchError(f"--label gives two rows of {where} the same name: {', '.join(twice)}")
    return rows


def parse_labels(pairs: Sequence[str]) -> dict[str, str]:
    """`RUN_OR_CONFIG=NAME` strings (split at the last `=`, since row labels hold `=` themselves)."""
    labels = {}
    for pair in pairs:
        key, equals, name = pair.rpartition("=")
        if not equals or not key.strip() or not name.strip():
            raise HBenchError(f"--label expects RUN_OR_CONFIG=NAME, got {pair!r}")
        labels[key.strip()] = name.strip()
    return labels


def _one_text(group: pd.DataFrame, column: str) -> str:
    """The column's value shared by the group's runs; the distinct values joined when they differ."""
    if column not in group:
        return ""
    return " / ".join(sorted({str(v) for v in group[column].dropna() if str(v)}))


def _one_value(group: pd.DataFrame, column: str) -> int | None:
    """The value all runs of a table share (one split means one dataset), None when they do not record it."""
    values = group[column].dropna().unique() if column in group else ()
    return int(values[0]) if len(values) == 1 else None


def _rank_cells(rows: list[Row], metrics: Sequence[str]) -> None:
    for m in metrics:
        o = direction(m)  # best = largest for higher-is-better metrics, smallest otherwise
        means = sorted({round(o * r.cells[m].mean, 12) for r in rows if r.cells[m] is not None}, reverse=True)
        for r in rows:
            cell = r.cells[m]
            if cell is not None:
                place = means.index(round(o * cell.mean, 12)) + 1
                r.cells[m] = Cell(cell.mean, cell.std, cell.n, place if place <= 2 and len(means) > 1 else 0)


def _disambiguate(rows: list[Row]) -> None:
    labels = [r.label for r in rows]
    for i, r in enumerate(rows):
        if labels.count(r.label) > 1:
            rows[i] = dataclasses.replace(r, label=f"{r.label} [{r.group_hash[:6]}]")


def _format_cell(cell: Cell | None, style: str, marks: str = "", *, signed: bool = False) -> str:
    if cell is None:
        return "—"
    mean = f"{cell.mean:+.4f}" if signed else f"{cell.mean:.4f}"
    text = f"{mean} ± {cell.std:.4f}" if cell.n > 1 else mean
    if style == "latex":
        text = latex_escape(text)
        text = {1: rf"\textbf{{{text}}}", 2: rf"\underline{{{text}}}"}.get(cell.rank, text)
        return text + (_latex_marks(marks) if marks else "")
    if style == "html":
        text = {1: f"<strong>{text}</strong>", 2: f"<u>{text}</u>"}.get(cell.rank, text)
        return text + (f"<sup>{html.escape(marks)}</sup>" if marks else "")
    text = {1: f"**{text}**", 2: f"<u>{text}</u>"}.get(cell.rank, text)
    return text + (marks if marks == MARKER else f"<sup>{marks}</sup>" if marks else "")


def _latex_marks(marks: str) -> str:
    return r"$^{\dagger}$" if marks == MARKER else rf"$^{{\mathrm{{{marks}}}}}$"


def _runs_text(row: Row) -> str:
    return f"{row.n_runs}" + (f" ({row.n_diverged} diverged)" if row.n_diverged else "")


def _metric_headers(table: Table, m: str) -> list[str]:
    name = metric_name(m)
    return [f"{name} (validation)", f"{name} (best on test)", f"{name} gap"] if table.protocol_gap else [name]


def _metric_cells(table: Table, row: Row, m: str, style: str) -> list[str]:
    """A metric's cells of a row: the selected value; with `protocol_gap` also best on curve and the gap."""
    cells = [_format_cell(row.cells[m], style, table.marks(row, m))]
    if table.protocol_gap:
        cells += [_format_cell(row.curve_cells.get(m), style), _format_cell(row.gap_cells.get(m), style, signed=True)]
    return cells


def _header(table: Table) -> list[str]:
    return (["model", *(h for m in table.metrics for h in _metric_headers(table, m)), "runs", "train s", "eval s"]
            + (["s to 95%"] if table.show_time_to_quality else []))


def _seconds_to_quality_text(row: Row) -> str:
    # A row without a validation curve (pop; runs older than the measure) has no such time: a dash, not "nan".
    return "—" if math.isnan(row.time_to_quality_seconds) else f"{row.time_to_quality_seconds:.1f}"


def _body(table: Table, style: str) -> list[list[str]]:
    escape = {"latex": latex_escape, "html": html.escape}.get(style, lambda text: text)
    body = [[escape(table.row_label(r)), *[c for m in table.metrics for c in _metric_cells(table, r, m, style)],
             _runs_text(r), f"{r.train_seconds:.1f}", f"{r.eval_seconds:.1f}"]
            + ([_seconds_to_quality_text(r)] if table.show_time_to_quality else []) for r in table.rows]
    # The papers' own numbers: as printed (no std, no ranking, no marker), after the measured rows.
    extra = ["—"] if table.show_time_to_quality else []
    # With the protocol gap, a paper's number stands in the best-on-test column: what such papers report.
    def reported(result: ReportedResult, m: str) -> list[str]:
        value = result.values.get(m, "—")
        return ["—", value, "—"] if table.protocol_gap else [value]

    body += [[escape(result.label), *[c for m in table.metrics for c in reported(result, m)], "—", "—", "—", *extra]
             for result in table.reported]
    return body


def render_markdown(tables: Sequence[Table]) -> str:
    parts = []
    for t in tables:
        parts.append(f"### {t.title}\n\n{tabulate(_body(t, 'markdown'), headers=_header(t), tablefmt='pipe', disable_numparse=True)}\n\n{t.caption()}\n")
    return "\n".join(parts)


def _latex_label(table: Table) -> str:
    return "tab:" + re.sub(r"[^A-Za-z0-9]+", "-", f"{table.dataset}-{table.protocol}-{table.split_hash[:6]}").strip("-")


def render_latex(tables: Sequence[Table]) -> str:
    """A booktabs table per Table: a one-sentence caption above, the protocol details in small type below."""
    parts = []
    for t in tables:
        frame = pd.DataFrame(_body(t, "latex"), columns=[latex_escape(h) for h in _header(t)])
        body = frame.style.hide(axis="index").to_latex(hrules=True, column_format="l" + "r" * (len(frame.columns) - 1))
        notes = latex_escape(t.notes().replace("`", ""))
        parts.append("\\begin{table}[t]\n\\centering\n"
                     f"\\caption{{{latex_escape(t.headline())}}}\\label{{{_latex_label(t)}}}\n"
                     + body + f"\\par\\smallskip\n{{\\footnotesize\\raggedright {notes}\\par}}\n\\end{{table}}\n")
    return "\n".join(parts)


_HTML_STYLE = ("body{font-family:system-ui,sans-serif;margin:2em}table.hbench{border-collapse:collapse;margin:1.5em 0}"
               "table.hbench th,table.hbench td{padding:.25em .7em;border-bottom:1px solid #ccc;text-align:right}"
               "table.hbench th:first-child,table.hbench td:first-child{text-align:left}"
               "table.hbench caption{text-align:left;font-weight:600;margin-bottom:.4em}"
               "table.hbench tfoot td{text-align:left;font-size:.85em;color:#444;border:none;max-width:60em}")


def render_html(tables: Sequence[Table], *, fragment: bool = False) -> str:
    """A full page (UTF-8, with a title and a little CSS), or with `fragment` only the `<table>` elements
    to paste into a page of one's own. Caption: the one-sentence headline; footer: the protocol details."""
    parts = []
    for t in tables:
        header = _header(t)
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "\n".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in _body(t, "html"))
        notes = html.escape(t.notes().replace("`", ""))
        parts.append(f'<table class="hbench">\n<caption>{html.escape(t.headline())}</caption>\n'
                     f"<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n"
                     f'<tfoot><tr><td colspan="{len(header)}">{notes}</td></tr></tfoot>\n</table>\n')
    tables_html = "\n".join(parts)
    if fragment:
        return tables_html
    title = html.escape("hbench: " + ", ".join(dict.fromkeys(t.title for t in tables)))
    return ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{title}</title>\n<style>{_HTML_STYLE}</style>\n</head>\n<body>\n{tables_html}</body>\n</html>\n")


def render_csv(tables: Sequence[Table]) -> str:
    records = []
    for t in tables:
        labels = {r.group_hash: r.label for r in t.rows}
        report = t.significance
        for r in t.rows:
            record = {"dataset": t.dataset, "protocol": t.protocol, "split_hash": t.split_hash, "model": r.label,
                      "group_hash": r.group_hash.partition("@")[0], "runs": r.n_runs, "diverged": r.n_diverged}
            if any(row.study for row in t.rows):  # one configuration in several study folders: which one
                record["study"] = r.study
            for m in t.metrics:
                cell = r.cells[m]
                record[f"{m}_mean"] = cell.mean if cell else np.nan
                record[f"{m}_std"] = cell.std if cell else np.nan
                record[f"{m}_n"] = cell.n if cell else 0
                if t.protocol_gap:
                    for kind, extra in (("curve", r.curve_cells.get(m)), ("gap", r.gap_cells.get(m))):
                        record.update({f"{m}_{kind}_mean": extra.mean if extra else np.nan,
                                       f"{m}_{kind}_std": extra.std if extra else np.nan,
                                       f"{m}_{kind}_n": extra.n if extra else 0})
                if report is not None:
                    record.update(_csv_significance(report, r, m, labels))
            record.update(train_seconds=r.train_seconds, eval_seconds=r.eval_seconds)
            if t.show_time_to_quality:
                record["time_to_quality_seconds"] = r.time_to_quality_seconds
            if report is not None:
                s = report.settings
                record.update(test=s.test, unit=s.unit, alternative=s.alternative, correction=s.correction,
                              alpha=s.alpha, family_size=report.family_size)
            records.append(record)
        for result in t.reported:
            record = {"dataset": t.dataset, "protocol": t.protocol, "split_hash": t.split_hash, "model": result.label,
                      "group_hash": "", "runs": 0, "diverged": 0, "reported": result.citation.text()}
            for m in t.metrics:
                record.update({f"{m}_mean": result.value(m) if m in result.values else np.nan, f"{m}_std": np.nan,
                               f"{m}_n": 0})
            records.append(record)
    buffer = io.StringIO()
    pd.DataFrame(records).to_csv(buffer, index=False)
    return buffer.getvalue()


def _csv_significance(report: SignificanceReport, row: Row, metric: str, labels: dict[str, str]) -> dict:
    """Per cell: vs the baseline (pairs=baseline) its p-values, effect and verdict; with all pairs, whom it beats."""
    if report.settings.pairs == "all":
        return {f"{metric}_better_than": "; ".join(labels[g] for g in report.beats(row.group_hash, metric))}
    c = report.for_cell(row.group_hash, metric)
    baseline = report.baselines.get(metric)
    return {
        f"{metric}_baseline": labels.get(baseline, "") if baseline else "",
        f"{metric}_diff": c.effect.difference if c else np.nan,
        f"{metric}_d_z": c.effect.d_z if c else np.nan,
        f"{metric}_p": c.outcome.p_value if c else np.nan,
        f"{metric}_p_adjusted": c.p_adjusted if c else np.nan,
        f"{metric}_pairs": c.outcome.n if c else 0,
        f"{metric}_pairs_nonzero": c.outcome.n_effective if c else 0,
        f"{metric}_significant": c.significant if c else False,
    }


RENDERERS = {"markdown": render_markdown, "latex": render_latex, "csv": render_csv, "html": render_html}


def render(tables: Sequence[Table], fmt: str, *, fragment: bool = False) -> str:
    """The tables in `fmt`; `fragment`: HTML without the page around the tables (HTML only)."""
    if fmt not in RENDERERS:
        raise HBenchError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fragment and fmt != "html":
        raise HBenchError(f"--fragment is for --format html, not {fmt}")
    return render_html(tables, fragment=True) if fragment else RENDERERS[fmt](tables)
