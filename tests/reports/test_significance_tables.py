"""Significance markers, footnotes and the papers' rows in tables built from hand-made run directories.

The per-user numbers are chosen so that the outcome is known: against bpr (the best non-proposed row),
hyperml gains a hit for 50 of 200 users (p ≈ 1e-13), hvacf gains 10 and loses 3 (one-sided t-test
p ≈ 0.026: significant alone, not after Holm over the table), cml is worse, and nDCG is identical for
hyperml and hvacf (all differences zero, p = 1).
"""

from __future__ import annotations

import io
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from hbench.errors import HBenchError
from hbench.reports import significance as sig
from hbench.reports.collect import collect_runs
from hbench.reports.paper import REPORTED
from hbench.reports.significance import SignificanceSettings
from hbench.reports.tables import build_tables, render
from tests.reports.runfiles import write_run

USERS = np.arange(200)
BPR_HR = (USERS % 2 == 0).astype(float)  # mean 0.5
HYPERML_HR = np.where(USERS % 4 == 1, 1.0, BPR_HR)  # +1 for the 50 users u ≡ 1 (mod 4)
HVACF_HR = BPR_HR.copy()
HVACF_HR[[1, 3, 5, 7, 9, 11, 13, 15, 17, 19]] = 1.0  # ten gains
HVACF_HR[[0, 2, 4]] = 0.0  # three losses
CML_HR = np.where(USERS % 4 == 0, 1.0, 0.0)  # mean 0.25


def _per_user(hr: np.ndarray, ndcg: np.ndarray, shuffle: int | None = None) -> pd.DataFrame:
    frame = pd.DataFrame({"user": USERS, "n_targets": 1, "hr@10": hr, "ndcg@10": ndcg})
    # Rows in another order: pairing must follow the user column, not the row position.
    return frame.sample(frac=1.0, random_state=shuffle) if shuffle is not None else frame


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    for seed in range(3):
        write_run(tmp_path, "bpr", seed, per_user=_per_user(BPR_HR, 0.5 * BPR_HR))
        write_run(tmp_path, "hyperml", seed, per_user=_per_user(HYPERML_HR, 0.5 * BPR_HR, shuffle=seed))
        write_run(tmp_path, "hvacf", seed, per_user=_per_user(HVACF_HR, 0.5 * BPR_HR))
        write_run(tmp_path, "cml", seed, per_user=_per_user(CML_HR, 0.4 * BPR_HR))
    return tmp_path


def _table(results: Path, **settings):
    (table,) = build_tables(collect_runs(results), significance=SignificanceSettings(**settings))
    return table


def _marked(table) -> set[tuple[str, str]]:
    return {(r.label, m) for r in table.rows for m in table.metrics if table.marks(r, m)}


def test_markers_exactly_where_the_numbers_say(results: Path) -> None:
    table = _table(results)
    report = table.significance
    labels = {r.group_hash: r.label for r in table.rows}
    assert {labels[g] for g in report.baselines.values()} == {"bpr"}
    assert report.family_size == 6  # hyperml, hvacf, cml × hr@10, ndcg@10
    assert _marked(table) == {("hyperml", "hr@10")}
    # The raw p-values are scipy's, and the markers follow statsmodels' Holm on exactly those six.
    raw = {(labels[c.candidate], c.metric): c.outcome.p_value for c in report.comparisons}
    assert raw["hvacf", "hr@10"] == pytest.approx(stats.ttest_rel(HVACF_HR, BPR_HR, alternative="greater").pvalue)
    assert raw["hvacf", "hr@10"] < 0.05 and raw["hyperml", "ndcg@10"] == 1.0
    keys = sorted(raw)
    reject, adjusted, _, _ = multipletests([raw[k] for k in keys], 0.05, "holm")
    assert {k for k, r in zip(keys, reject) if r} == {("hyperml", "hr@10")}
    assert [c.p_adjusted for c in sorted(report.comparisons, key=lambda c: (labels[c.candidate], c.metric))] == \
        pytest.approx(adjusted)
    markdown = render([table], "markdown")
    assert "**0.7500 ± 0.0000**†" in markdown and markdown.count("†") == 2  # the cell and the footnote
    assert "Holm correction over a family of 6 hypotheses" in markdown and "unit user" in markdown
    assert "one-sided paired t-test" in markdown and "α = 0.05" in markdown and "n = 200" in markdown


