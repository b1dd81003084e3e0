"""Paired significance tests between model configurations: computed once, rendered by tables and `compare`.

Two configurations A and B of one table are compared on one test metric over matched units:

    unit `seed`  x_s = metric of A's run with seed s, y_s = B's, for every seed both have (k = 5–10 pairs);
                 captures training variance.
    unit `user`  x_u = A's per-user metric of user u averaged over the seeds both configurations have, y_u = B's;
                 users must be exactly the same on both sides (one split hash means one set of test users).

With the orientation o = +1 for a metric where higher is better (−1 where lower is), the differences are
d_i = o·(x_i − y_i), so d > 0 always means "A better", and every test is one-sided, H1: E[d] > 0
(two-sided when all pairs of a table are tested, the winner then read off the sign of the mean). Tests
(all from scipy; the only rule written here is the bootstrap p-value):

    ttest        scipy.stats.ttest_rel: t = d̄ / (s_d / √n), n − 1 degrees of freedom.
    wilcoxon     scipy.stats.wilcoxon, zero_method "wilcox": zero differences are dropped before ranking,
                 so the test runs on n_eff = #{d_i ≠ 0} pairs (reported). Ties among |d| get average ranks.
    permutation  scipy.stats.permutation_test on the differences, permutation_type "samples": with one sample
                 this flips the sign of each d_i independently (A and B swapped within a pair); statistic d̄;
                 exact over all 2^n sign patterns when 2^n ≤ resamples, else p = (1 + #{d̄* ≥ d̄}) / (B + 1).
    bootstrap    scipy.stats.bootstrap of d̄ (B resamples of the pairs). p-value by the shift rule of
                 Efron & Tibshirani (1993, §16.4; Hall & Wilson 1991): under H0 the bootstrap distribution
                 is centred on 0, so p = (1 + #{d̄*_b − d̄ ≥ d̄}) / (B + 1)
                 (two-sided: #{|d̄*_b − d̄| ≥ |d̄|}).

Degenerate cases: fewer than 2 pairs → no test (p = NaN, not counted in the family); all differences zero
→ p = 1 for every test (n_eff = 0); constant non-zero differences → the t statistic is infinite (scipy's
limit, p = 0 or 1) and d_z = ±∞.

Effect sizes: the mean difference A − B in metric units with a bootstrap confidence interval (BCa up to
`BCA_MAX_N` pairs; above that the percentile interval, because BCa's jackknife costs O(n²) and over
thousands of users the two agree to the third digit), and the paired Cohen's d_z = d̄ / s_d (0 when all
differences are 0).

Multiple comparisons (statsmodels.stats.multitest.multipletests): every hypothesis of one table is one
family; Holm (default), Benjamini–Hochberg or Bonferroni, or none.

Resampling uses `numpy.random.default_rng(seed)` afresh for every comparison, so a comparison's p-value
does not depend on what else the table holds, and `hbench compare A B --seed S` reproduces it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from hbench.errors import HBenchError
from hbench.models.registry import model_traits
from hbench.protocols import EXTRA_METRICS
# The settings live in a light module (the command line reads their defaults); PAIRS and SignificanceSettings
# stay importable from here by their old names.
from hbench.reports.settings import CORRECTIONS, PAIRS, TESTS, UNITS, SignificanceSettings  # noqa: F401
from hbench.runs import PER_USER

WILCOXON_ZERO_METHOD = "wilcox"
BCA_MAX_N = 2000
# Cap on resamples × pairs held in memory at once by scipy's resampling (8 bytes each: about 160 MB).
_RESAMPLE_BATCH_ELEMENTS = 20_000_000

# Orientation of each metric family (the part before `@K`): +1 higher is better, −1 lower is better. A
# protocol's extra metric (`auc_sampled`) has the orientation of the metric it computes.
METRIC_DIRECTION: dict[str, int] = {
    "hr": 1, "ndcg": 1, "recall": 1, "precision": 1, "mrr": 1, "map": 1, "auc": 1, "coverage": 1,
}

TEST_NAMES = {
    "ttest": "paired t-test",
    "wilcoxon": "Wilcoxon signed-rank test (zero differences dropped)",
    "permutation": "paired sign-flip permutation test",
    "bootstrap": "paired bootstrap test (shift rule)",
}
CORRECTION_NAMES = {"holm": "Holm", "bh": "Benjamini–Hochberg", "bonferroni": "Bonferroni", "none": "no"}


def direction(metric: str) -> int:
    """+1 when a larger value of `metric` is better, −1 when a smaller one is."""
    family = metric.split("@", 1)[0]
    if family in EXTRA_METRICS:
        family = EXTRA_METRICS[family].metric.split("@", 1)[0]
    if family not in METRIC_DIRECTION:
        raise HBenchError(f"no direction is known for metric {metric!r} (add its family to METRIC_DIRECTION)")
    return METRIC_DIRECTION[family]


# ---------------------------------------------------------------------------------------------- tests


@dataclass(frozen=True)
class TestOutcome:
    """One test on one set of differences. `n_effective` = non-zero differences (what Wilcoxon uses)."""

    __test__ = False  # not a pytest test class

    test: str
    statistic: float
    p_value: float
    n: int
    n_effective: int
    alternative: str = "greater"
    note: str = ""
    leader: int = 0  # +1: x ahead, -1: y ahead, 0: neither, by what the test itself measures (see `test_leader`)


def test_leader(d: np.ndarray, test: str) -> int:
    """Which side the test's own statistic favours, for two-sided tests that need a winner.

    The t-test, permutation and bootstrap tests measure the mean difference, so its sign decides. The
    signed-rank test measures ranks: with skewed per-user metrics the mean can favour one side while
    most users (and W+ − W−) favour the other, and the rejection then speaks for the rank sum's side.
    """
    if test == "wilcoxon":
        nonzero = d[d != 0]  # the "wilcox" zero method drops zero differences before ranking
        value = float(np.sum(np.sign(nonzero) * stats.rankdata(np.abs(nonzero))))
    else:
        value = float(np.mean(d))
    return int(np.sign(value))


def _resample_batch(n: int, n_resamples: int) -> int:
    return max(1, min(n_resamples, _RESAMPLE_BATCH_ELEMENTS // max(n, 1)))


def _mean(d: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(d, axis=axis)


def bootstrap_means(d: np.ndarray, *, seed: int, n_resamples: int, confidence: float = 0.95,
                    ) -> tuple[np.ndarray, tuple[float, float], str]:
    """Bootstrap distribution of the mean of `d` and its confidence interval (scipy.stats.bootstrap).

    Constant `d` (every resample equal) is answered directly: scipy's BCa is undefined there.
    """
    d = np.asarray(d, dtype=float)
    method = "BCa" if len(d) <= BCA_MAX_N else "percentile"
    if is_constant(d):
        return np.full(n_resamples, d[0]), (float(d[0]), float(d[0])), method
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's degenerate-data warnings; a NaN bound says the same
        result = stats.bootstrap((d,), _mean, n_resamples=n_resamples, vectorized=True, method=method,
                                 confidence_level=confidence, batch=_resample_batch(len(d), n_resamples),
                                 rng=np.random.default_rng(seed))
    ci = result.confidence_interval
    return np.asarray(result.bootstrap_distribution), (float(ci.low), float(ci.high)), method


def bootstrap_p_value(distribution: np.ndarray, observed: float, alternative: str = "greater") -> float:
    """Shift-rule p-value: p = (1 + #{θ*_b − θ̂ ≥ θ̂}) / (B + 1); two-sided with absolute values."""
    centred = np.asarray(distribution) - observed
    if alternative == "greater":
        extreme = centred >= observed
    elif alternative == "two-sided":
        extreme = np.abs(centred) >= abs(observed)
    else:
        raise ValueError(f"alternative must be 'greater' or 'two-sided', not {alternative!r}")
    return float((1 + np.count_nonzero(extreme)) / (len(centred) + 1))


def paired_test(x: np.ndarray, y: np.ndarray, test: str, *, alternative: str = "greater", seed: int = 0,
                n_resamples: int = 9999) -> TestOutcome:
    """Test H1: x > y (`greater`) or x ≠ y (`two-sided`) on pairs (x_i, y_i), already oriented so that
    larger is better. See the module docstring for each test and the degenerate cases."""
    if test not in TESTS:
        raise HBenchError(f"unknown test {test!r}; choose one of {', '.join(TESTS)}")
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    d = x - y
    n, n_eff = len(d), int(np.count_nonzero(d))
    if n < 2:
        return TestOutcome(test, math.nan, math.nan, n, n_eff, alternative, f"{n} pair(s): at least 2 are needed")
    if n_eff == 0:
        return TestOutcome(test, 0.0, 1.0, n, 0, alternative, "all differences are zero")
    note = ""
    with warnings.catch_warnings():
        # scipy warns about precision loss on (nearly) constant data and normal approximations on small n;
        # the outcome and its n / n_eff carry that information.
        warnings.simplefilter("ignore")
        if test == "ttest":
            result = stats.ttest_rel(x, y, alternative=alternative)
            statistic, p = float(result.statistic), float(result.pvalue)
            if is_constant(d):
                # scipy's limit for exactly constant d; rounding noise would otherwise give t ≈ 1e16
                statistic = math.copysign(math.inf, float(d.mean()))
                p = 0.0 if alternative == "two-sided" or statistic > 0 else 1.0
                note = "differences are constant (zero variance)"
        elif test == "wilcoxon":
            result = stats.wilcoxon(x, y, zero_method=WILCOXON_ZERO_METHOD, alternative=alternative)
            statistic, p = float(result.statistic), float(result.pvalue)
        elif test == "permutation":
            result = stats.permutation_test((d,), _mean, permutation_type="samples", vectorized=True,
                                            n_resamples=n_resamples, alternative=alternative,
                                            batch=_resample_batch(n, n_resamples), rng=np.random.default_rng(seed))
            statistic, p = float(result.statistic), float(result.pvalue)
            note = "exact (all sign patterns)" if 2 ** n <= n_resamples else ""
        else:
            distribution, _, _ = bootstrap_means(d, seed=seed, n_resamples=n_resamples)
            statistic = float(d.mean())
            p = bootstrap_p_value(distribution, statistic, alternative)
    return TestOutcome(test, statistic, p, n, n_eff, alternative, note, test_leader(d, test))


@dataclass(frozen=True)
class Effect:
    """Size of A − B in metric units (not oriented) and the paired standardised effect d_z (oriented)."""

    mean_a: float
    mean_b: float
    difference: float
    ci_low: float = math.nan
    ci_high: float = math.nan
    ci_method: str = ""
    confidence: float = 0.95
    d_z: float = math.nan


# Simulated under H0 (standard normal differences, one-sided α = 0.05, 400 draws each), the shift-rule
# bootstrap rejected 17% of the time at n = 3, 9% at n = 5, 8% at n = 10 and 7.5% at n = 20 (the t-test
# 4–6%), 5% at n = 30: footnotes warn below this many pairs.
BOOTSTRAP_MIN_PAIRS = 20

# Differences of metric means carry float rounding (1.1 − 1.0 ≠ 0.1 exactly): equal to within this
# relative tolerance, they are constant, which keeps d_z at ±∞ rather than 1e15.
CONSTANT_RTOL = 1e-9


def is_constant(d: np.ndarray) -> bool:
    """Every difference the same, up to float rounding (`CONSTANT_RTOL` of the largest magnitude)."""
    return bool(len(d)) and float(np.ptp(d)) <= CONSTANT_RTOL * max(float(np.max(np.abs(d))), 1e-300)


def cohens_dz(d: np.ndarray) -> float:
    """d_z = mean(d) / sd(d) (sample sd); 0 when every difference is 0, ±∞ when they are constant otherwise."""
    d = np.asarray(d, dtype=float)
    if len(d) < 2:
        return math.nan
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    if is_constant(d):
        return 0.0 if mean == 0 else math.copysign(math.inf, mean)
    return mean / sd


def effect_size(a: np.ndarray, b: np.ndarray, orientation: int = 1, *, seed: int = 0, n_resamples: int = 9999,
                confidence: float = 0.95, with_ci: bool = True) -> Effect:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) == 0:
        return Effect(math.nan, math.nan, math.nan, confidence=confidence)
    raw = a - b
    effect = Effect(float(a.mean()), float(b.mean()), float(raw.mean()), confidence=confidence,
                    d_z=cohens_dz(orientation * raw))
    if with_ci and len(raw) >= 2:
        _, (low, high), method = bootstrap_means(raw, seed=seed, n_resamples=n_resamples, confidence=confidence)
        effect = replace(effect, ci_low=low, ci_high=high, ci_method=method)
    return effect


