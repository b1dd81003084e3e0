"""`hbench train` prints a finished run's test metrics in one order, fresh or skipped (audit N05)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hbench.cli import main


def _printed_metric_names(args: list[str], capsys: pytest.CaptureFixture[str]) -> list[str]:
    with pytest.raises(SystemExit) as done:
        main(args)
    assert done.value.code == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    fields = line.split("\t")[1].split()
    return fields[0::2]  # "name value name value ..."


def test_a_skipped_rerun_prints_the_metrics_in_the_fresh_run_s_order(tiny_dataset, tmp_path: Path, capsys) -> None:
    args = ["train", "bpr", "-d", str(tiny_dataset.path), "--epochs", "1", "--dim", "4", "--out", str(tmp_path), "-q",
            "--k", "5,10", "--protocol", "loo"]
    fresh = _printed_metric_names(args, capsys)
    again = _printed_metric_names(args, capsys)  # the finished run is found and only read back
    # Written by hand: per cut-off HR, recall, precision, nDCG (as the evaluation computes them), then MRR, AUC.
    expected = [f"{m}@{k}" for k in (5, 10) for m in ("hr", "recall", "precision", "ndcg")] + ["mrr", "auc"]
    assert fresh == [m for m in expected if m in fresh]
    assert again == fresh