def test_without_correction_the_marginal_row_is_marked_too(results: Path) -> None:
    assert _marked(_table(results, correction="none")) == {("hyperml", "hr@10"), ("hvacf", "hr@10")}
    assert "no correction" in render([_table(results, correction="none")], "markdown")


def test_every_test_marks_the_clear_winner(results: Path) -> None:
    for test in sig.TESTS:
        table = _table(results, test=test, n_resamples=999)
        assert ("hyperml", "hr@10") in _marked(table) and ("cml", "hr@10") not in _marked(table), test


def test_named_baseline_and_its_errors(results: Path) -> None:
    table = _table(results, baseline="cml")
    assert {(r, m) for r, m in _marked(table)} >= {("bpr", "hr@10"), ("hyperml", "hr@10"), ("bpr", "ndcg@10")}
    assert "chosen with --baseline" in table.caption()
    with pytest.raises(HBenchError, match="baseline 'vbpr' is not a row of this table"):
        _table(results, baseline="vbpr")


def test_ambiguous_baseline_is_refused(results: Path) -> None:
    for reg in (0.1, 0.2):
        write_run(results, "vbpr", 0, per_user=_per_user(BPR_HR, BPR_HR), options={"reg": reg})
    with pytest.raises(HBenchError, match=r"baseline 'vbpr' matches 2 rows \(vbpr \(reg=0.1\); vbpr \(reg=0.2\)\)"):
        _table(results, baseline="vbpr")
    # An exact label wins over the model name.
    assert {r for r, _ in _marked(_table(results, baseline="vbpr (reg=0.1)"))} == {"hyperml"}


def test_unit_seed_pairs_runs_by_seed(tmp_path: Path) -> None:
    bpr = [0.50, 0.52, 0.49, 0.51, 0.50]
    gain = [0.05, 0.06, 0.04, 0.05, 0.07]
    for seed in range(5):
        write_run(tmp_path, "bpr", seed, test={"hr@10": bpr[seed], "ndcg@10": 0.3})
        write_run(tmp_path, "hyperml", seed, test={"hr@10": bpr[seed] + gain[seed], "ndcg@10": 0.3})
    write_run(tmp_path, "hyperml", 7, test={"hr@10": 0.9, "ndcg@10": 0.9})  # no bpr seed 7: not paired
    table = _table(tmp_path, unit="seed")
    (hr,) = [c for c in table.significance.comparisons if c.metric == "hr@10"]
    assert hr.seeds == (0, 1, 2, 3, 4) and hr.outcome.n == 5
    assert hr.outcome.p_value == pytest.approx(stats.ttest_rel(np.add(bpr, gain), bpr, alternative="greater").pvalue)
    assert _marked(table) == {("hyperml", "hr@10")}
    assert "unit seed" in table.caption() and "n = 5" in table.caption()


def test_a_single_seed_is_not_testable_and_says_so(tmp_path: Path) -> None:
    write_run(tmp_path, "bpr", 0, test={"hr@10": 0.5, "ndcg@10": 0.3})
    write_run(tmp_path, "hyperml", 0, test={"hr@10": 0.9, "ndcg@10": 0.4})
    table = _table(tmp_path, unit="seed")
    assert table.significance.family_size == 0 and _marked(table) == set()
    assert "2 comparison(s) not testable (1 pair(s): at least 2 are needed)" in table.caption()


def test_all_pairs_marks_with_row_letters(results: Path) -> None:
    table = _table(results, pairs="all")
    letters = {r.label: table.letters[r.group_hash] for r in table.rows}
    assert letters == {"bpr": "a", "cml": "b", "hvacf": "c", "hyperml": "d"}
    marks = {(r.label, m): table.marks(r, m) for r in table.rows for m in table.metrics}
    # hyperml − hvacf in hr@10: +1 for 40 users, −1 for 3 → p ≈ 7e-10; hvacf vs bpr stays marginal (p ≈ 0.05).
    assert marks["hyperml", "hr@10"] == "abc" and marks["bpr", "hr@10"] == "b" and marks["cml", "hr@10"] == ""
    assert marks["hvacf", "hr@10"] == "b"
    assert marks["hyperml", "ndcg@10"] == "b"  # equal to bpr and hvacf in nDCG
    assert table.significance.family_size == 12 and all(c.outcome.alternative == "two-sided"
                                                        for c in table.significance.comparisons)
    markdown = render([table], "markdown")
    assert "(d) hyperml" in markdown and "<sup>abc</sup>" in markdown and "two-sided" in markdown


