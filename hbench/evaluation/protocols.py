"""Evaluation protocols: which candidates, which metrics, which items are masked at each stage.

| protocol | candidates | metrics (per user) | selection metric |
|---|---|---|---|
| `loo`  | the target + the user's stored sampled negatives (HyperML, NCF) | HR@K, nDCG@K, MRR, AUC | nDCG@10 |
| `full` | all items; training items masked (and validation items at test time) | Recall@K, nDCG@K, HR@K, Precision@K, MRR, AUC | Recall@20 |
| `auc`  | DVBPR AUC: all items the user has not interacted with (`auc`) and, when the dataset stores sampled negatives, those (`auc_sampled`) | AUC | AUC |

The validation stage masks training items; the test stage masks training and validation items. The
same masks hold for every protocol, so validation never looks at test interactions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from hbench.datasets.store import PreparedDataset
from hbench.errors import HBenchError
from hbench.evaluation.metrics import per_user_metrics
from hbench.evaluation.ranking import count_full, count_sampled
from hbench.geometry import Representations
from hbench.ui import QUIET, Feedback

DEFAULT_KS = (10, 20)


@dataclass(frozen=True)
class ProtocolSpec:
    name: str
    description: str
    selection_metric: str

    def metric_names(self, ks: Sequence[int]) -> list[str]:
        if self.name == "loo":
            return [f"{m}@{k}" for k in ks for m in ("hr", "ndcg")] + ["mrr", "auc"]
        if self.name == "full":
            return [f"{m}@{k}" for k in ks for m in ("recall", "ndcg", "hr", "precision")] + ["mrr", "auc"]
        return ["auc"]


PROTOCOLS = {
    "loo": ProtocolSpec("loo", "leave-one-out, target ranked against the stored sampled negatives", "ndcg@10"),
    "full": ProtocolSpec("full", "full ranking over all items, training (and validation) items masked", "recall@20"),
    "auc": ProtocolSpec("auc", "DVBPR AUC over all non-interacted items (and over the stored sampled negatives)", "auc"),
}

TIE_RULE = "ties pessimistic (a negative scored equal to the target ranks above it)"


def get_protocol(name: str) -> ProtocolSpec:
    if name not in PROTOCOLS:
        raise HBenchError(f"unknown protocol {name!r}; choose one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def evaluate(
    reps: Representations,
    dataset: PreparedDataset,
    *,
    stage: str,
    protocol: str,
    ks: Sequence[int] = DEFAULT_KS,
    feedback: Feedback = QUIET,
) -> pd.DataFrame:
    """Per-user metrics of `reps` on the validation (`stage="valid"`) or test split of `dataset`."""
    spec = get_protocol(protocol)
    if stage == "valid":
        targets, exclude, negatives = dataset.valid, [dataset.train], dataset.valid_negatives
    elif stage == "test":
        targets, exclude, negatives = dataset.test, [dataset.train, dataset.valid], dataset.test_negatives
    else:
        raise ValueError(f"stage must be 'valid' or 'test', not {stage!r}")
    if len(targets) == 0:
        raise HBenchError(f"dataset {dataset.name!r} has no {stage} interactions to evaluate on")
    label = f"{stage} ({protocol})"

    def sampled(metrics: Sequence[str]) -> pd.DataFrame:
        if negatives is None:
            raise HBenchError(
                f"dataset {dataset.name!r} was prepared without sampled candidates, which protocol {protocol!r} "
                f"needs; run `hbench prepare {dataset.name} --negatives 100 --force` or use --protocol full"
            )
        counts = count_sampled(reps, targets, negatives, feedback=feedback, description=label)
        return per_user_metrics(counts.users, counts.n_ge, counts.n_neg, ks, metrics)

    def full(metrics: Sequence[str]) -> pd.DataFrame:
        counts = count_full(reps, targets, exclude, feedback=feedback, description=label)
        return per_user_metrics(counts.users, counts.n_ge, counts.n_neg, ks, metrics)

    if protocol == "loo":
        return sampled(spec.metric_names(ks))
    if protocol == "full":
        return full(spec.metric_names(ks))
    frame = full(["auc"])
    if negatives is not None:
        frame = frame.merge(sampled(["auc"]).rename(columns={"auc": "auc_sampled"})[["user", "auc_sampled"]], on="user")
    return frame
