"""The README's main job, shortened: prepare → train every demo model → table, offline."""

from __future__ import annotations

from pathlib import Path

from hbench.api import DEMO_MODELS, run_demo
from hbench.reports.tables import render


def test_demo_runs_offline_and_tables_every_model(hbench_home: Path, tmp_path: Path) -> None:
    tables = run_demo(tmp_path / "results", home=hbench_home, seeds=(0,), epochs=1)
    (table,) = tables
    assert table.dataset == "synthetic-fashion" and table.protocol == "loo"
    labels = {row.label.split(" ")[0] for row in table.rows}
    assert labels == set(DEMO_MODELS)
    text = render(tables, "markdown")
    assert "synthetic-fashion — loo" in text and "HR@10" in text