def test_all_pairs_wilcoxon_never_marks_the_row_with_the_lower_mean(tmp_path: Path) -> None:
    """Issue 13.9: this table marked cml (lower mean) as significantly better; the marker contradicted the cell."""
    # cml gains 0.1 for 60 users and loses 1.0 for 10: bpr has the higher mean (0.5714 vs 0.5143), but
    # the signed-rank test rejects in cml's favour (scipy: p ≈ 9e-5 for cml > bpr, ≈ 1 for bpr > cml).
    users = np.arange(70)
    bpr = np.where(users < 60, 0.5, 1.0)
    cml = np.where(users < 60, 0.6, 0.0)
    assert bpr.mean() > cml.mean()
    assert stats.wilcoxon(cml, bpr, alternative="greater").pvalue < 1e-3 < stats.wilcoxon(bpr, cml, alternative="greater").pvalue
    for seed in range(2):
        write_run(tmp_path, "bpr", seed, per_user=pd.DataFrame({"user": users, "n_targets": 1, "hr@10": bpr}))
        write_run(tmp_path, "cml", seed, per_user=pd.DataFrame({"user": users, "n_targets": 1, "hr@10": cml}))
    (table,) = build_tables(collect_runs(tmp_path), ["hr@10"],
                            significance=SignificanceSettings(pairs="all", test="wilcoxon"))
    marks = {r.label: table.marks(r, "hr@10") for r in table.rows}
    assert marks == {"bpr": "", "cml": ""}
    assert "1 comparison(s) not marked: the test's direction disagrees with the reported means" in table.caption()
    (table,) = build_tables(collect_runs(tmp_path), ["hr@10"],
                            significance=SignificanceSettings(pairs="all", test="ttest"))
    # the t-test measures the mean, which leans the other way and not significantly (scipy: p > 0.05)
    assert stats.ttest_rel(bpr, cml).pvalue > 0.05
    assert {r.label: table.marks(r, "hr@10") for r in table.rows} == {"bpr": "", "cml": ""}


def test_bootstrap_on_few_pairs_carries_a_caution(results: Path) -> None:
    assert "Caution: below 20 pairs the bootstrap test" in _table(results, unit="seed", test="bootstrap").caption()
    assert "Caution" not in _table(results, unit="user", test="bootstrap", n_resamples=999).caption()  # 200 users


def test_lower_is_better_metric_ranks_and_tests_downwards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sig.METRIC_DIRECTION, "rank", -1)
    for seed in range(3):
        write_run(tmp_path, "bpr", seed, per_user=pd.DataFrame({"user": USERS, "rank": 10 + USERS % 7}))
        write_run(tmp_path, "hyperml", seed, per_user=pd.DataFrame({"user": USERS, "rank": 5 + USERS % 7}))
    (table,) = build_tables(collect_runs(tmp_path), ["rank"], significance=SignificanceSettings())
    rows = {r.label: r for r in table.rows}
    assert rows["hyperml"].cells["rank"].rank == 1 and rows["bpr"].cells["rank"].rank == 2
    assert _marked(table) == {("hyperml", "rank")}


