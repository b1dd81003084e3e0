"""Evaluation protocols as data: one `ProtocolSpec` entry per protocol, all of them in `PROTOCOLS`.

| protocol | candidates | metrics (per user) | selection metric | report metrics |
|---|---|---|---|---|
| `loo`  | the target + the user's stored sampled negatives (HyperML, NCF) | HR@K, nDCG@K, MRR, AUC | nDCG@10 | HR@10, nDCG@10 |
| `full` | all items; training items masked (and validation items at test time) | Recall@K, nDCG@K, HR@K, Precision@K, MRR, AUC | Recall@20 | Recall@20, nDCG@20 |
| `auc`  | DVBPR AUC: all items the user has not interacted with (`auc`) and, when the dataset stores sampled negatives, those (`auc_sampled`) | AUC | AUC | AUC, AUC (sampled) |

Every stage that depends on the protocol reads its entry instead of testing its name: preparation (a
protocol ranking `sampled` candidates needs a split that stores sampled negatives), evaluation (which
candidates are counted, `hbench.evaluation.protocols`), training (the default selection metric and the
metrics `--metric` may name), reports and sweep summaries (the metrics a table shows). Adding a protocol
is one entry below (and its name in `ProtocolName`); a new kind of candidates also needs its counting in
`hbench.evaluation.protocols` and its exported ranking in `hbench.reports.export`.

Foundation module: datasets, a stage below evaluation, need the names and candidate kinds, so this
module imports no stage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from hbench.errors import HBenchError

# The registered protocols' names, for type checkers (checked against `PROTOCOLS` below).
ProtocolName = Literal["loo", "full", "auc"]

# What a target is ranked against. `sampled`: the target and the user's stored sampled negatives (the
# prepared split must carry them); `all`: every item except those the stage masks (training items, and
# validation items too at test time).
Candidates = Literal["sampled", "all"]

# The cut-offs K of `hr@K`, `ndcg@K`, ... when a run names none; the selection and report metrics of the
# entries below use them.
DEFAULT_KS = (10, 20)


@dataclass(frozen=True)
class ExtraMetric:
    """A metric computed a second time on other candidates and stored under its own name.

    `auc_sampled` is `auc` over the stored sampled negatives beside `auc` over all items. Over `sampled`
    candidates it is computed only where the split stores them (a dataset prepared with no negatives has
    none); it may still be named as a selection metric.
    """

    name: str  # its column; tables spell it `metric_name(metric) (candidates)`
    metric: str  # the per-user metric computed (its direction is this metric's)
    candidates: Candidates


@dataclass(frozen=True)
class ProtocolSpec:
    """One evaluation protocol: its candidates and every metric name the rest of hbench asks about."""

    name: ProtocolName
    description: str  # one clause, printed in each table's notes
    candidates: Candidates
    metrics_at_k: tuple[str, ...]  # computed at every cut-off K: `{metric}@{K}`, in this order per K
    metrics: tuple[str, ...]  # computed once, without a cut-off
    selection_metric: str  # the validation metric that selects a checkpoint when a run names none
    report_metrics: tuple[str, ...]  # the test metrics a table or sweep summary shows when none are asked for
    extra_metrics: tuple[ExtraMetric, ...] = ()

    @property
    def needs_sampled_negatives(self) -> bool:
        """Whether the prepared split must store sampled negatives for this protocol to rank at all."""
        return self.candidates == "sampled"

    def metric_names(self, ks: Sequence[int]) -> list[str]:
        """The metrics ranked on the protocol's own candidates (per cut-off, then the others)."""
        return [f"{m}@{k}" for k in ks for m in self.metrics_at_k] + list(self.metrics)

    def produced_metrics(self, ks: Sequence[int]) -> list[str]:
        """Every metric an evaluation may produce: its own, then the extra ones."""
        return self.metric_names(ks) + [extra.name for extra in self.extra_metrics]


PROTOCOLS: Mapping[str, ProtocolSpec] = {spec.name: spec for spec in (
    ProtocolSpec(
        "loo", "leave-one-out, target ranked against the stored sampled negatives", candidates="sampled",
        metrics_at_k=("hr", "ndcg"), metrics=("mrr", "auc"),
        selection_metric="ndcg@10", report_metrics=("hr@10", "ndcg@10"),
    ),
    ProtocolSpec(
        "full", "full ranking over all items, training (and validation) items masked", candidates="all",
        metrics_at_k=("recall", "ndcg", "hr", "precision"), metrics=("mrr", "auc"),
        selection_metric="recall@20", report_metrics=("recall@20", "ndcg@20"),
    ),
    ProtocolSpec(
        "auc", "DVBPR AUC over all non-interacted items (and over the stored sampled negatives)", candidates="all",
        metrics_at_k=(), metrics=("auc",),
        selection_metric="auc", report_metrics=("auc", "auc_sampled"),
        extra_metrics=(ExtraMetric("auc_sampled", "auc", candidates="sampled"),),
    ),
)}

# A name added to the registry but not to `ProtocolName` (or the reverse) fails on import, not in a type check.
if get_args(ProtocolName) != tuple(PROTOCOLS):
    raise RuntimeError(f"ProtocolName {get_args(ProtocolName)} must list the registered protocols {tuple(PROTOCOLS)}")

# Every extra metric by name, for reports that spell a metric or orient it (better = larger or smaller).
EXTRA_METRICS: Mapping[str, ExtraMetric] = {
    extra.name: extra for spec in PROTOCOLS.values() for extra in spec.extra_metrics
}


def get_protocol(name: str) -> ProtocolSpec:
    if name not in PROTOCOLS:
        raise HBenchError(f"unknown protocol {name!r}; choose one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]
