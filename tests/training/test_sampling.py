import numpy as np
import pytest

from hbench.datasets.store import Interactions
from hbench.errors import HBenchError
from hbench.training.sampling import NegativeSampler


def test_negatives_never_hit_training_items_and_are_uniform() -> None:
    rng = np.random.default_rng(0)
    n_items = 20
    users = np.repeat(np.arange(5), 15)
    items = np.concatenate([rng.choice(n_items, 15, replace=False) for _ in range(5)])
    train = Interactions(users, items)
    sampler = NegativeSampler(train, n_items, np.random.default_rng(1))
    draws = sampler.sample(np.repeat(np.arange(5), 2000), 3)
    for u in range(5):
        seen = set(items[users == u])
        row = draws[u * 2000 : (u + 1) * 2000].ravel()
        assert not seen & set(row.tolist())
        counts = np.bincount(row, minlength=n_items)[sorted(set(range(n_items)) - seen)]
        # Five allowed items, 6000 draws: each about 1200 (a 5-sigma band).
        assert np.all(np.abs(counts - 1200) < 5 * np.sqrt(1200 * 0.8))


def test_epochs_are_reproducible_from_the_generator() -> None:
    train = Interactions(np.array([0, 0, 1, 2]), np.array([0, 1, 2, 3]))
    run = lambda seed: [b for batch in NegativeSampler(train, 10, np.random.default_rng(seed)).epoch(3, 2) for b in batch]  # noqa: E731
    first, again, other = run(5), run(5), run(6)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_user_with_every_item_is_refused() -> None:
    with pytest.raises(HBenchError, match="every item"):
        NegativeSampler(Interactions(np.array([0, 0]), np.array([0, 1])), 2, np.random.default_rng(0))


def test_prefetched_epochs_are_the_epochs_drawn_one_after_another() -> None:
    from hbench.training.sampling import EpochStream

    train = Interactions(np.array([0, 0, 1, 2, 2]), np.array([0, 1, 2, 3, 1]))
    plain = NegativeSampler(train, 10, np.random.default_rng(4))
    expected = [plain.draw_epoch(2) for _ in range(3)]
    with EpochStream(NegativeSampler(train, 10, np.random.default_rng(4)), 2) as stream:
        drawn = [stream.next_epoch() for _ in range(3)]
    for a, b in zip(expected, drawn):
        assert all(np.array_equal(x, y) for x, y in ((a.users, b.users), (a.positives, b.positives),
                                                     (a.negatives, b.negatives)))
        assert a.rng_state_after == b.rng_state_after
    # A sampler restored to an epoch's end state continues with the next epoch.
    resumed = NegativeSampler(train, 10, np.random.default_rng(0))
    resumed.rng.bit_generator.state = expected[1].rng_state_after
    assert np.array_equal(resumed.draw_epoch(2).negatives, expected[2].negatives)
