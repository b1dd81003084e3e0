"""`hbench table` over a tree of studies: it renders what it can and says, one short line per group, what it
left out and why (issue 33: audit B09, B11, B12, B13); progress on big trees (B01, B02); `hbench.table()`
tests like the command line by default (rough edge 15)."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hbench.cli import main
from tests.conftest import REPO
from tests.reports.runfiles import write_run

REFERENCE = REPO / "results" / "reference"
USERS = np.arange(40)


def run(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def warnings_of(err: str) -> list[str]:
    lines = [line for line in err.splitlines() if line.strip()]
    assert not any(line.startswith("error:") for line in lines), err
    return [line for line in lines if line.startswith("warning:")]


def _per_user(seed: int, better: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    hr = (rng.random(len(USERS)) < (0.8 if better else 0.3)).astype(float)
    return pd.DataFrame({"user": USERS, "hr@10": hr, "ndcg@10": hr / 2})


@pytest.fixture(scope="module")
def repository_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """results/ as a new user has it after the demo: the committed reference runs (most without per-user
    files, several configurations run with the same seeds in two studies) beside freshly trained runs."""
    if not (REFERENCE / "amazon-cd-60-epochs").is_dir():
        pytest.skip("the committed reference runs are not in this checkout")
    from hbench.config import TrainConfig
    from hbench.datasets.custom import CustomFiles
    from hbench.datasets.prepare import prepare_dataset
    from hbench.datasets.synthetic import HierarchySpec, generate_interactions
    from hbench.training.trainer import train

    root = tmp_path_factory.mktemp("tree")
    results = root / "results"
    shutil.copytree(REFERENCE, results / "reference")
    csv = root / "tiny.csv"
    generate_interactions(HierarchySpec(categories=3, subcategories=3, items_per_subcategory=12, users=150,
                                        seed=7)).to_csv(csv, index=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HBENCH_HOME", str(root / "home"))
        dataset = prepare_dataset("tiny", custom=CustomFiles(name="tiny", interactions=csv),
                                  overrides={"negatives": 50}, home=root / "home")
        for model in ("bpr", "hyperml"):
            for seed in (0, 1):
                train(model, TrainConfig(dataset=str(dataset.path), dim=8, epochs=2, batch_size=512, device="cpu",
                                         seed=seed), out=results / "demo", home=root / "home")
    return results


def test_a_table_over_the_repository_renders_every_table_and_says_what_it_left_untested(repository_tree, capsys,
                                                                                        monkeypatch):
    monkeypatch.chdir(repository_tree.parent)  # as the README has it: `hbench table results/` in the checkout
    code, out, err = run(["table", "results/"], capsys)
    assert code == 0, err
    # The fresh runs have per-user files: their table is tested as asked.
    tiny = out.split("### tiny — full", 1)[1].split("###", 1)[0]
    assert "paired t-test" in tiny and "unit user" in tiny
    # The committed reference runs have none: their tables keep their means, and the caption says why.
    for title in ("amazon-cd — full", "amazon-sports — loo", "amazon-clothing — loo", "movielens-100k — loo"):
        section = out.split(f"### {title}", 1)[1].split("###", 1)[0]
        assert "No significance tests:" in section and "lack per_user.parquet" in section
    lines = warnings_of(err)
    assert len(lines) == 6  # one per reference table (amazon-cd, -clothing, -men, -sports, movielens, fashion)
    assert all(len(line) < 200 and "--unit seed" in line for line in lines), lines
    assert any(line.startswith("warning: amazon-cd/full: no significance tests: ") for line in lines)


def test_a_seed_run_twice_in_two_studies_gives_a_row_per_study(repository_tree, capsys, monkeypatch):
    monkeypatch.chdir(repository_tree.parent)
    code, out, err = run(["table", "results/", "--unit", "seed", "--test", "ttest", "-f", "csv"], capsys)
    assert code == 0, err
    assert all(len(line) < 200 for line in warnings_of(err))
    frame = pd.read_csv(pd.io.common.StringIO(out))
    # cml 26defd8fe5 ran seeds 0-2 in amazon-cd-and-clothing-baselines and seeds 0-4 in amazon-cd-60-epochs
    cml = frame[frame["group_hash"].str.startswith("26defd8fe5")].set_index("study")
    assert sorted(cml.index) == ["amazon-cd-60-epochs", "amazon-cd-and-clothing-baselines"]
    assert all(label.endswith(f"[{study}]") for study, label in cml["model"].items())  # the rows say which
    for study, seeds in (("amazon-cd-60-epochs", 5), ("amazon-cd-and-clothing-baselines", 3)):
        runs = sorted((REFERENCE / study / "amazon-cd" / "full" / "cml").glob("26defd8fe5-seed*"))
        values = [json.loads((r / "metrics.json").read_text())["test"]["recall@20"] for r in runs]
        assert len(values) == seeds == cml.loc[study, "runs"]
        assert cml.loc[study, "recall@20_mean"] == pytest.approx(statistics.mean(values))
    amazon_cd = frame[(frame["dataset"] == "amazon-cd") & frame["group_hash"].notna() & (frame["group_hash"] != "")]
    assert amazon_cd["test"].eq("ttest").all() and amazon_cd["unit"].eq("seed").all()  # tested, by seed


def test_a_damaged_run_folder_is_skipped_with_one_line(tmp_path: Path, capsys) -> None:
    for seed in (0, 1):
        write_run(tmp_path, "bpr", seed, test={"hr@10": 0.5 + seed / 10, "ndcg@10": 0.3})
    broken = write_run(tmp_path / "other", "cml", 0, test={"hr@10": 0.6, "ndcg@10": 0.3})
    (broken / "config.json").write_text('{"model": "cml", "train": ')
    code, out, err = run(["table", str(tmp_path), "--unit", "seed"], capsys)
    assert code == 0 and "| bpr " in out and "cml" not in out
    (line,) = warnings_of(err)
    assert line.startswith("warning: skipped 1 run folder with a damaged config.json: ")
    assert str(broken / "config.json") in line
    # nothing readable at all: one error line
    for config in tmp_path.rglob("config.json"):
        config.write_text("[]")
    code, out, err = run(["table", str(tmp_path)], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith(f"error: no readable finished runs under {tmp_path}: 3 skipped, e.g. ")
    assert "config.json is damaged (it is not a JSON object)" in err


def test_a_metric_only_some_tables_have_skips_the_others_with_one_line(tmp_path: Path, capsys) -> None:
    for seed in (0, 1):
        write_run(tmp_path, "bpr", seed, test={"hr@10": 0.5, "ndcg@10": 0.3, "mrr": 0.2})
        write_run(tmp_path, "bpr", seed, test={"hr@10": 0.5, "ndcg@10": 0.3}, dataset="other", split="s2")
    code, out, err = run(["table", str(tmp_path), "-m", "mrr", "--no-test"], capsys)
    assert code == 0 and "### toy — loo" in out and "other" not in out
    (line,) = warnings_of(err)
    assert line.startswith("warning: other/loo: table skipped: no runs record mrr")
    code, out, err = run(["table", str(tmp_path), "-m", "recall@20", "--no-test"], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and "recall@20 not in the runs of" in err


def test_a_baseline_some_tables_lack_leaves_only_those_untested(tmp_path: Path, capsys) -> None:
    for seed in (0, 1, 2):
        write_run(tmp_path, "bpr", seed, test={"hr@10": 0.5 + seed / 100, "ndcg@10": 0.3})
        write_run(tmp_path, "cml", seed, test={"hr@10": 0.6 + seed / 50, "ndcg@10": 0.4})
        write_run(tmp_path, "cml", seed, test={"hr@10": 0.6, "ndcg@10": 0.4 + seed / 50}, dataset="other", split="s2")
        write_run(tmp_path, "pop", seed, test={"hr@10": 0.1, "ndcg@10": 0.1 - seed / 100}, dataset="other", split="s2")
    code, out, err = run(["table", str(tmp_path), "--unit", "seed", "--baseline", "bpr"], capsys)
    assert code == 0, err
    (line,) = warnings_of(err)
    assert line == "warning: other/loo: no significance tests: --baseline 'bpr' names none of its rows"
    assert "baseline (bpr; chosen with --baseline)" in out.split("### toy — loo", 1)[1]


def test_big_trees_report_progress_unless_quiet_but_warnings_always(tmp_path: Path, capsys) -> None:
    from hbench.reports.collect import PROGRESS_FROM_RUNS

    for i in range(PROGRESS_FROM_RUNS):
        write_run(tmp_path, "bpr", i, test={"hr@10": 0.5, "ndcg@10": 0.3})
    code, out, err = run(["table", str(tmp_path)], capsys)  # no per-user files: untested, one warning
    assert code == 0 and f"| {PROGRESS_FROM_RUNS} " in out
    assert f"reading {PROGRESS_FROM_RUNS} finished runs under {tmp_path}" in err
    assert len(warnings_of(err)) == 1
    code, out, err = run(["table", str(tmp_path), "--quiet"], capsys)
    assert code == 0 and "reading" not in err and len(warnings_of(err)) == 1 and err.count("\n") == 1


def test_the_python_api_tests_like_the_command_line_by_default(tmp_path: Path, capsys) -> None:
    import hbench

    for seed in range(3):
        write_run(tmp_path, "bpr", seed, per_user=_per_user(seed, better=False))
        write_run(tmp_path, "cml", seed, per_user=_per_user(seed + 10, better=True))
    code, out, err = run(["table", str(tmp_path)], capsys)
    assert code == 0 and err == ""
    assert "† significantly better than the baseline" in out and "paired t-test" in out  # the CLI's default tests
    assert hbench.table(tmp_path) == out
    assert "paired t-test" not in hbench.table(tmp_path, significance=None)
