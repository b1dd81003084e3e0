"""`hbench compare` and the `hbench table` options, through the command line."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hbench.cli import main
from hbench.errors import HBenchError
from hbench.reports.compare import compare, render_compare, resolve
from tests.reports.runfiles import write_run

USERS = np.arange(60)
A_HR = (USERS % 3 != 0).astype(float)  # 2/3
B_HR = (USERS % 2 == 0).astype(float)  # 1/2


def run(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    for seed in range(3):
        shift = np.roll(np.arange(60), seed)  # a different per-user pattern for every seed
        write_run(root, "hyperml", seed, per_user=pd.DataFrame({"user": USERS, "hr@10": A_HR[shift],
                                                                "ndcg@10": 0.5 * A_HR[shift]}))
        write_run(root, "bpr", seed, per_user=pd.DataFrame({"user": USERS, "hr@10": B_HR, "ndcg@10": 0.5 * B_HR}))
    return root


def _group(root: Path, model: str) -> Path:
    return root / "toy" / "loo" / model


def test_compare_matches_direct_scipy_calls(results: Path) -> None:
    report = compare(_group(results, "hyperml"), _group(results, "bpr"), n_resamples=999)
    a = np.mean([A_HR[np.roll(np.arange(60), s)] for s in range(3)], axis=0)  # per-user mean over the 3 seeds
    hr = {r.metric: r for r in report.results}["hr@10"]
    assert report.seeds == (0, 1, 2) and hr.n == 60
    assert hr.effect.difference == pytest.approx(A_HR.mean() - B_HR.mean())
    assert hr.outcomes["ttest"].p_value == pytest.approx(stats.ttest_rel(a, B_HR, alternative="greater").pvalue)
    assert hr.outcomes["wilcoxon"].p_value == pytest.approx(stats.wilcoxon(a, B_HR, alternative="greater").pvalue)
    assert hr.n_effective == np.count_nonzero(a - B_HR)
    assert hr.effect.d_z == pytest.approx((a - B_HR).mean() / (a - B_HR).std(ddof=1))
    assert hr.effect.ci_low < hr.effect.difference < hr.effect.ci_high
    text = render_compare(report)
    assert "H1: A is better than B (one-sided; higher is better for every metric here); p-values uncorrected." in text
    assert "| hr@10 " in text and "60 users matched exactly" in text


def test_sides_by_group_prefix_and_single_run(results: Path) -> None:
    group = _group(results, "hyperml")
    (prefix,) = {p.name.split("-seed")[0] for p in group.iterdir()}
    assert resolve(group / prefix).seeds == [0, 1, 2]
    assert resolve(group / f"{prefix}-seed1").seeds == [1]
    with pytest.raises(HBenchError, match="no finished run in .* starts with 'nothing'"):
        resolve(group / "nothing")
    with pytest.raises(HBenchError, match="holds 2 configurations"):
        resolve(results)


def test_compare_cli_markdown_csv_latex(results: Path, capsys) -> None:
    a, b = str(_group(results, "hyperml")), str(_group(results, "bpr"))
    code, out, err = run(["compare", a, b, "--resamples", "999"], capsys)
    assert code == 0 and err == "" and "p permutation" in out and "| ndcg@10 " in out
    code, out, _ = run(["compare", a, b, "-f", "csv", "--unit", "seed", "-m", "hr@10", "--resamples", "999"], capsys)
    frame = pd.read_csv(io.StringIO(out))
    assert code == 0 and frame["metric"].tolist() == ["hr@10"] and frame["n"].item() == 3
    assert frame["mean_a"].item() == pytest.approx(A_HR.mean())
    code, out, _ = run(["compare", a, b, "-f", "latex", "--resamples", "999"], capsys)
    assert code == 0 and "\\toprule" in out and "\\bottomrule" in out


def test_compare_refuses_different_splits(results: Path, capsys) -> None:
    other = write_run(results, "cml", 0, split="another-split", test={"hr@10": 0.1, "ndcg@10": 0.1})
    code, out, err = run(["compare", str(other), str(_group(results, "bpr")), "--unit", "seed"], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "refusing to compare runs of different splits" in err and "another-sp" in err and "split-one" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--test", "anova"], "unknown test 'anova'"),
        (["--correction", "fdr"], "unknown correction 'fdr'"),
        (["--unit", "item"], "unknown unit 'item'"),
        (["--format", "docx"], "unknown format 'docx'"),
        (["--baseline", "nope"], "baseline 'nope' is not a row of this table"),
    ],
)
def test_table_option_errors_are_one_line(results: Path, capsys, args, message) -> None:
    code, out, err = run(["table", str(results), *args], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err


def test_table_cli_tests_by_default_and_switches_off(results: Path, capsys) -> None:
    code, out, _ = run(["table", str(results)], capsys)
    assert code == 0 and "†" in out and "Holm correction over a family of 2 hypotheses" in out
    for off in (["--no-test"], ["--test", "none"]):
        code, out, _ = run(["table", str(results), *off], capsys)
        assert code == 0 and "†" not in out and "hypotheses" not in out
    code, out, _ = run(["table", str(results), "--format", "html", "--test", "bootstrap", "--resamples", "999",
                        "--fragment"], capsys)
    assert code == 0 and out.startswith('<table class="hbench">') and "<sup>†</sup>" in out


def test_table_and_compare_on_real_training_runs(tiny_dataset, tmp_path: Path, capsys) -> None:
    from hbench.config import TrainConfig
    from hbench.training.trainer import train

    out_dir = tmp_path / "runs"
    for model in ("bpr", "hyperml"):
        for seed in (0, 1):
            config = TrainConfig(dataset=str(tiny_dataset.path), dim=8, epochs=2, batch_size=512, device="cpu",
                                 seed=seed)
            train(model, config, out=out_dir)
    code, out, err = run(["table", str(out_dir), "--with-paper"], capsys)
    assert code == 0, err
    assert "tiny — full" in out and "n = 150" in out and "reported" not in out  # no paper evaluates `tiny`
    hyperml, bpr = (next((out_dir / "tiny" / "full" / m).iterdir()).parent for m in ("hyperml", "bpr"))
    code, out, err = run(["compare", str(hyperml), str(bpr), "-m", "ndcg@20", "--resamples", "199"], capsys)
    assert code == 0, err
    assert "seeds 0, 1" in out and "150 users matched exactly" in out and "| ndcg@20 " in out
