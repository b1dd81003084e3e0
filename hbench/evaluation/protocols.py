"""Evaluating a protocol: the candidates its entry names (`hbench.protocols`), counted and turned into metrics.

The protocols themselves (candidates, metric names, selection and report metrics) are entries in
`hbench.protocols.PROTOCOLS`; this module only knows how to count each kind of candidates:

- `sampled`: each target against the user's stored sampled negatives of that stage;
- `all`: each target against every item but the masked ones.

The validation stage masks training items; the test stage masks training and validation items. The
same masks hold for every protocol, so validation never looks at test interactions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd

from hbench.datasets.store import PreparedDataset
from hbench.errors import HBenchError
from hbench.evaluation.metrics import per_user_metrics
from hbench.evaluation.ranking import count_full, count_sampled
from hbench.geometry import Representations
from hbench.protocols import DEFAULT_KS, Candidates, get_protocol
from hbench.ui import QUIET, Feedback

TIE_RULE = "ties pessimistic (a negative scored equal to the target ranks above it)"


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
        targets, negatives = dataset.valid, dataset.valid_negatives
    elif stage == "test":
        targets, negatives = dataset.test, dataset.test_negatives
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
        counts = count_full(reps, targets, dataset.pairs_through(stage), feedback=feedback, description=label)
        return per_user_metrics(counts.users, counts.n_ge, counts.n_neg, ks, metrics)

    ranked_on: dict[Candidates, Callable[[Sequence[str]], pd.DataFrame]] = {"sampled": sampled, "all": full}
    frame = ranked_on[spec.candidates](spec.metric_names(ks))
    for extra in spec.extra_metrics:
        if extra.candidates == "sampled" and negatives is None:
            continue  # an extra metric over sampled candidates exists only where the split stores them
        column = ranked_on[extra.candidates]([extra.metric]).rename(columns={extra.metric: extra.name})
        frame = frame.merge(column[["user", extra.name]], on="user")
    return frame
