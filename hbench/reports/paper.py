"""The numbers the seed papers report, as data with their citations, for `hbench table --with-paper`.

Only numbers written down in the project's reference notes (shared/reference/models.md) are here; where
the notes say nothing (HyperML's Amazon sets, HVACF's other metrics, table numbers) nothing is entered.
Values keep the precision the paper prints (as strings), so 0.804 is never shown as 0.8040.

A reported row joins a table only when its hbench dataset and protocol are the table's; it is never
ranked (bold/underline) nor tested, because there is no per-seed or per-user data behind it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Citation:
    short: str  # "Shimizu et al. 2024": what row labels show
    venue: str
    year: int
    reference: str  # arXiv id or title: where to look the number up
    table: str | None = None  # table number in the paper, when known

    def text(self) -> str:
        where = f", Table {self.table}" if self.table else ""
        return f"{self.short}, {self.venue}, {self.reference}{where}"


@dataclass(frozen=True)
class ReportedResult:
    """One paper's numbers for one model on one dataset under one protocol."""

    model: str  # hbench model name
    paper_dataset: str  # the dataset as the paper names it
    dataset: str | None  # hbench dataset name; None when hbench has no such dataset (never shown)
    protocol: str  # hbench protocol: loo | full | auc
    values: Mapping[str, str]  # hbench metric name -> value as printed
    citation: Citation
    note: str = ""

    @property
    def label(self) -> str:
        return f"{self.model} (reported, {self.citation.short})"

    def value(self, metric: str) -> float | None:
        return float(self.values[metric]) if metric in self.values else None


HVACF = Citation("Shimizu et al. 2024", "CVPR 2024 Workshops", 2024, "arXiv 2409.02599")
HYPERML = Citation("Vinh Tran et al. 2020", "WSDM 2020", 2020, "arXiv 1809.01703 v3")
_HVACF_AUC = ("AUC of the DVBPR protocol, shown in hbench's `auc` column (all non-interacted items, DVBPR's "
              "paper definition); the notes do not say whether the paper used all items or sampled negatives")
_HYPERML_LOO = "leave-one-out with 100 sampled negatives; numbers as quoted by public leaderboards"

REPORTED: tuple[ReportedResult, ...] = (
    ReportedResult("hvacf", "Amazon Women", "amazon-women", "auc", {"auc": "0.804"}, HVACF, _HVACF_AUC),
    ReportedResult("hvacf", "Amazon Men", "amazon-men", "auc", {"auc": "0.830"}, HVACF, _HVACF_AUC),
    # ZOZOTOWN's TOWN Women is private: recorded for completeness, never matches an hbench table.
    ReportedResult("hvacf", "TOWN Women", None, "auc", {"auc": "0.810"}, HVACF, _HVACF_AUC),
    ReportedResult("hyperml", "MovieLens 1M", "movielens-1m", "loo", {"hr@10": "0.7563", "ndcg@10": "0.5620"},
                   HYPERML, _HYPERML_LOO),
    ReportedResult("hyperml", "MovieLens 20M", "movielens-20m", "loo", {"hr@10": "0.8736", "ndcg@10": "0.6404"},
                   HYPERML, _HYPERML_LOO),
)


def reported_for(dataset: str, protocol: str, metrics: Sequence[str],
                 reported: Sequence[ReportedResult] = REPORTED) -> tuple[ReportedResult, ...]:
    """The reported results for a table of `dataset` × `protocol` that share at least one of its metrics."""
    return tuple(r for r in reported
                 if r.dataset == dataset and r.protocol == protocol and any(m in r.values for m in metrics))


def describe(results: Sequence[ReportedResult]) -> str:
    """The footnote for reported rows: their sources, and that they take no part in ranking or tests."""
    if not results:
        return ""
    sources = "; ".join(sorted({f"{r.model}: {r.citation.text()} ({r.paper_dataset}; {r.note})" for r in results}))
    return (f"Rows marked 'reported' are the papers' own numbers, not hbench runs ({sources}); they have no std "
            "and take no part in the bold/underline ranking or in significance tests.")

