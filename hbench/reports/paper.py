"""The numbers the seed papers report, as data with their citations, for `hbench table --with-paper`.

Only numbers written down in the project's reference notes (shared/reference/models.md and published.md)
are here; where the notes say nothing (HyperML's Amazon sets, HVACF's other metrics, table numbers) nothing
is entered.
Values keep the precision the paper prints (as strings), so 0.804 is never shown as 0.8040.

A reported row joins a table only when the table's runs used the paper's data the paper's way: the same
hbench dataset and protocol, at least 90% of the paper's users (a sample or a subset is not the paper's
data) and, for sampled protocols, the same number of sampled negatives. A table says which reported rows
it withheld and why (a paper's rows at dimension 50 are not set beside runs at 32). A reported row is never ranked (bold/underline) nor tested, because there is no
per-seed or per-user data behind it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hbench.protocols import ProtocolName


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
    protocol: ProtocolName  # hbench protocol (an entry of hbench.protocols.PROTOCOLS)
    values: Mapping[str, str]  # hbench metric name -> value as printed
    citation: Citation
    note: str = ""
    users: int = 0  # users in the paper's data (approximate where the source says "about")
    negatives: int | None = None  # sampled negatives per user of the paper's protocol; None: not sampled
    dim: int | None = None  # the embedding dimension the paper reports at; None: the notes do not say

    @property
    def label(self) -> str:
        return f"{self.model} (reported, {self.citation.short})"

    def value(self, metric: str) -> float | None:
        return float(self.values[metric]) if metric in self.values else None


HVACF = Citation("Shimizu et al. 2024", "CVPR 2024 Workshops", 2024, "arXiv 2409.02599")
HYPERML = Citation("Vinh Tran et al. 2020", "WSDM 2020", 2020, "arXiv 1809.01703 v3")
HGCF = Citation("Sun et al. 2021", "WWW 2021", 2021, "HGCF: Hyperbolic Graph Convolution Networks for "
                "Collaborative Filtering", table="2")
_HVACF_AUC = ("AUC of the DVBPR protocol, shown in hbench's `auc` column (all non-interacted items, DVBPR's "
              "paper definition); the notes do not say whether the paper used all items or sampled negatives")
_HYPERML_LOO = "leave-one-out with 100 sampled negatives; numbers as quoted by public leaderboards"
# The one protocol difference on the same split: HGCF's code has no validation split and reports test
# metrics during training, while hbench selects the epoch on a validation item carved from each user's
# training items (so hbench trains on one item per user less and never looks at test to stop).
_HGCF_FULL = ("HGCF's own train/test split, full ranking with training items masked, dim 50; the paper has no "
              "validation split and reports test metrics during training, hbench selects on a validation item "
              "carved from each user's training items")

# Users: DVBPR's files as shared/reference/datasets.md gives them ("about 34K" / "about 97K"); MovieLens from
# GroupLens' own statistics.
REPORTED: tuple[ReportedResult, ...] = (
    ReportedResult("hvacf", "Amazon Women", "amazon-women", "auc", {"auc": "0.804"}, HVACF, _HVACF_AUC,
                   users=97_000),
    ReportedResult("hvacf", "Amazon Men", "amazon-men", "auc", {"auc": "0.830"}, HVACF, _HVACF_AUC,
                   users=34_000),
    # ZOZOTOWN's TOWN Women is private: recorded for completeness, never matches an hbench table.
    ReportedResult("hvacf", "TOWN Women", None, "auc", {"auc": "0.810"}, HVACF, _HVACF_AUC),
    ReportedResult("hyperml", "MovieLens 1M", "movielens-1m", "loo", {"hr@10": "0.7563", "ndcg@10": "0.5620"},
                   HYPERML, _HYPERML_LOO, users=6_040, negatives=100),
    ReportedResult("hyperml", "MovieLens 20M", "movielens-20m", "loo", {"hr@10": "0.8736", "ndcg@10": "0.6404"},
                   HYPERML, _HYPERML_LOO, users=138_493, negatives=100),
    # HGCF Table 2, Amazon-CD, the rows of the models hbench has (BPRMF is hbench's bpr). BPRMF's NDCG@20
    # (0.0974, above its own NDCG@10 by more than any other row) is kept as printed: likely a typo.
    *(ReportedResult(model, "Amazon-CD", "amazon-cd", "full",
                     {"recall@10": r10, "recall@20": r20, "ndcg@10": n10, "ndcg@20": n20}, HGCF, _HGCF_FULL,
                     users=22_947, dim=50)
      for model, r10, r20, n10, n20 in (("bpr", "0.0779", "0.1200", "0.0610", "0.0974"),
                                        ("cml", "0.0864", "0.1341", "0.0639", "0.0813"),
                                        ("lightgcn", "0.0929", "0.1404", "0.0726", "0.0881"),
                                        ("hgcf", "0.0962", "0.1455", "0.0751", "0.0909"))),
)

# Below this share of the paper's users, the runs' data is a sample or a subset (5-core filters and
# cleaning drop a few users, never a tenth).
MIN_USER_SHARE = 0.9


def reported_for(dataset: str, protocol: str, metrics: Sequence[str], *, n_users: int | None,
                 negatives: int | None, dim: int | None = None, reported: Sequence[ReportedResult] = REPORTED,
                 ) -> tuple[tuple[ReportedResult, ...], tuple[str, ...]]:
    """The reported results that fit a table of `dataset` × `protocol` whose runs saw `n_users` users and
    `negatives` sampled negatives per user at embedding dimension `dim`, and a reason for each one on this
    dataset and protocol that does not fit (None: the runs do not record the number, or differ in it)."""
    shown, withheld = [], []
    for r in reported:
        if r.dataset != dataset or r.protocol != protocol or not any(m in r.values for m in metrics):
            continue
        if n_users is None or n_users < MIN_USER_SHARE * r.users:
            withheld.append(f"{r.label}: the paper's data has about {r.users:,} users, these runs "
                            + ("do not record theirs" if n_users is None else f"{n_users:,} (a sample or subset)"))
        elif r.negatives is not None and negatives != r.negatives:
            withheld.append(f"{r.label}: the paper ranks against {r.negatives} sampled negatives, these runs "
                            + ("do not record theirs" if negatives is None else f"against {negatives}"))
        elif r.dim is not None and dim != r.dim:
            withheld.append(f"{r.label}: the paper reports at dimension {r.dim}, these runs "
                            + ("do not share one" if dim is None else f"at {dim}"))
        else:
            shown.append(r)
    return tuple(shown), tuple(withheld)


def describe(results: Sequence[ReportedResult], withheld: Sequence[str] = ()) -> str:
    """The footnote for reported rows: their sources, that they take no part in ranking or tests, and
    which ones were withheld because the runs' data or protocol differ from the paper's."""
    parts = []
    if results:
        # One entry per source (citation, data, note), naming every model it reports.
        by_source: dict[str, list[str]] = {}
        for r in results:
            by_source.setdefault(f"{r.citation.text()} ({r.paper_dataset}; {r.note})", []).append(r.model)
        sources = "; ".join(sorted(f"{', '.join(sorted(models))}: {source}" for source, models in by_source.items()))
        parts.append(f"Rows marked 'reported' are the papers' own numbers, not hbench runs ({sources}); they have "
                     "no std and take no part in the bold/underline ranking or in significance tests.")
    if withheld:
        parts.append(f"Not shown, as not comparable: {'; '.join(withheld)}.")
    return " ".join(parts)

