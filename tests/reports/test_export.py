"""Recommendations and exported rankings, checked against brute force and against ranx reading the files.

ranx computes HR, Recall, Precision, nDCG and MRR from the exported run + qrels on its own; on a full
list (k ≥ candidates) its numbers must equal the test metrics hbench stored when the run finished.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hbench.cli import main
from hbench.config import TrainConfig
from hbench.errors import HBenchError
from hbench.geometry.poincare import poincare_distance
from hbench.training.restore import restore_run
from hbench.training.trainer import train

ranx = pytest.importorskip("ranx")

# hbench metric -> ranx metric (binary relevance: ranx's ndcg is Järvelin's rel/log2(i+1), as hbench's)
RANX_NAMES = {"hr": "hit_rate", "recall": "recall", "precision": "precision", "ndcg": "ndcg"}


def _train(dataset, model: str, out: Path, **settings) -> Path:
    config = TrainConfig(dataset=str(dataset.path), **{"dim": 8, "epochs": 3, "batch_size": 256, "device": "cpu",
                                                       **settings})
    result = train(model, config, out=out)
    assert result.status == "completed"
    return result.path


def _ranx_metrics(run_file: Path, qrels_file: Path, stored: dict[str, float]) -> dict[str, float]:
    wanted = {}
    for name in stored:
        base, _, k = name.partition("@")
        if base in RANX_NAMES:
            wanted[name] = f"{RANX_NAMES[base]}@{k}"
        elif name == "mrr":
            wanted[name] = "mrr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba's type-safety notes
        scores = ranx.evaluate(ranx.Qrels.from_file(str(qrels_file)), ranx.Run.from_file(str(run_file)),
                               list(wanted.values()))
    return {ours: float(scores[theirs]) for ours, theirs in wanted.items()}


def test_ranx_reproduces_full_ranking_test_metrics_from_ranx_and_trec_files(tiny_dataset, tmp_path, capsys) -> None:
    run_dir = _train(tiny_dataset, "hyperml", tmp_path / "results")
    stored = json.loads((run_dir / "metrics.json").read_text())["test"]
    for fmt, files in (("ranx", ("run.json", "qrels.json")), ("trec", ("run.trec", "qrels.trec"))):
        with pytest.raises(SystemExit) as exit_info:
            main(["export", str(run_dir), "--to", fmt, "--k", str(tiny_dataset.n_items), "-o", str(tmp_path / fmt),
                  "--quiet"])
        assert exit_info.value.code == 0, capsys.readouterr().err
        ours = _ranx_metrics(tmp_path / fmt / files[0], tmp_path / fmt / files[1], stored)
        assert set(ours) == {"hr@10", "recall@10", "precision@10", "ndcg@10", "hr@20", "recall@20", "precision@20",
                             "ndcg@20", "mrr"}
        assert ours == pytest.approx({m: stored[m] for m in ours}, abs=1e-12), fmt
    # The exported lists hold the test items among all items but training and validation ones, original ids.
    trec = pd.read_csv(tmp_path / "trec" / "run.trec", sep=" ", header=None, names=["u", "q0", "i", "rank", "s", "tag"],
                       dtype={"u": str, "i": str})
    users = pd.read_parquet(tiny_dataset.path / "users.parquet")["original_id"].to_numpy()
    items = pd.read_parquet(tiny_dataset.path / "items.parquet")["original_id"].to_numpy()
    seen = {(users[u], items[i]) for part in (tiny_dataset.train, tiny_dataset.valid)
            for u, i in zip(part.users, part.items, strict=True)}
    assert not any((u, i) in seen for u, i in zip(trec["u"], trec["i"], strict=True))
    assert (trec.groupby("u")["s"].apply(lambda s: s.is_monotonic_decreasing)).all()


def test_ranx_reproduces_sampled_loo_metrics(tiny_dataset, tmp_path, capsys) -> None:
    run_dir = _train(tiny_dataset, "bpr", tmp_path / "results", protocol="loo")
    stored = json.loads((run_dir / "metrics.json").read_text())["test"]
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(run_dir), "--to", "parquet", "--k", "1000", "-o", str(tmp_path / "pq"), "--quiet"])
    assert exit_info.value.code == 0, capsys.readouterr().err
    ranking, qrels = pd.read_parquet(tmp_path / "pq" / "run.parquet"), pd.read_parquet(tmp_path / "pq" / "qrels.parquet")
    assert ranking.groupby("user").size().eq(1 + tiny_dataset.test_negatives.shape[1]).all()  # target + 50 negatives
    nested = {u: dict(zip(g["item"], g["score"], strict=True)) for u, g in ranking.groupby("user")}
    truth = {u: dict.fromkeys(g["item"], 1) for u, g in qrels.groupby("user")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = ranx.evaluate(ranx.Qrels(truth), ranx.Run(nested), ["hit_rate@10", "ndcg@10", "ndcg@20", "mrr"])
    assert scores == pytest.approx({"hit_rate@10": stored["hr@10"], "ndcg@10": stored["ndcg@10"],
                                    "ndcg@20": stored["ndcg@20"], "mrr": stored["mrr"]}, abs=1e-12)


def test_recommend_matches_brute_force_poincare_distances_and_skips_training_items(tiny_dataset, tmp_path, capsys) -> None:
    run_dir = _train(tiny_dataset, "hyperml", tmp_path / "results")
    run = restore_run(run_dir)
    users = run.user_ids[[0, 7, 42]].tolist()
    ranked = run.recommend(users, k=5)
    # Brute force: the model's own distance to every item, training items removed, 5 nearest.
    reps = run.representations()
    c = run.config["model_options"]["c"]
    for internal, original in zip([0, 7, 42], users, strict=True):
        distance = poincare_distance(reps.users[internal].expand_as(reps.items).double(), reps.items.double(), c)
        distance[torch.from_numpy(tiny_dataset.train.items[tiny_dataset.train.users == internal])] = torch.inf
        expected = run.item_ids[np.argsort(distance.numpy(), kind="stable")[:5]].tolist()
        assert ranked[ranked["user"] == original].sort_values("rank")["item"].tolist() == expected
    with pytest.raises(HBenchError, match="1 user id\\(s\\) not in dataset 'tiny': nobody"):
        run.recommend(["nobody"], 5)

    ids = tmp_path / "users.txt"
    ids.write_text("\n".join(users) + "\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["recommend", str(run_dir), "--users", str(ids), "--k", "5", "--quiet"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    printed = pd.read_csv(pd.io.common.StringIO(out), sep="\t", dtype={"user": str, "item": str})
    pd.testing.assert_frame_equal(printed[["user", "rank", "item"]], ranked[["user", "rank", "item"]].reset_index(drop=True))


def test_embeddings_export_original_ids_and_the_evaluated_points(tiny_dataset, tmp_path, capsys) -> None:
    run_dir = _train(tiny_dataset, "hyperml", tmp_path / "results")
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(run_dir), "--to", "csv", "--embeddings", "--quiet"])
    assert exit_info.value.code == 0
    out = run_dir / "export"
    record = json.loads((out / "export.json").read_text())
    assert record["geometry"] == "poincare" and record["c"] == 1.0
    run = restore_run(run_dir)
    reps = run.representations()
    for name, ids, points in (("users", run.user_ids, reps.users), ("items", run.item_ids, reps.items)):
        frame = pd.read_csv(out / f"{name}.csv", dtype={"id": str})
        assert frame["id"].tolist() == ids.tolist()
        np.testing.assert_allclose(frame[[f"x{j}" for j in range(8)]].to_numpy(), points.double().numpy(), rtol=1e-12)