def correct(p_values: Sequence[float], method: str, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(adjusted p-values, rejected) for one family; NaN p-values (untested) stay NaN and are not counted."""
    if method not in CORRECTIONS:
        raise HBenchError(f"unknown correction {method!r}; choose one of {', '.join(CORRECTIONS)}")
    p = np.asarray(p_values, dtype=float)
    adjusted, rejected = np.full(len(p), np.nan), np.zeros(len(p), dtype=bool)
    tested = ~np.isnan(p)
    if tested.any():
        if CORRECTIONS[method] is None:
            adjusted[tested], rejected[tested] = p[tested], p[tested] <= alpha
        else:
            reject, corrected, _, _ = multipletests(p[tested], alpha=alpha, method=CORRECTIONS[method])
            adjusted[tested], rejected[tested] = corrected, reject
    return adjusted, rejected


# ------------------------------------------------------------------------------------ matched samples


@dataclass(frozen=True)
class Paired:
    """Matched values of one metric for configurations A and B (unit `seed` or `user`)."""

    metric: str
    unit: str
    a: np.ndarray
    b: np.ndarray
    seeds: tuple[int, ...]  # the seeds both configurations have (the ones used)
    note: str = ""

    @property
    def n(self) -> int:
        return len(self.a)

    def oriented(self) -> tuple[np.ndarray, np.ndarray]:
        o = direction(self.metric)
        return o * self.a, o * self.b


def check_comparable(runs: pd.DataFrame) -> None:
    """Refuse runs of different splits or protocols: their test users and candidates differ."""
    for column, what in (("split_hash", "splits"), ("protocol", "protocols")):
        values = runs[column].unique()
        if len(values) > 1:
            examples = "; ".join(f"{g.iloc[0]['path']} has {column} {str(v)[:10]}" for v, g in runs.groupby(column))
            raise HBenchError(f"refusing to compare runs of different {what} ({examples}); "
                              "paired tests need one prepared split and one protocol")


def _by_seed(runs: pd.DataFrame) -> pd.DataFrame:
    done = runs[runs["status"] == "completed"]
    duplicated = done[done["seed"].duplicated(keep=False)]
    if len(duplicated):
        # One example path, not all of them: over a tree of studies the list ran to hundreds of characters.
        seed = duplicated.iloc[0]["seed"]
        twins = duplicated[duplicated["seed"] == seed]["path"]
        raise HBenchError(f"seed {seed} appears in {len(twins)} runs of one configuration (e.g. {twins.iloc[0]}); "
                          "keep one run per seed")
    return done.set_index("seed")


def paired_values(a: pd.DataFrame, b: pd.DataFrame, metric: str, unit: str,
                  per_user: Mapping[str, pd.DataFrame] | None = None) -> Paired:
    """Match runs of configuration A (rows of `collect_runs`) with those of B by seed, then by user.

    `per_user` may cache per_user.parquet frames by run path.
    """
    if unit not in UNITS:
        raise HBenchError(f"unknown unit {unit!r}; choose one of {', '.join(UNITS)}")
    check_comparable(pd.concat([a, b]))
    return _paired(_by_seed(a), _by_seed(b), metric, unit, per_user)


def _paired(a_runs: pd.DataFrame, b_runs: pd.DataFrame, metric: str, unit: str,
            per_user: Mapping[str, pd.DataFrame] | None,
            user_means: dict[tuple[tuple[str, ...], str], pd.Series] | None = None) -> Paired:
    """`paired_values` of two configurations' completed runs indexed by seed (`_by_seed`); `user_means`
    caches each side's per-user means by (run paths, metric), since a table's baseline meets every row."""
    seeds = tuple(sorted(set(a_runs.index) & set(b_runs.index)))
    if not seeds:
        empty = np.zeros(0)
        note = (f"no common seed (A: {', '.join(map(str, sorted(a_runs.index))) or 'none'}; "
                f"B: {', '.join(map(str, sorted(b_runs.index))) or 'none'})")
        return Paired(metric, unit, empty, empty, (), note)
    if unit == "seed":
        column = f"test/{metric}"
        values = []
        for side, runs in (("A", a_runs), ("B", b_runs)):
            # positions in numpy: `.loc` with a list of seeds cost milliseconds per pair over big tables
            chosen = (runs[column].to_numpy(float)[runs.index.get_indexer(seeds)] if column in runs
                      else np.array([math.nan]))
            if np.isnan(chosen).any():
                raise HBenchError(f"metric {metric} is missing from metrics.json of a run of {side} "
                                  f"({runs.iloc[0]['path']})")
            values.append(chosen)
        return Paired(metric, unit, values[0], values[1], seeds)
    a_users = _cached_user_means(a_runs, seeds, metric, per_user, user_means)
    b_users = _cached_user_means(b_runs, seeds, metric, per_user, user_means)
    _require_same_users(a_users, b_users, a_runs.loc[seeds[0], "path"], b_runs.loc[seeds[0], "path"])
    joined = pd.concat([a_users.rename("a"), b_users.rename("b")], axis=1, join="inner").sort_index()
    return Paired(metric, unit, joined["a"].to_numpy(float), joined["b"].to_numpy(float), seeds)


def _cached_user_means(runs: pd.DataFrame, seeds: tuple[int, ...], metric: str,
                       per_user: Mapping[str, pd.DataFrame] | None,
                       cache: dict[tuple[tuple[str, ...], str], pd.Series] | None) -> pd.Series:
    if cache is None:
        return _user_means(runs, seeds, metric, per_user)
    path_of = runs["path"].to_dict()  # by seed; `.loc` with a list of seeds cost milliseconds per call
    key = (tuple(path_of[seed] for seed in seeds), metric)
    if key not in cache:
        cache[key] = _user_means(runs, seeds, metric, per_user)
    return cache[key]


def read_per_user(path: str, per_user: Mapping[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    if per_user is not None and path in per_user:
        return per_user[path]
    file = Path(path) / PER_USER
    if not file.is_file():
        raise HBenchError(f"run {path} has no {PER_USER}, which per-user tests need; use --unit seed or --no-test")
    frame = pd.read_parquet(file)
    if isinstance(per_user, dict):
        per_user[path] = frame
    return frame


def _user_means(runs: pd.DataFrame, seeds: tuple[int, ...], metric: str,
                per_user: Mapping[str, pd.DataFrame] | None) -> pd.Series:
    """Per-user metric averaged over `seeds`; every seed's run must cover exactly the same users."""
    path_of = runs["path"].to_dict()  # by seed
    paths = [path_of[seed] for seed in seeds]
    frames = [read_per_user(path, per_user) for path in paths]
    for path, frame in zip(paths, frames):
        if metric not in frame.columns:
            available = ", ".join(c for c in frame.columns if c not in ("user", "n_targets"))
            raise HBenchError(f"{PER_USER} of {path} has no column {metric} (it has {available})")
    # The usual case, in numpy: every seed lists the same users in the same order (the trainer writes them
    # sorted). Over a table of hundreds of rows pandas' index alignment below cost seconds per row.
    users = frames[0]["user"].to_numpy()
    if all(np.array_equal(frame["user"].to_numpy(), users) for frame in frames[1:]) and len(np.unique(users)) == len(users):
        values = np.vstack([frame[metric].to_numpy(float) for frame in frames])
        if not np.isnan(values).any():
            return pd.Series(values.mean(axis=0), index=pd.Index(users, name="user"))
    columns = []
    for seed in seeds:
        path = runs.loc[seed, "path"]
        frame = read_per_user(path, per_user)
        if frame["user"].duplicated().any():
            raise HBenchError(f"{PER_USER} of {path} lists a user more than once")
        series = frame.set_index("user")[metric].astype(float)
        if columns:
            _require_same_users(columns[0], series, runs.loc[seeds[0], "path"], path)
        columns.append(series)
    return pd.concat(columns, axis=1, join="inner").mean(axis=1)


def _require_same_users(first: pd.Series, second: pd.Series, first_path: str, second_path: str) -> None:
    only_first = first.index.difference(second.index)
    only_second = second.index.difference(first.index)
    if len(only_first) or len(only_second):
        raise HBenchError(
            f"per-user metrics of {first_path} ({len(first)} users) and {second_path} ({len(second)} users) cover "
            f"different users ({len(only_first)} only in the first, {len(only_second)} only in the second); "
            "runs of one split must evaluate the same test users, so a per-user test would compare different people"
        )


# --------------------------------------------------------------------------------- table comparisons


AGAINST_THE_MEAN = "the test's direction disagrees with the reported means"


@dataclass(frozen=True)
class RowKey:
    """What significance needs of a table row: identity, model, label and the column means."""

    group_hash: str
    model: str
    label: str
    means: Mapping[str, float | None]


@dataclass(frozen=True)
class Comparison:
    """Candidate row vs baseline row on one metric; `significant` = candidate better after correction."""

    metric: str
    candidate: str  # group hash
    baseline: str  # group hash
    outcome: TestOutcome
    effect: Effect
    seeds: tuple[int, ...]
    p_adjusted: float = math.nan
    significant: bool = False
    note: str = ""


@dataclass(frozen=True)
class SignificanceReport:
    settings: SignificanceSettings
    comparisons: tuple[Comparison, ...]
    baselines: Mapping[str, str] = field(default_factory=dict)  # metric -> baseline group hash (pairs=baseline)
    default_baseline: bool = True  # baselines chosen as the best non-proposed row of each column
    proposed: frozenset[str] = frozenset()  # models the default baseline was not chosen from (`proposed_models`)

    @property
    def family_size(self) -> int:
        return sum(1 for c in self.comparisons if not math.isnan(c.outcome.p_value))

    @property
    def against_the_mean(self) -> tuple[Comparison, ...]:
        """Comparisons the test rejected in the direction opposite to the reported means (left unmarked)."""
        return tuple(c for c in self.comparisons if c.note == AGAINST_THE_MEAN)

    @property
    def untested(self) -> tuple[Comparison, ...]:
        return tuple(c for c in self.comparisons if math.isnan(c.outcome.p_value))

    def beats(self, group_hash: str, metric: str) -> list[str]:
        """Group hashes of the rows that row `group_hash` is significantly better than on `metric`."""
        return [c.baseline for c in self.comparisons if c.candidate == group_hash and c.metric == metric and c.significant]

    def for_cell(self, group_hash: str, metric: str) -> Comparison | None:
        """The comparison of this cell with its column's baseline (pairs=baseline)."""
        for c in self.comparisons:
            if c.candidate == group_hash and c.metric == metric and c.baseline == self.baselines.get(metric):
                return c
        return None

    def describe(self, labels: Mapping[str, str], marker: str = "†") -> str:
        """The footnote: what the marker means, test, unit, α, correction and family size."""
        s = self.settings
        if not self.comparisons:
            reason = ("no non-proposed row to serve as baseline (proposed = " + ", ".join(sorted(self.proposed))
                      + "; name one with --baseline)" if s.pairs == "baseline" and self.default_baseline
                      and len(labels) > 1 else "fewer than two rows")
            return f"No significance tests: {reason}."
        unit = ("unit user: per-user test metrics averaged over the seeds both rows have, users matched exactly"
                if s.unit == "user" else "unit seed: whole-test-set metrics of runs paired by seed, "
                "on the seeds both rows ran")
        ns = sorted({c.outcome.n for c in self.comparisons if not math.isnan(c.outcome.p_value)})
        n_text = f"n = {ns[0]}" if len(ns) == 1 else (f"n = {ns[0]}–{ns[-1]}" if ns else "")
        resampling = f", {s.n_resamples} resamples, seed {s.seed}" if s.test in ("permutation", "bootstrap") else ""
        test = f"{TEST_NAMES[s.test]}{resampling}"
        correction = (f"{CORRECTION_NAMES[s.correction]} correction over a family of {self.family_size} hypotheses "
                      "(this table)" if s.correction != "none" else
                      f"no correction for multiple comparisons ({self.family_size} hypotheses in this table)")
        if s.pairs == "baseline":
            names = {m: labels.get(g, g[:10]) for m, g in self.baselines.items()}
            if len(set(names.values())) == 1 and names:
                which = next(iter(names.values()))
            else:
                which = "; ".join(f"{m}: {name}" for m, name in names.items()) or "none"
            chosen = ("best non-proposed row per column, proposed = " + ", ".join(sorted(self.proposed))
                      if self.default_baseline else "chosen with --baseline")
            text = (f"{marker} significantly better than the baseline ({which}; {chosen}) by a one-sided {test} "
                    f"(H1: row better than baseline, in each metric's direction), {unit}"
                    f"{'; ' + n_text if n_text else ''}; α = {s.alpha}, {correction}.")
        else:
            text = (f"Superscript letters: the row is significantly better than the rows with those letters by a "
                    f"two-sided {test} over all pairs of rows (the better one by "
                    f"{'the signed-rank sum' if s.test == 'wilcoxon' else 'the sign of the mean difference'}), "
                    f"{unit}{'; ' + n_text if n_text else ''}; α = {s.alpha}, {correction}.")
        if self.against_the_mean:
            text += (f" {len(self.against_the_mean)} comparison(s) not marked: the test's direction disagrees with "
                     "the reported means (on the matched pairs it favours the row with the worse mean).")
        if self.untested:
            reasons = sorted({c.outcome.note or c.note for c in self.untested})
            text += f" {len(self.untested)} comparison(s) not testable ({'; '.join(reasons)})."
        if s.test == "bootstrap" and ns and ns[0] < BOOTSTRAP_MIN_PAIRS:
            text += (f" Caution: below {BOOTSTRAP_MIN_PAIRS} pairs the bootstrap test rejects too often "
                     "(its resamples cannot show the spread); prefer the t-test or permutation test there.")
        return text


def table_significance(runs: pd.DataFrame, rows: Sequence[RowKey], metrics: Sequence[str],
                       settings: SignificanceSettings) -> SignificanceReport:
    """All comparisons of one table (one dataset, protocol and split), corrected as one family."""
    check_comparable(runs)
    by_group = {g: frame for g, frame in runs.groupby("group_hash", sort=False)}
    cache: dict[str, pd.DataFrame] = {}
    pairs: list[tuple[str, str, str]] = []  # (metric, candidate, baseline)
    baselines: dict[str, str] = {}
    proposed = proposed_models()
    if settings.pairs == "baseline":
        chosen = _named_baseline(rows, settings.baseline) if settings.baseline is not None else None
        for metric in metrics:
            base = chosen if chosen is not None else _best_baseline(rows, metric, proposed)
            if base is None or base.means.get(metric) is None:
                continue
            baselines[metric] = base.group_hash
            pairs += [(metric, r.group_hash, base.group_hash) for r in rows
                      if r.group_hash != base.group_hash and r.means.get(metric) is not None]
    else:
        for metric in metrics:
            o = direction(metric)
            present = [r for r in rows if r.means.get(metric) is not None]
            for i, first in enumerate(present):
                for second in present[i + 1:]:
                    # Store each pair with the better-looking row as candidate: "significant" then reads
                    # "candidate better", which the two-sided test plus the sign of the difference supports.
                    better = o * first.means[metric] >= o * second.means[metric]
                    a, b = (first, second) if better else (second, first)
                    pairs.append((metric, a.group_hash, b.group_hash))

    comparisons = []
    # Each row's runs by seed, and each row's per-user means, once per table rather than once per pair.
    seeded: dict[str, pd.DataFrame] = {}
    user_means: dict[tuple[tuple[str, ...], str], pd.Series] = {}
    for metric, candidate, baseline in pairs:
        for group in (candidate, baseline):
            if group not in seeded:
                seeded[group] = _by_seed(by_group[group])
        paired = _paired(seeded[candidate], seeded[baseline], metric, settings.unit, cache, user_means)
        x, y = paired.oriented()
        outcome = paired_test(x, y, settings.test, alternative=settings.alternative, seed=settings.seed,
                              n_resamples=settings.n_resamples)
        if paired.note:
            outcome = replace(outcome, note=paired.note)
        effect = effect_size(paired.a, paired.b, direction(metric), seed=settings.seed,
                             n_resamples=settings.n_resamples, with_ci=settings.test == "bootstrap")
        comparisons.append(Comparison(metric, candidate, baseline, outcome, effect, paired.seeds))
    adjusted, rejected = correct([c.outcome.p_value for c in comparisons], settings.correction, settings.alpha)
    means = {r.group_hash: r.means for r in rows}
    final = []
    for c, p_adj, reject in zip(comparisons, adjusted, rejected):
        # A marker says "this cell is better": it needs the test's direction (on the matched pairs) and the
        # reported means to agree. A signed-rank test can favour the row with the lower mean; then no marker.
        gap = direction(c.metric) * ((means[c.candidate][c.metric] or 0.0) - (means[c.baseline][c.metric] or 0.0))
        agree = c.outcome.leader > 0 and gap > 0
        note = AGAINST_THE_MEAN if reject and not agree else c.note
        final.append(replace(c, p_adjusted=float(p_adj), significant=bool(reject and agree), note=note))
    return SignificanceReport(settings, tuple(final), baselines, settings.baseline is None, proposed)


def proposed_models() -> frozenset[str]:
    """The models a paper table calls "proposed" (their class declares `proposed = True`: HyperML and HVACF,
    the models of the seed papers hbench reproduces); every other model is a baseline they are compared with.
    A row whose model is not installed counts as a baseline; `--baseline` overrides the choice."""
    return frozenset(name for name, traits in model_traits().items() if traits.proposed)


def _best_baseline(rows: Sequence[RowKey], metric: str, proposed: frozenset[str]) -> RowKey | None:
    o = direction(metric)
    candidates = [r for r in rows if r.model not in proposed and r.means.get(metric) is not None]
    if not candidates:
        return None
    # Ties go to the alphabetically first label, so the choice never depends on row order.
    return min(candidates, key=lambda r: (-o * r.means[metric], r.label))


class BaselineError(HBenchError):
    """`--baseline` names no row of a table (`missing`), or several. Over a tree of tables, a baseline that
    some table lacks leaves only that table untested; several matches are the user's to resolve."""

    def __init__(self, message: str, *, missing: bool) -> None:
        super().__init__(message)
        self.missing = missing


def _named_baseline(rows: Sequence[RowKey], name: str) -> RowKey:
    """A row by its exact label, by a prefix of its group hash, or by its model when that is one row."""
    for match in (lambda r: r.label == name, lambda r: len(name) >= 6 and r.group_hash.startswith(name),
                  lambda r: r.model == name):
        found = [r for r in rows if match(r)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise BaselineError(f"baseline {name!r} matches {len(found)} rows ({'; '.join(r.label for r in found)}); "
                                "name one by its label or group hash", missing=False)
    raise BaselineError(f"baseline {name!r} is not a row of this table (rows: {'; '.join(r.label for r in rows)})",
                        missing=True)
