"""What `hbench table` tests by default: one definition for the command line and the Python API.

Kept apart from hbench.reports.significance (scipy, statsmodels, pandas) and free of heavy imports, because
the command line reads these defaults when it builds its options, and `hbench --help` must not pay for
the statistics libraries.
"""

from __future__ import annotations

from dataclasses import dataclass

from hbench.errors import HBenchError

TESTS = ("ttest", "wilcoxon", "permutation", "bootstrap")
UNITS = ("user", "seed")
PAIRS = ("baseline", "all")
CORRECTIONS: dict[str, str | None] = {"holm": "holm", "bh": "fdr_bh", "bonferroni": "bonferroni", "none": None}


@dataclass(frozen=True)
class SignificanceSettings:
    """What `hbench table` tests: `pairs="baseline"` tests every other row against one baseline per column
    (one-sided), `pairs="all"` every pair of rows (two-sided, winner by the sign of the mean difference).

    The field defaults are the defaults of `hbench table` and of `hbench.table()` alike (`DEFAULT_TESTS`).
    """

    test: str = "ttest"
    unit: str = "user"
    correction: str = "holm"
    alpha: float = 0.05
    pairs: str = "baseline"
    baseline: str | None = None
    seed: int = 0
    n_resamples: int = 9999

    def __post_init__(self) -> None:
        for value, allowed, what in ((self.test, TESTS, "test"), (self.unit, UNITS, "unit"),
                                     (self.correction, tuple(CORRECTIONS), "correction"), (self.pairs, PAIRS, "pairs")):
            if value not in allowed:
                raise HBenchError(f"unknown {what} {value!r}; choose one of {', '.join(allowed)}")
        if not 0 < self.alpha < 1:
            raise HBenchError(f"--alpha must lie strictly between 0 and 1, not {self.alpha}")
        if self.n_resamples < 99:
            raise HBenchError(f"--resamples must be at least 99, not {self.n_resamples}")
        if self.pairs == "all" and self.baseline is not None:
            raise HBenchError("--baseline and --pairs all exclude each other")

    @property
    def alternative(self) -> str:
        """scipy's `alternative`: one-sided against a baseline, two-sided when every pair is tested."""
        return "greater" if self.pairs == "baseline" else "two-sided"


# The tests a table gets unless told otherwise (`--no-test`, `significance=None`).
DEFAULT_TESTS = SignificanceSettings()
