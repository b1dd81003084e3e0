"""The statistics of hbench.reports.significance against hand-worked cases and direct scipy/statsmodels calls."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from hbench.errors import HBenchError
from hbench.reports import significance as sig
from hbench.reports.significance import (
    SignificanceSettings,
    bootstrap_means,
    bootstrap_p_value,
    cohens_dz,
    correct,
    direction,
    effect_size,
    paired_test,
    paired_values,
)
from tests.reports.runfiles import write_run

FIVE = np.array([1.0, 2.0, 3.0, 4.0, 5.0])


def test_five_pair_t_test_by_hand() -> None:
    # d = 1..5: mean 3, sample sd √2.5, t = 3 / (√2.5/√5) = 4.2426 with 4 df. The one-sided p from the
    # closed-form Student CDF for ν = 4: F(t) = 1/2 + 3/8 · s · (1 − t²/(12(1 + t²/4))), s = t/√(1 + t²/4).
    t = 3 / math.sqrt(2.5 / 5)
    s = t / math.sqrt(1 + t * t / 4)
    p_hand = 1 - (0.5 + 3 / 8 * s * (1 - t * t / (12 * (1 + t * t / 4))))
    out = paired_test(FIVE + 10, np.full(5, 10.0), "ttest")
    assert out.statistic == pytest.approx(4.242640687, rel=1e-9)
    assert out.p_value == pytest.approx(p_hand, rel=1e-9) and out.p_value == pytest.approx(0.0066178, abs=1e-7)
    assert (out.n, out.n_effective) == (5, 5)


@pytest.mark.parametrize("alternative", ["greater", "two-sided"])
def test_t_test_matches_scipy(alternative: str) -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(0.3, 1, 40), rng.normal(0.0, 1, 40)
    out = paired_test(x, y, "ttest", alternative=alternative)
    assert out.p_value == pytest.approx(stats.ttest_1samp(x - y, 0.0, alternative=alternative).pvalue, rel=1e-12)


def test_wilcoxon_with_zeros_by_hand() -> None:
    # Zeros are dropped (n_eff = 5); |d| ranks 1..5, the negative one has rank 2, so W+ = 13. Under H0 each of
    # the 2^5 sign patterns is equally likely; W+ ≥ 13 ⇔ the ranks with minus sign sum to ≤ 2: {}, {1}, {2}.
    d = np.array([0.0, 1.0, -2.0, 3.0, 0.0, 4.0, 5.0])
    out = paired_test(d, np.zeros_like(d), "wilcoxon")
    assert out.statistic == 13 and out.p_value == pytest.approx(3 / 32)
    assert (out.n, out.n_effective) == (7, 5)
    only_positive = paired_test(np.array([0, 0, 1, 2, 3, 4.0]), np.zeros(6), "wilcoxon")
    assert only_positive.p_value == pytest.approx(1 / 16) and only_positive.n_effective == 4


def test_wilcoxon_matches_scipy_on_ties() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.integers(0, 2, 300).astype(float), rng.integers(0, 2, 300).astype(float)  # binary: many zeros and ties
    x[:40] = 1.0
    out = paired_test(x, y, "wilcoxon")
    reference = stats.wilcoxon(x, y, zero_method="wilcox", alternative="greater")
    assert out.p_value == pytest.approx(reference.pvalue, rel=1e-12)
    assert out.n_effective == int(np.count_nonzero(x - y))


def test_exact_sign_flip_permutation_by_hand() -> None:
    # All 32 sign patterns of 1..5: only the observed one reaches a mean of 3 → p = 1/32.
    assert paired_test(FIVE, np.zeros(5), "permutation").p_value == pytest.approx(1 / 32)
    # d = (1, −2, 3, 4, 5), sum 11: a flipped set S gives 15 − 2·ΣS ≥ 11 ⇔ ΣS ≤ 2: {}, {1}, {2} → 3/32.
    out = paired_test(np.array([1.0, -2, 3, 4, 5]), np.zeros(5), "permutation")
    assert out.p_value == pytest.approx(3 / 32) and "exact" in out.note


def test_randomised_permutation_is_seeded_and_close_to_the_t_test() -> None:
    rng = np.random.default_rng(11)
    d = rng.normal(0.15, 1.0, 400)
    a = paired_test(d, np.zeros(400), "permutation", seed=1, n_resamples=4999)
    b = paired_test(d, np.zeros(400), "permutation", seed=1, n_resamples=4999)
    c = paired_test(d, np.zeros(400), "permutation", seed=2, n_resamples=4999)
    assert a.p_value == b.p_value and a.p_value != c.p_value
    # With n = 400 the randomisation distribution of the mean is close to normal: p agrees with the t-test.
    assert a.p_value == pytest.approx(stats.ttest_1samp(d, 0, alternative="greater").pvalue, abs=0.01)


def test_bootstrap_p_value_rule_by_hand() -> None:
    distribution = np.array([-0.4, 0.6, 1.0, 1.4, 2.2])  # centred on the observed 0.8: -1.2 -0.2 0.2 0.6 1.4
    assert bootstrap_p_value(distribution, 0.8, "greater") == pytest.approx(2 / 6)  # only 1.4 ≥ 0.8
    assert bootstrap_p_value(distribution, 0.8, "two-sided") == pytest.approx(3 / 6)  # |-1.2| and 1.4


def test_bootstrap_ci_is_scipy_and_p_value_agrees_with_the_t_test() -> None:
    rng = np.random.default_rng(7)
    d = rng.normal(0.1, 1.0, 500)
    distribution, (low, high), method = bootstrap_means(d, seed=4, n_resamples=2999)
    reference = stats.bootstrap((d,), np.mean, n_resamples=2999, method="BCa", rng=np.random.default_rng(4))
    assert method == "BCa" and (low, high) == pytest.approx((reference.confidence_interval.low,
                                                            reference.confidence_interval.high))
    assert np.allclose(distribution, reference.bootstrap_distribution)
    out = paired_test(d, np.zeros(500), "bootstrap", seed=4, n_resamples=2999)
    assert out.p_value == pytest.approx(stats.ttest_1samp(d, 0, alternative="greater").pvalue, abs=0.015)


def test_degenerate_differences() -> None:
    for test in sig.TESTS:
        zero = paired_test(np.ones(6), np.ones(6), test)
        assert (zero.p_value, zero.n_effective) == (1.0, 0) and "zero" in zero.note
        single = paired_test(np.ones(1), np.zeros(1), test)
        assert math.isnan(single.p_value) and "at least 2" in single.note
    constant = paired_test(np.full(4, 2.0), np.ones(4), "bootstrap", n_resamples=999)
    assert constant.p_value == pytest.approx(1 / 1000)  # every centred resample is 0 < 1
    assert cohens_dz(np.zeros(5)) == 0.0 and cohens_dz(np.full(5, -1.0)) == -math.inf


def test_differences_constant_up_to_rounding_count_as_constant() -> None:
    # 0.2 − 0.1 and 0.3 − 0.2 differ in the last bit: scipy's t is then ~1e16 instead of its constant limit.
    a, b = np.array([0.2, 0.3, 0.4]), np.array([0.1, 0.2, 0.3])
    d = a - b
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy's own "precision loss" warning: the point here
        assert np.ptp(d) > 0 and abs(stats.ttest_rel(a, b).statistic) > 1e14
    out = paired_test(a, b, "ttest")
    assert (out.statistic, out.p_value, out.note) == (math.inf, 0.0, "differences are constant (zero variance)")
    assert paired_test(b, a, "ttest").p_value == 1.0
    assert cohens_dz(d) == math.inf and cohens_dz(-d) == -math.inf
    assert not sig.is_constant(np.array([0.1, 0.1 + 1e-6]))  # a real difference, however small


def test_effect_size_by_hand() -> None:
    effect = effect_size(FIVE + 1, np.ones(5), seed=0, n_resamples=999)
    assert (effect.mean_a, effect.mean_b, effect.difference) == pytest.approx((4.0, 1.0, 3.0))
    assert effect.d_z == pytest.approx(3 / math.sqrt(2.5))
    assert effect.ci_low <= 3.0 <= effect.ci_high and effect.ci_method == "BCa"
    # Lower-is-better orientation flips d_z, not the raw difference.
    assert effect_size(FIVE + 1, np.ones(5), -1, with_ci=False).d_z == pytest.approx(-3 / math.sqrt(2.5))


def test_corrections_by_hand_and_against_statsmodels() -> None:
    p = [0.01, 0.04, 0.03]
    # Holm: sorted 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → made monotone 0.03, 0.06, 0.06.
    adjusted, rejected = correct(p, "holm", 0.05)
    assert adjusted == pytest.approx([0.03, 0.06, 0.06]) and rejected.tolist() == [True, False, False]
    # Benjamini–Hochberg: 0.01·3/1, 0.03·3/2, 0.04·3/3 → step-up minimum 0.03, 0.04, 0.04: all at 0.05.
    adjusted, rejected = correct(p, "bh", 0.05)
    assert adjusted == pytest.approx([0.03, 0.04, 0.04]) and rejected.all()
    adjusted, rejected = correct(p, "bonferroni", 0.05)
    assert adjusted == pytest.approx([0.03, 0.12, 0.09]) and rejected.tolist() == [True, False, False]
    adjusted, rejected = correct(p, "none", 0.035)
    assert adjusted == pytest.approx(p) and rejected.tolist() == [True, False, True]
    # Untested comparisons (NaN) are not part of the family.
    adjusted, rejected = correct([0.01, math.nan, 0.04], "holm", 0.05)
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.04)
    many = np.random.default_rng(0).uniform(0, 0.1, 20)
    assert correct(many, "bh", 0.05)[0] == pytest.approx(multipletests(many, 0.05, "fdr_bh")[1])


def test_direction_is_a_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    assert direction("ndcg@10") == direction("auc") == 1
    with pytest.raises(HBenchError, match="no direction is known for metric 'loss'"):
        direction("loss")
    monkeypatch.setitem(sig.METRIC_DIRECTION, "rank", -1)
    assert direction("rank@5") == -1


def _frame(root, model, seeds, values, **kw) -> pd.DataFrame:
    from hbench.reports.collect import collect_runs

    for seed, v in zip(seeds, values):
        users = np.arange(len(v))
        write_run(root, model, seed, per_user=pd.DataFrame({"user": users, "n_targets": 1, "hr@10": v}), **kw)
    runs = collect_runs(root)
    return runs[runs["model"] == model]


def test_users_are_averaged_over_common_seeds_and_joined_by_user(tmp_path) -> None:
    a = _frame(tmp_path, "hyperml", [0, 1, 2], [[1, 0, 1.0], [0, 0, 1.0], [1, 1, 0.0]])
    b = _frame(tmp_path, "bpr", [1, 2, 3], [[0, 1, 0.0], [1, 0, 0.0], [1, 1, 1.0]])
    paired = paired_values(a, b, "hr@10", "user")
    assert paired.seeds == (1, 2)  # seed 0 only in A, seed 3 only in B
    assert paired.a == pytest.approx([0.5, 0.5, 0.5]) and paired.b == pytest.approx([0.5, 0.5, 0.0])
    by_seed = paired_values(a, b, "hr@10", "seed")
    assert by_seed.a == pytest.approx([1 / 3, 2 / 3]) and by_seed.b == pytest.approx([1 / 3, 1 / 3])


def test_rows_in_another_order_still_pair_the_same_users(tmp_path) -> None:
    from hbench.reports.collect import collect_runs

    write_run(tmp_path, "a", 0, per_user=pd.DataFrame({"user": [0, 1, 2, 3], "hr@10": [1.0, 0, 0, 1]}))
    write_run(tmp_path, "b", 0, per_user=pd.DataFrame({"user": [3, 1, 0, 2], "hr@10": [0.0, 0, 1, 1]}))
    runs = collect_runs(tmp_path)
    paired = paired_values(runs[runs.model == "a"], runs[runs.model == "b"], "hr@10", "user")
    assert (paired.a - paired.b).tolist() == [0, 0, -1, 1]  # users 0..3


def test_guards_refuse_unmatched_comparisons(tmp_path) -> None:
    from hbench.reports.collect import collect_runs

    write_run(tmp_path / "x", "a", 0, per_user=pd.DataFrame({"user": [0, 1, 2], "hr@10": [1.0, 0, 0]}))
    write_run(tmp_path / "x", "b", 0, per_user=pd.DataFrame({"user": [0, 1], "hr@10": [1.0, 0]}))
    runs = collect_runs(tmp_path / "x")
    with pytest.raises(HBenchError, match=r"different users \(1 only in the first, 0 only in the second\)"):
        paired_values(runs[runs.model == "a"], runs[runs.model == "b"], "hr@10", "user")
    write_run(tmp_path / "y", "a", 0, test={"hr@10": 0.5})
    write_run(tmp_path / "y", "b", 0, test={"hr@10": 0.4}, split="split-two")
    runs = collect_runs(tmp_path / "y")
    with pytest.raises(HBenchError, match="different splits .*split-one.*split-two"):
        paired_values(runs[runs.model == "a"], runs[runs.model == "b"], "hr@10", "seed")
    with pytest.raises(HBenchError, match="has no per_user.parquet"):
        paired_values(runs[runs.model == "a"], runs[runs.model == "a"], "hr@10", "user")


def test_settings_are_validated() -> None:
    with pytest.raises(HBenchError, match="unknown test 'anova'"):
        SignificanceSettings(test="anova")
    with pytest.raises(HBenchError, match="unknown correction 'fdr'"):
        SignificanceSettings(correction="fdr")
    with pytest.raises(HBenchError, match="--alpha must lie strictly between 0 and 1"):
        SignificanceSettings(alpha=1.5)
    with pytest.raises(HBenchError, match="exclude each other"):
        SignificanceSettings(pairs="all", baseline="bpr")


def test_all_pairs_never_marks_against_the_reported_means(tmp_path) -> None:
    """Issue 13.9 (this test credited "b" before): the test favours b, the table shows a better: no marker."""
    from hbench.reports.collect import collect_runs
    from hbench.reports.significance import RowKey, table_significance

    users = np.arange(100)
    # Over its two seeds "a" looks better, but on the one seed both rows share, "b" is clearly better.
    write_run(tmp_path, "a", 0, per_user=pd.DataFrame({"user": users, "hr@10": np.zeros(100)}))
    write_run(tmp_path, "a", 1, per_user=pd.DataFrame({"user": users, "hr@10": np.ones(100)}))
    write_run(tmp_path, "b", 0, per_user=pd.DataFrame({"user": users, "hr@10": (users % 2).astype(float)}))
    runs = collect_runs(tmp_path)
    group = {m: runs.loc[runs.model == m, "group_hash"].iloc[0] for m in ("a", "b")}
    rows = [RowKey(group["a"], "a", "a", {"hr@10": 0.5 + 1e-9}), RowKey(group["b"], "b", "b", {"hr@10": 0.5})]
    report = table_significance(runs, rows, ["hr@10"], SignificanceSettings(pairs="all"))
    (c,) = report.comparisons
    assert c.outcome.leader < 0 and c.p_adjusted < 0.05  # the test does reject, for b
    assert not c.significant and report.beats(group["b"], "hr@10") == [] and report.beats(group["a"], "hr@10") == []
    assert report.against_the_mean == (c,)
    assert "1 comparison(s) not marked: the test's direction disagrees" in report.describe({})
