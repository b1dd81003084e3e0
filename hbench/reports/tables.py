"""Paper-style tables: statistics computed once (`build_tables`), rendered many ways.

One table per dataset × protocol × split: a row per model configuration, a column per test metric, cells
mean ± sample standard deviation over seeds, the best value of each column in bold and the second
underlined, and the training/evaluation time of each row (Cornac-style). A note under each table names
the protocol, the selection rule and the tie rule.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tabulate import tabulate

from hbench.errors import HBenchError
from hbench.evaluation.protocols import PROTOCOLS, TIE_RULE

DEFAULT_METRICS = {"loo": ("hr@10", "ndcg@10"), "full": ("recall@20", "ndcg@20"), "auc": ("auc", "auc_sampled")}
FORMATS = ("markdown", "latex", "csv")


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


@dataclass(frozen=True)
class Table:
    dataset: str
    protocol: str
    split_hash: str
    metrics: tuple[str, ...]
    rows: list[Row]
    selection_metrics: tuple[str, ...]
    shared_settings: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        return f"{self.dataset} — {self.protocol}"

    def caption(self) -> str:
        spec = PROTOCOLS[self.protocol]
        seeds = sorted({r.n_runs - r.n_diverged for r in self.rows})
        seed_text = "/".join(map(str, seeds))
        return (
            f"Protocol `{self.protocol}`: {spec.description}; {TIE_RULE}. Test metrics of the checkpoint selected on "
            f"validation {', '.join(self.selection_metrics)}; mean ± std over {seed_text} seed(s); best in bold, "
            f"second underlined. Split {self.split_hash[:10]}."
            + (f" All rows: {', '.join(self.shared_settings)}." if self.shared_settings else "")
        )


def build_tables(runs: pd.DataFrame, metrics: Sequence[str] | None = None) -> list[Table]:
    tables = []
    for (dataset, protocol, split_hash), group in runs.groupby(["dataset", "protocol", "split_hash"], sort=True):
        wanted = tuple(metrics) if metrics else tuple(m for m in DEFAULT_METRICS[protocol] if f"test/{m}" in group)
        missing = [m for m in wanted if f"test/{m}" not in group]
        if missing:
            available = sorted(c[5:] for c in group.columns if c.startswith("test/"))
            raise HBenchError(f"metric(s) {', '.join(missing)} not in the runs of {dataset}/{protocol}; available: {', '.join(available)}")
        # Settings every row shares go under the table; labels keep only what tells rows apart.
        settings = {key: set(text.split()) for key, text in zip(group["group_hash"], group["settings"])}
        shared = set.intersection(*settings.values()) if len(settings) > 1 else set()
        rows = []
        for (model, group_hash), runs_of_row in group.groupby(["model", "group_hash"], sort=False):
            own = sorted(settings[group_hash] - shared)
            label = model + (f" ({', '.join(own)})" if own else "")
            done = runs_of_row[runs_of_row["status"] == "completed"]
            cells: dict[str, Cell | None] = {}
            for m in wanted:
                values = done[f"test/{m}"].dropna().to_numpy(float)
                cells[m] = Cell(values.mean(), values.std(ddof=1) if len(values) > 1 else 0.0, len(values), 0) if len(values) else None
            rows.append(Row(label, group_hash, len(runs_of_row), int((runs_of_row["status"] == "diverged").sum()), cells,
                            float(done["train_seconds"].mean()) if len(done) else float("nan"),
                            float(done["eval_seconds"].mean()) if len(done) else float("nan")))
        _rank_cells(rows, wanted)
        _disambiguate(rows)
        rows.sort(key=lambda r: r.label)
        tables.append(Table(dataset, protocol, split_hash, wanted, rows, tuple(sorted(group["selection_metric"].unique())),
                            tuple(sorted(shared))))
    return tables


def _rank_cells(rows: list[Row], metrics: Sequence[str]) -> None:
    for m in metrics:
        means = sorted({round(r.cells[m].mean, 12) for r in rows if r.cells[m] is not None}, reverse=True)
        for r in rows:
            cell = r.cells[m]
            if cell is not None:
                place = means.index(round(cell.mean, 12)) + 1
                r.cells[m] = Cell(cell.mean, cell.std, cell.n, place if place <= 2 and len(means) > 1 else 0)


def _disambiguate(rows: list[Row]) -> None:
    labels = [r.label for r in rows]
    for i, r in enumerate(rows):
        if labels.count(r.label) > 1:
            rows[i] = dataclasses.replace(r, label=f"{r.label} [{r.group_hash[:6]}]")


def _format_cell(cell: Cell | None, style: str) -> str:
    if cell is None:
        return "—"
    text = f"{cell.mean:.4f} ± {cell.std:.4f}" if cell.n > 1 else f"{cell.mean:.4f}"
    if style == "latex":
        text = text.replace("±", r"$\pm$")
        return {1: rf"\textbf{{{text}}}", 2: rf"\underline{{{text}}}"}.get(cell.rank, text)
    return {1: f"**{text}**", 2: f"<u>{text}</u>"}.get(cell.rank, text)


def _runs_text(row: Row) -> str:
    return f"{row.n_runs}" + (f" ({row.n_diverged} diverged)" if row.n_diverged else "")


def _header(table: Table) -> list[str]:
    return ["model", *table.metrics, "runs", "train s", "eval s"]


def _body(table: Table, style: str) -> list[list[str]]:
    return [[r.label if style != "latex" else r.label.replace("_", r"\_"),
             *[_format_cell(r.cells[m], style) for m in table.metrics], _runs_text(r),
             f"{r.train_seconds:.1f}", f"{r.eval_seconds:.1f}"] for r in table.rows]


def render_markdown(tables: Sequence[Table]) -> str:
    parts = []
    for t in tables:
        parts.append(f"### {t.title}\n\n{tabulate(_body(t, 'markdown'), headers=_header(t), tablefmt='pipe', disable_numparse=True)}\n\n{t.caption()}\n")
    return "\n".join(parts)


def render_latex(tables: Sequence[Table]) -> str:
    parts = []
    for t in tables:
        frame = pd.DataFrame(_body(t, "latex"), columns=[h.replace("_", r"\_") for h in _header(t)])
        body = frame.style.hide(axis="index").to_latex(hrules=True, column_format="l" + "r" * (len(frame.columns) - 1))
        caption = t.caption().replace("`", "").replace("_", r"\_").replace("±", r"$\pm$")
        parts.append("\\begin{table}[t]\n\\centering\n" + body + f"\\caption{{{t.title}. {caption}}}\n\\end{{table}}\n")
    return "\n".join(parts)


def render_csv(tables: Sequence[Table]) -> str:
    records = []
    for t in tables:
        for r in t.rows:
            record = {"dataset": t.dataset, "protocol": t.protocol, "split_hash": t.split_hash, "model": r.label,
                      "group_hash": r.group_hash, "runs": r.n_runs, "diverged": r.n_diverged}
            for m in t.metrics:
                cell = r.cells[m]
                record[f"{m}_mean"] = cell.mean if cell else np.nan
                record[f"{m}_std"] = cell.std if cell else np.nan
                record[f"{m}_n"] = cell.n if cell else 0
            record.update(train_seconds=r.train_seconds, eval_seconds=r.eval_seconds)
            records.append(record)
    buffer = io.StringIO()
    pd.DataFrame(records).to_csv(buffer, index=False)
    return buffer.getvalue()


RENDERERS = {"markdown": render_markdown, "latex": render_latex, "csv": render_csv}


def render(tables: Sequence[Table], fmt: str) -> str:
    if fmt not in RENDERERS:
        raise HBenchError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return RENDERERS[fmt](tables)
