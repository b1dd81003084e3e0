"""Tables from hand-made run directories: statistics against numpy, rendering in every format."""

from __future__ import annotations

import io
import json
import statistics
from pathlib import Path

import pandas as pd
import pytest

from hbench.errors import HBenchError
from hbench.reports.collect import collect_runs
from hbench.reports.tables import build_tables, render
from tests.reports.runfiles import default_lr


def _write_run(root: Path, model: str, seed: int, test: dict, *, split: str = "s1", options: dict | None = None,
               status: str = "completed", group: str | None = None) -> None:
    path = root / f"{model}-{group or 'g'}-{split}-{seed}"
    path.mkdir(parents=True)
    config = {"model": model, "model_options": options or {}, "lr": default_lr(model),
              "train": {"seed": seed, "dim": 64, "dataset": "toy"}, "protocol": "loo", "metric": "ndcg@10",
              "dataset": {"name": "toy", "split_hash": split}, "group_hash": group or f"{model}{options}{split}"}
    (path / "config.json").write_text(json.dumps(config))
    metrics = {"status": status, "selection_metric": "ndcg@10", "train_seconds": 2.0 + seed, "eval_seconds": 1.0,
               "valid": {}, "test": test if status == "completed" else {}}
    (path / "metrics.json").write_text(json.dumps(metrics))


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    for seed, (hr, nd) in enumerate([(0.60, 0.40), (0.62, 0.41), (0.64, 0.45)]):
        _write_run(tmp_path, "bpr", seed, {"hr@10": hr, "ndcg@10": nd})
    for seed, (hr, nd) in enumerate([(0.70, 0.30), (0.72, 0.35), (0.71, 0.36)]):
        _write_run(tmp_path, "hyperml", seed, {"hr@10": hr, "ndcg@10": nd}, options={"c": 0.5, "gamma": 0.2})
    _write_run(tmp_path, "hyperml", 3, {}, options={"c": 0.5, "gamma": 0.2}, status="diverged")
    _write_run(tmp_path, "pop", 0, {"hr@10": 0.50, "ndcg@10": 0.20})
    return tmp_path


def test_cells_are_mean_and_sample_std_with_best_bold_second_underlined(results: Path) -> None:
    (table,) = build_tables(collect_runs(results))
    rows = {r.label: r for r in table.rows}
    assert set(rows) == {"bpr", "hyperml (c=0.5)", "pop"}  # gamma=0.2 is the default, so not in the label
    hyper = rows["hyperml (c=0.5)"]
    assert hyper.cells["hr@10"].mean == pytest.approx(statistics.mean([0.70, 0.72, 0.71]))
    assert hyper.cells["hr@10"].std == pytest.approx(statistics.stdev([0.70, 0.72, 0.71]))
    assert (hyper.n_runs, hyper.n_diverged) == (4, 1)
    assert hyper.cells["hr@10"].rank == 1 and rows["bpr"].cells["hr@10"].rank == 2 and rows["pop"].cells["hr@10"].rank == 0
    assert rows["bpr"].cells["ndcg@10"].rank == 1 and hyper.cells["ndcg@10"].rank == 2
    markdown = render([table], "markdown")
    assert "**0.7100 ± 0.0100**" in markdown and "<u>0.6200 ± 0.0200</u>" in markdown
    assert "3 seed" in markdown and "ties pessimistic" in markdown and "4 (1 diverged)" in markdown


def test_latex_uses_booktabs_and_marks(results: Path) -> None:
    latex = render(build_tables(collect_runs(results)), "latex")
    assert "\\toprule" in latex and "\\bottomrule" in latex
    assert "\\textbf{0.7100 $\\pm$ 0.0100}" in latex and "\\underline{0.6200 $\\pm$ 0.0200}" in latex


def test_latex_escapes_every_special_character_of_labels_once() -> None:
    from hbench.reports.latex import latex_escape

    # worked by hand from the LaTeX manual's list of special characters
    assert latex_escape(r"a_b & 5% #1 $x$ {y} ~ ^ \ γ±α") == (
        r"a\_b \& 5\% \#1 \$x\$ \{y\} \textasciitilde{} \textasciicircum{} \textbackslash{} "
        r"$\gamma$$\pm$$\alpha$")


def test_latex_table_escapes_option_values(tmp_path: Path) -> None:
    for seed in (0, 1):
        _write_run(tmp_path, "cml", seed, {"hr@10": 0.5, "ndcg@10": 0.3}, options={"note": "a_b~c^d$e"})
    latex = render(build_tables(collect_runs(tmp_path)), "latex")
    assert r"a\_b\textasciitilde{}c\textasciicircum{}d\$e" in latex and "~" not in latex and "^d" not in latex


def test_csv_round_trips_numbers(results: Path) -> None:
    frame = pd.read_csv(io.StringIO(render(build_tables(collect_runs(results)), "csv")))
    bpr = frame[frame["model"] == "bpr"].iloc[0]
    assert bpr["ndcg@10_mean"] == pytest.approx(statistics.mean([0.40, 0.41, 0.45]))
    assert bpr["ndcg@10_n"] == 3


