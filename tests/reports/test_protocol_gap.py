"""`hbench table --protocol-gap`: validation-selected test value, best test value on the recorded curve, and
their difference, checked on run folders whose numbers are chosen here and worked out by hand."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest

from hbench.api import table
from hbench.cli import main
from hbench.runs import TEST_CURVE
from tests.reports.runfiles import write_run


def _curve(run: Path, points: list[dict]) -> None:
    (run / TEST_CURVE).write_text("".join(json.dumps(p) + "\n" for p in points))


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    """bpr over two seeds with curves; cml without any; hyperml with a curve for one of its two seeds."""
    root = tmp_path / "results"
    a = write_run(root, "bpr", 0, protocol="full", test={"recall@20": 0.30, "ndcg@20": 0.20})
    b = write_run(root, "bpr", 1, protocol="full", test={"recall@20": 0.34, "ndcg@20": 0.22})
    # Seed 0's best recall is at epoch 10 and its best ndcg at epoch 15: each metric takes its own best point.
    _curve(a, [{"epoch": 5, "recall@20": 0.28, "ndcg@20": 0.19}, {"epoch": 10, "recall@20": 0.36, "ndcg@20": 0.20},
               {"epoch": 15, "recall@20": 0.33, "ndcg@20": 0.25}])
    _curve(b, [{"epoch": 5, "recall@20": 0.34, "ndcg@20": 0.22}, {"epoch": 10, "recall@20": 0.35, "ndcg@20": 0.21}])
    write_run(root, "cml", 0, protocol="full", test={"recall@20": 0.25, "ndcg@20": 0.15})
    write_run(root, "cml", 1, protocol="full", test={"recall@20": 0.27, "ndcg@20": 0.17})
    h = write_run(root, "hyperml", 0, protocol="full", test={"recall@20": 0.40, "ndcg@20": 0.30})
    write_run(root, "hyperml", 1, protocol="full", test={"recall@20": 0.42, "ndcg@20": 0.31})
    _curve(h, [{"epoch": 5, "recall@20": 0.41, "ndcg@20": 0.30}])
    return root


def _frame(results: Path) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(table(results, "csv", significance=None, protocol_gap=True))).set_index("model")


def test_gap_numbers_are_the_hand_computed_ones(results: Path) -> None:
    frame = _frame(results)
    bpr = frame.loc["bpr"]
    # Selected (as the default table): 0.30, 0.34. Best on curve: 0.36, 0.35. Gap per seed: 0.06, 0.01.
    assert bpr["recall@20_mean"] == pytest.approx(0.32)
    assert bpr["recall@20_std"] == pytest.approx(0.0282842712)
    assert bpr["recall@20_curve_mean"] == pytest.approx(0.355)
    assert bpr["recall@20_curve_std"] == pytest.approx(0.0070710678)
    assert bpr["recall@20_gap_mean"] == pytest.approx(0.035)
    assert bpr["recall@20_gap_std"] == pytest.approx(0.0353553391)
    # ndcg: best 0.25 (epoch 15) and 0.22; gaps 0.05 and 0.00.
    assert bpr["ndcg@20_curve_mean"] == pytest.approx(0.235)
    assert bpr["ndcg@20_gap_mean"] == pytest.approx(0.025)
    assert bpr["ndcg@20_gap_std"] == pytest.approx(0.0353553391)
    # hyperml: one seed of two recorded a curve; its gap pairs that seed with its own selected value.
    hyperml = frame.loc["hyperml"]
    assert hyperml["recall@20_mean"] == pytest.approx(0.41)  # the selected column still averages both seeds
    assert hyperml["recall@20_curve_mean"] == pytest.approx(0.41) and hyperml["recall@20_curve_n"] == 1
    assert hyperml["recall@20_gap_mean"] == pytest.approx(0.01)
    # cml: no curve, no numbers.
    assert frame.loc["cml", "recall@20_curve_n"] == 0 and pd.isna(frame.loc["cml", "recall@20_gap_mean"])


def test_markdown_shows_dashes_and_says_which_column_is_which(results: Path) -> None:
    text = table(results, "markdown", significance=None, protocol_gap=True)
    header = next(line for line in text.splitlines() if line.startswith("| model"))
    assert "Recall@20 (validation)" in header and "Recall@20 (best on test)" in header and "Recall@20 gap" in header
    cml = next(line for line in text.splitlines() if line.startswith("| cml"))
    assert cml.count("—") == 4  # best-on-curve and gap of two metrics
    bpr = next(line for line in text.splitlines() if line.startswith("| bpr"))
    assert "0.3550 ± 0.0071" in bpr and "+0.0350 ± 0.0354" in bpr
    assert "chosen by looking at test" in text and "not a result" in text
    assert "no curve recorded: cml" in text and "hyperml (1 of 2)" in text


def test_without_the_option_the_table_is_the_default_one(results: Path) -> None:
    default = table(results, "csv", significance=None)
    assert "curve" not in default and "gap" not in default
    for curve in results.rglob(TEST_CURVE):
        curve.unlink()
    assert table(results, "csv", significance=None) == default


def test_a_damaged_curve_is_one_warning_and_a_dash(results: Path, capsys) -> None:
    (next(results.rglob(TEST_CURVE)).parent / TEST_CURVE).write_text("not json\n")
    frame = _frame(results)
    assert "is damaged" in capsys.readouterr().err
    assert frame["recall@20_curve_n"].sum() == 2  # the two readable curves of three


def test_the_cli_option(results: Path, capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["table", str(results), "--protocol-gap", "--no-test", "--format", "csv"])
    assert done.value.code == 0
    frame = pd.read_csv(io.StringIO(capsys.readouterr().out)).set_index("model")
    assert frame.loc["bpr", "recall@20_gap_mean"] == pytest.approx(0.035)
