"""`evaluate()` on a prepared dataset: stage masks and the DVBPR AUC protocol against brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hbench.errors import HBenchError
from hbench.evaluation.protocols import evaluate
from hbench.geometry import DotProduct, Representations
from hbench.protocols import DEFAULT_KS, PROTOCOLS


def _random_reps(ds, seed: int = 0) -> Representations:
    g = torch.Generator().manual_seed(seed)
    return Representations(torch.randn(ds.n_users, 8, generator=g, dtype=torch.float64),
                           torch.randn(ds.n_items, 8, generator=g, dtype=torch.float64), DotProduct())


def test_auc_protocol_full_and_sampled_match_brute_force(tiny_dataset) -> None:
    ds = tiny_dataset
    reps = _random_reps(ds)
    frame = evaluate(reps, ds, stage="test", protocol="auc").set_index("user")
    scores = (reps.users @ reps.items.T).numpy()
    known = {}
    for part in (ds.train, ds.valid, ds.test):
        for u, i in zip(part.users, part.items):
            known.setdefault(int(u), set()).add(int(i))
    for u, t in zip(ds.test.users[:40], ds.test.items[:40]):
        # Test stage masks train and validation items; the target's own negatives are all other unseen items.
        negatives = [j for j in range(ds.n_items) if j not in known[int(u)]]
        expected_full = np.mean([scores[u, t] > scores[u, j] for j in negatives])
        expected_sampled = np.mean([scores[u, t] > scores[u, j] for j in ds.test_negatives[u]])
        assert frame.loc[u, "auc"] == pytest.approx(expected_full)
        assert frame.loc[u, "auc_sampled"] == pytest.approx(expected_sampled)


def test_validation_stage_never_masks_test_items(tiny_dataset) -> None:
    """At validation time a test item is an ordinary candidate: masking it would leak the test split."""
    ds = tiny_dataset
    reps = _random_reps(ds, seed=1)
    frame = evaluate(reps, ds, stage="valid", protocol="auc").set_index("user")
    scores = (reps.users @ reps.items.T).numpy()
    train = {}
    for u, i in zip(ds.train.users, ds.train.items):
        train.setdefault(int(u), set()).add(int(i))
    u, t = int(ds.valid.users[0]), int(ds.valid.items[0])
    negatives = [j for j in range(ds.n_items) if j not in train.get(u, set()) and j != t]
    assert frame.loc[u, "auc"] == pytest.approx(np.mean([scores[u, t] > scores[u, j] for j in negatives]))


def test_sampled_protocol_without_candidates_is_a_clear_error(tiny_dataset) -> None:
    import dataclasses

    ds = dataclasses.replace(tiny_dataset, test_negatives=None)
    with pytest.raises(HBenchError, match="prepared without sampled candidates"):
        evaluate(_random_reps(ds), ds, stage="test", protocol="loo")


@pytest.mark.parametrize("name", list(PROTOCOLS))
def test_every_protocol_evaluates_to_the_metrics_its_entry_names(tiny_dataset, name: str) -> None:
    """The registry entry alone decides the columns (their order is per_user_metrics')."""
    frame = evaluate(_random_reps(tiny_dataset), tiny_dataset, stage="valid", protocol=name)
    assert sorted(frame.columns) == sorted(["user", "n_targets", *PROTOCOLS[name].produced_metrics(DEFAULT_KS)])


def test_an_extra_metric_over_sampled_candidates_is_left_out_without_them(tiny_dataset) -> None:
    import dataclasses

    ds = dataclasses.replace(tiny_dataset, valid_negatives=None)
    frame = evaluate(_random_reps(ds), ds, stage="valid", protocol="auc")
    assert list(frame.columns) == ["user", "n_targets", "auc"]