def test_latex_html_and_csv_carry_the_markers(results: Path) -> None:
    tables = [_table(results)]
    latex = render(tables, "latex")
    assert "\\toprule" in latex and "\\midrule" in latex and "\\bottomrule" in latex
    assert "\\textbf{0.7500 $\\pm$ 0.0000}$^{\\dagger}$" in latex and "$\\alpha$ = 0.05" in latex and "†" not in latex
    root = ET.fromstring(render(tables, "html", fragment=True))  # well-formed
    assert [th.text for th in root.iter("th")] == ["model", "HR@10", "nDCG@10", "runs", "train s", "eval s"]
    cells = {tr[0].text: tr for tr in root.iter("tr") if tr[0].tag == "td"}
    assert cells["hyperml"][1].find("strong").text == "0.7500 ± 0.0000" and cells["hyperml"][1].find("sup").text == "†"
    assert cells["cml"][1].find("sup") is None and "Holm correction" in "".join(root.find("tfoot").itertext())
    frame = pd.read_csv(io.StringIO(render(tables, "csv")))
    row = frame.set_index("model").loc["hyperml"]
    assert bool(row["hr@10_significant"]) and not bool(row["ndcg@10_significant"]) and row["hr@10_baseline"] == "bpr"
    assert row["hr@10_diff"] == pytest.approx(0.25) and row["family_size"] == 6 and row["ndcg@10_pairs_nonzero"] == 0
    assert row["hr@10_d_z"] == pytest.approx(np.mean(HYPERML_HR - BPR_HR) / np.std(HYPERML_HR - BPR_HR, ddof=1))
    assert math.isnan(frame.set_index("model").loc["bpr", "hr@10_p"])  # the baseline is not tested against itself


def _auc_runs(root: Path, dataset: str, protocol: str = "auc", n_users: int = 34_244) -> None:
    for model, value in (("vbpr", 0.70), ("hvacf", 0.75)):
        for seed in range(2):
            write_run(root, model, seed, dataset=dataset, protocol=protocol, test={"auc": value + seed / 100},
                      split=f"{dataset}-{protocol}-{n_users}", dataset_info={"n_users": n_users})


def test_paper_rows_only_where_dataset_and_protocol_match(tmp_path: Path) -> None:
    _auc_runs(tmp_path, "amazon-men")
    _auc_runs(tmp_path, "amazon-men", protocol="full")
    _auc_runs(tmp_path, "tradesy")
    for seed in range(2):
        write_run(tmp_path, "hyperml", seed, dataset="movielens-1m", split="ml1m",
                  test={"hr@10": 0.70, "ndcg@10": 0.40}, dataset_info={"n_users": 6_040, "negatives": 100})
    tables = {(t.dataset, t.protocol): t for t in build_tables(collect_runs(tmp_path), with_paper=True,
                                                              significance=SignificanceSettings(unit="seed"))}
    assert [r.label for r in tables["amazon-men", "auc"].reported] == ["hvacf (reported, Shimizu et al. 2024)"]
    assert tables["amazon-men", "full"].reported == () and tables["tradesy", "auc"].reported == ()
    (ml,) = tables["movielens-1m", "loo"].reported
    assert dict(ml.values) == {"hr@10": "0.7563", "ndcg@10": "0.5620"}
    men = tables["amazon-men", "auc"]
    markdown = render([men], "markdown")
    assert "| hvacf (reported, Shimizu et al. 2024) | 0.830 " in markdown
    assert "no std and take no part in the bold/underline ranking or in significance tests" in markdown
    # The reported 0.830 beats every measured row but is neither bold nor a baseline nor tested.
    assert "**0.830" not in markdown and all(c.baseline != "" for c in men.significance.comparisons)
    assert men.significance.family_size == 1  # hvacf vs vbpr only
    assert "\\begin{tabular}" in render([men], "latex") and "Shimizu et al. 2024" in render([men], "html")
    frame = pd.read_csv(io.StringIO(render([men], "csv")))
    assert frame.loc[frame["model"].str.contains("reported"), "auc_mean"].item() == pytest.approx(0.830)


def test_paper_rows_are_withheld_from_samples_and_other_candidate_counts(tmp_path: Path) -> None:
    _auc_runs(tmp_path, "amazon-men", n_users=400)  # a 400-user sample in the DVBPR layout
    for seed in range(2):
        write_run(tmp_path, "hyperml", seed, dataset="movielens-1m", split="ml1m-999",
                  test={"hr@10": 0.70, "ndcg@10": 0.40}, dataset_info={"n_users": 6_040, "negatives": 999})
        write_run(tmp_path, "hyperml", seed, dataset="movielens-1m", split="ml1m-old", test={"hr@10": 0.70})
    tables = {t.split_hash: t for t in build_tables(collect_runs(tmp_path), with_paper=True)}
    assert all(t.reported == () for t in tables.values())
    assert tables["amazon-men-auc-400"].reported_withheld == (
        "hvacf (reported, Shimizu et al. 2024): the paper's data has about 34,000 users, these runs 400 "
        "(a sample or subset)",)
    assert tables["ml1m-999"].reported_withheld == (
        "hyperml (reported, Vinh Tran et al. 2020): the paper ranks against 100 sampled negatives, these runs "
        "against 999",)
    assert "do not record theirs" in tables["ml1m-old"].reported_withheld[0]
    markdown = render([tables["amazon-men-auc-400"]], "markdown")
    assert "0.830" not in markdown and "Not shown, as not comparable: hvacf (reported" in markdown