def test_different_splits_never_share_a_table(tmp_path: Path) -> None:
    _write_run(tmp_path, "bpr", 0, {"hr@10": 0.5, "ndcg@10": 0.3}, split="a")
    _write_run(tmp_path, "bpr", 0, {"hr@10": 0.6, "ndcg@10": 0.4}, split="b")
    assert len(build_tables(collect_runs(tmp_path))) == 2


def test_errors_are_clear(tmp_path: Path, results: Path) -> None:
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    with pytest.raises(HBenchError, match="no finished runs"):
        collect_runs(empty)
    with pytest.raises(HBenchError, match="recall@20 not in the runs"):
        build_tables(collect_runs(results), ["recall@20"])
    with pytest.raises(HBenchError, match="unknown format"):
        render([], "docx")


def test_settings_shared_by_every_row_move_under_the_table(tmp_path: Path) -> None:
    for model, options in (("bpr", {"dim": 32}), ("hyperml", {"dim": 32, "c": 0.5})):
        path = tmp_path / model
        path.mkdir()
        config = {"model": model, "model_options": {"c": options["c"]} if "c" in options else {}, "lr": default_lr(model),
                  "train": {"seed": 0, "dim": options["dim"], "dataset": "toy"}, "protocol": "loo",
                  "metric": "ndcg@10", "dataset": {"name": "toy", "split_hash": "s"}, "group_hash": model}
        (path / "config.json").write_text(json.dumps(config))
        (path / "metrics.json").write_text(json.dumps({"status": "completed", "train_seconds": 1.0, "eval_seconds": 1.0,
                                                       "test": {"hr@10": 0.5, "ndcg@10": 0.3}}))
    (table,) = build_tables(collect_runs(tmp_path))
    assert sorted(r.label for r in table.rows) == ["bpr", "hyperml (c=0.5)"]
    assert table.shared_settings == ("dim=32",) and "All rows: dim=32." in table.caption()


def test_the_caption_states_the_budget_each_tuned_model_had(tmp_path: Path) -> None:
    """Runs below an `hbench tune` output (its tune.json) carry their search budget into the caption."""
    tuned = tmp_path / "tune-toy"
    (tuned / "seeds").mkdir(parents=True)
    (tuned / "tune.json").write_text(json.dumps({
        "trials_per_model": 12, "trial_seeds": [0], "final_seeds": [0, 1, 2], "train": {},
        "spaces": {"bpr": {"lr": {"low": 1e-3, "high": 0.1, "log": True}, "reg": {"low": 1e-5, "high": 0.1, "log": True}}}}))
    for seed in range(3):
        _write_run(tuned / "seeds", "bpr", seed, {"hr@10": 0.6, "ndcg@10": 0.4})
    _write_run(tmp_path / "untuned", "pop", 0, {"hr@10": 0.5, "ndcg@10": 0.2})
    _write_run(tuned / "baselines", "pop", 1, {"hr@10": 0.5, "ndcg@10": 0.2}, group="pop-beside")  # not searched
    _write_run(tuned / "search", "bpr", 0, {"hr@10": 0.9, "ndcg@10": 0.9}, group="a-trial")  # a search record
    (table,) = build_tables(collect_runs(tmp_path, selected_only=True))
    assert [r.label for r in table.rows if r.model == "bpr"] == ["bpr"]  # the search's trials are not results
    assert len(collect_runs(tuned / "search", selected_only=True)) == 1  # unless the search is asked for
    assert ("Tuning budget: bpr: 12 TPE trials over lr, reg (seed 0, validation only), then 3 seeds of the winner; "
            "pop [pop-be], pop [popNon]: no search recorded with the runs (defaults, or settings given to `train` or `sweep`).") in table.caption()
    (alone,) = build_tables(collect_runs(tmp_path / "untuned"))
    assert "Tuning budget" not in alone.caption()


def test_seconds_to_quality_is_the_mean_over_runs_and_a_dash_without_a_validation_curve(tmp_path: Path) -> None:
    for seed, seconds in enumerate([5.0, 8.0]):
        _write_run(tmp_path, "bpr", seed, {"hr@10": 0.6, "ndcg@10": 0.4})
        metrics_file = tmp_path / f"bpr-g-s1-{seed}" / "metrics.json"
        metrics_file.write_text(json.dumps({**json.loads(metrics_file.read_text()), "time_to_quality_seconds": seconds}))
    _write_run(tmp_path, "pop", 0, {"hr@10": 0.5, "ndcg@10": 0.2})  # records no time to quality
    (table,) = build_tables(collect_runs(tmp_path), time_to_quality=True)
    lines = {line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[1:-1]]
             for line in render([table], "markdown").splitlines() if line.startswith("| ")}
    assert lines["model"][-1] == "s to 95%"
    assert lines["bpr"][-1] == "6.5" and lines["pop"][-1] == "—"
