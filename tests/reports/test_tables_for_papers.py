"""Tables as they go into a paper: row names, typeset metrics, ablation variants, captions, HTML pages."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from hbench.cli import main
from hbench.errors import HBenchError
from hbench.reports.collect import collect_runs
from hbench.reports.names import metric_name, setting_name
from hbench.reports.tables import build_tables, parse_labels, render
from tests.reports.runfiles import write_run


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    for seed in range(2):
        write_run(root, "bpr", seed, test={"hr@10": 0.5 + seed / 100, "ndcg@10": 0.3})
        write_run(root, "hyperml", seed, test={"hr@10": 0.6, "ndcg@10": 0.4}, options={"c": 2.0})
        write_run(root, "hyperml", seed, test={"hr@10": 0.7, "ndcg@10": 0.45}, options={"c": 0.5})
    return root


def _labels(tables) -> list[str]:
    return [r.label for t in tables for r in t.rows]


def test_metric_and_setting_names_are_typeset() -> None:
    assert [metric_name(m) for m in ("ndcg@10", "hr@10", "recall@20", "precision@5", "mrr", "auc", "auc_sampled")] == [
        "nDCG@10", "HR@10", "Recall@20", "Precision@5", "MRR", "AUC", "AUC (sampled)"]
    assert metric_name("rank") == "rank" and setting_name("gamma") == "γ" and setting_name("batch_size") == "batch size"


def test_rows_are_renamed_by_label_model_hash_or_run_directory(results: Path) -> None:
    runs = collect_runs(results)
    assert sorted(_labels(build_tables(runs))) == ["bpr", "hyperml (c=0.5)", "hyperml (c=2.0)"]
    c2 = runs[runs["settings"] == "c=2.0"]
    run_dir = c2["path"].iloc[0]
    group_hash = c2["group_hash"].iloc[0]
    for key in ("hyperml (c=2.0)", group_hash[:8], run_dir):
        labels = {key: "HyperML, c = 2", "bpr": "BPR-MF"}
        assert sorted(_labels(build_tables(runs, labels=labels))) == ["BPR-MF", "HyperML, c = 2", "hyperml (c=0.5)"], key
    renamed = build_tables(runs, labels={"hyperml (c=0.5)": "HyperML"})[0]
    assert next(r for r in renamed.rows if r.label == "HyperML").cells["hr@10"].mean == pytest.approx(0.7)


def test_label_mistakes_are_clear(results: Path) -> None:
    runs = collect_runs(results)
    with pytest.raises(HBenchError, match="names no row .*bpr; hyperml"):
        build_tables(runs, labels={"cml": "CML"})
    with pytest.raises(HBenchError, match="names 2 rows"):
        build_tables(runs, labels={"hyperml": "HyperML"})
    with pytest.raises(HBenchError, match="names 2 rows"):  # a folder holding both hyperml configurations
        build_tables(runs, labels={str(results / "toy" / "loo" / "hyperml"): "HyperML"})
    with pytest.raises(HBenchError, match="the same name: X"):
        build_tables(runs, labels={"bpr": "X", "hyperml (c=2.0)": "X"})
    with pytest.raises(HBenchError, match="RUN_OR_CONFIG=NAME"):
        parse_labels(["bpr"])
    # split at the last `=`: row labels hold `=` themselves
    assert parse_labels(["hyperml (c=2.0)=HyperML"]) == {"hyperml (c=2.0)": "HyperML"}


def test_latex_caption_is_one_sentence_with_details_below(results: Path) -> None:
    latex = render(build_tables(collect_runs(results)), "latex")
    caption = re.search(r"\\caption\{(.*)\}\\label\{tab:toy-loo-split\}", latex).group(1)
    assert caption.endswith(".") and caption.count(". ") == 0 and "HR@10, nDCG@10 on toy" in caption
    after = latex.split("\\end{tabular}")[1]
    assert "\\footnotesize" in after and "Protocol loo" in after and "ties pessimistic" in after
    assert "Protocol" not in caption and "model & HR@10 & nDCG@10" in latex


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.doctype, self.meta, self.tags, self.title = "", [], [], ""
        self._in_title = False

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)
        self._in_title = tag == "title"
        if tag == "meta":
            self.meta.append(dict(attrs))

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
            self._in_title = False


def test_html_is_a_utf8_page_or_a_fragment(results: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "table.html"
    with pytest.raises(SystemExit) as done:
        main(["table", str(results), "-f", "html", "--no-test", "--label", "bpr=BPR ± MF", "-o", str(out)])
    assert done.value.code == 0, capsys.readouterr().err
    page = _Page()
    page.feed(out.read_text(encoding="utf-8"))
    assert page.doctype.lower() == "doctype html" and {"charset": "utf-8"} in page.meta
    assert page.tags[:4] == ["html", "head", "meta", "title"] and "table" in page.tags and "toy" in page.title
    with pytest.raises(SystemExit) as done:
        main(["table", str(results), "-f", "html", "--no-test", "--fragment"])
    fragment = capsys.readouterr().out
    assert done.value.code == 0 and fragment.startswith('<table class="hbench">') and "<html" not in fragment
    root = ET.fromstring(fragment)
    assert root.find("caption").text.startswith("Test HR@10, nDCG@10 on toy")
    assert "Protocol loo" in "".join(root.find("tfoot").itertext())
    with pytest.raises(SystemExit) as done:
        main(["table", str(results), "--fragment"])
    assert done.value.code == 2 and "--fragment is for --format html" in capsys.readouterr().err


def test_ablation_rows_keep_their_variant_names(tiny_dataset, tmp_path: Path, capsys) -> None:
    out = tmp_path / "ablation"
    with pytest.raises(SystemExit) as done:
        main(["ablate", "hyperml", "-d", str(tiny_dataset.path), "--seeds", "1", "--epochs", "1", "--dim", "4",
              "--out", str(out), "-q"])
    assert done.value.code == 0, capsys.readouterr().err
    capsys.readouterr()
    variants = set(json.loads((out / "sweep.json").read_text())["spec"]["models"][0]["variants"])
    (table,) = build_tables(collect_runs(out))
    assert sorted(r.label for r in table.rows) == sorted(f"hyperml: {v}" for v in variants)
    assert "hyperml: no distortion term (γ = 0)" in render([table], "markdown")