def test_without_with_paper_no_reported_rows(tmp_path: Path) -> None:
    _auc_runs(tmp_path, "amazon-men")
    (table,) = build_tables(collect_runs(tmp_path))
    assert table.reported == () and "reported" not in render([table], "markdown")


def test_missing_per_user_metrics_leave_the_table_untested_and_say_so(tmp_path: Path, capsys) -> None:
    write_run(tmp_path, "bpr", 0, test={"hr@10": 0.5, "ndcg@10": 0.3})
    write_run(tmp_path, "hyperml", 0, test={"hr@10": 0.6, "ndcg@10": 0.3})
    table = _table(tmp_path)
    assert table.significance is None and "2 of 2 runs lack per_user.parquet" in table.untested
    assert "No significance tests: 2 of 2 runs lack per_user.parquet" in render([table], "markdown")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--unit seed tests them by seed" in err


def test_hgcf_table_2_rows_join_amazon_cd_full_ranking_tables(tmp_path: Path) -> None:
    for model, value in (("bpr", 0.10), ("hgcf", 0.12)):
        for seed in range(2):
            write_run(tmp_path, model, seed, dataset="amazon-cd", protocol="full", split="cd",
                      test={"recall@20": value + seed / 100, "ndcg@20": value / 2},
                      dataset_info={"n_users": 22_947}, dim=50)
            write_run(tmp_path, model, seed, dataset="amazon-cd", protocol="full", split="cd-32",
                      test={"recall@20": value}, dataset_info={"n_users": 22_947}, dim=32)
    tables = {t.split_hash: t for t in build_tables(collect_runs(tmp_path), with_paper=True,
                                                    significance=SignificanceSettings(unit="seed"))}
    assert tables["cd-32"].reported == () and tables["cd-32"].reported_withheld[0] == (
        "bpr (reported, Sun et al. 2021): the paper reports at dimension 50, these runs at 32")
    table = tables["cd"]
    assert [r.model for r in table.reported] == ["bpr", "cml", "lightgcn", "hgcf"]
    markdown = render([table], "markdown")
    assert re.search(r"\| hgcf \(reported, Sun et al\. 2021\) +\| 0\.1455 +\| 0\.0909 ", markdown)
    # One source sentence names the four models and the protocol difference.
    assert markdown.count("Sun et al. 2021, WWW 2021") == 1 and "bpr, cml, hgcf, lightgcn: Sun et al." in markdown
    assert "reports test metrics during training" in markdown and "validation item" in markdown
    assert "**0.1455" not in markdown  # the paper's row is never ranked


def test_hgcf_table_2_rows_are_the_numbers_printed_in_the_reference_notes(shared_data: Path) -> None:
    # An independent transcription: the Amazon-CD table of shared/reference/published.md.
    notes = (shared_data.parent / "reference" / "published.md").read_text()
    section = notes.split("Amazon-CD (22,947 users")[1].split("\n\n")[1]
    printed = {}
    for line in section.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        printed[cells[0]] = [c.split()[0] for c in cells[1:5]]
    names = {"bpr": "BPRMF", "cml": "CML", "lightgcn": "LightGCN", "hgcf": "HGCF"}
    rows = [r for r in REPORTED if r.dataset == "amazon-cd"]
    assert {r.model for r in rows} == set(names)
    for r in rows:
        assert [r.values[m] for m in ("recall@10", "recall@20", "ndcg@10", "ndcg@20")] == printed[names[r.model]]
        assert r.users == 22_947 and r.protocol == "full" and r.negatives is None
