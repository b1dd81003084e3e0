"""A run's test ranking, relevance judgements and embeddings as files other tools read.

    run.json / qrels.json      --to ranx: {user: {item: score}} and {user: {item: 1}} (ranx `Run.from_file`)
    run.trec / qrels.trec      --to trec: `user Q0 item rank score hbench` and `user 0 item 1` (trec_eval, ranx)
    run.csv / qrels.csv        --to csv: user, rank, item, score and user, item, relevance
    run.parquet / qrels.parquet --to parquet: the same columns
    users.* / items.*          --embeddings: original id and coordinates x0..x{d-1} (Parquet; CSV with --to csv)
    export.json                what was exported: run, protocol, candidates, k, geometry (and c), files

Ids are the dataset's original ids. The ranking is the run's test stage as its protocol ranks it:
a protocol over `all` candidates (`full`, `auc`) ranks all items but the user's training and validation
items (what evaluation masks); one over `sampled` candidates (`loo`) ranks the user's target among its
stored sampled negatives (`hbench.protocols`). Scores are the geometry's ranking
scores (for the Poincaré ball −‖x−y‖²/(1−c‖y‖²), which orders items exactly as −d_c(x, y) does; see
`hbench.geometry.scoring`), so any tool re-sorting by score ranks as hbench does. With `k` at least the
number of candidates, ranx reproduces hbench's test HR, Recall, Precision, nDCG and MRR (MRR only then:
a relevant item beyond the cut-off counts 0 in ranx but 1/position in hbench). Ties: hbench ranks a tie
pessimistically, an exported list puts the lower item id first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hbench.atomic import atomic_path, write_json, write_text
from hbench.errors import HBenchError
from hbench.evaluation.topk import rank_candidates, top_k
from hbench.protocols import get_protocol
from hbench.training.restore import RestoredRun

EXPORT_FORMATS = ("ranx", "trec", "csv", "parquet")


def test_ranking(run: RestoredRun, k: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ranking: user, rank, item, score; qrels: user, item, relevance) of the test stage, original ids."""
    if k < 1:
        raise HBenchError(f"--k must be at least 1, got {k}")
    dataset, protocol = run.dataset, run.recorded.protocol
    test = dataset.test
    users = np.unique(test.users)
    reps = run.representations()
    if get_protocol(protocol).candidates == "sampled":
        if len(users) != len(test) or dataset.test_negatives is None:
            raise HBenchError(f"protocol {protocol} needs one test item and stored negatives per user; {dataset.name!r} has "
                              f"{len(test)} test items for {len(users)} users")
        order = np.argsort(test.users, kind="stable")
        candidates = np.concatenate([test.items[order, None], dataset.test_negatives[test.users[order]]], axis=1)
        ranking = rank_candidates(reps, test.users[order], candidates)
        ranking = ranking[ranking["rank"] <= k]
    else:
        ranking = top_k(reps, users, dataset.pairs_through("valid"), k)
    ranking = ranking.assign(user=run.user_ids[ranking["user"]], item=run.item_ids[ranking["item"]])
    qrels = pd.DataFrame({"user": run.user_ids[test.users], "item": run.item_ids[test.items], "relevance": 1})
    return ranking.reset_index(drop=True), qrels.drop_duplicates(["user", "item"]).reset_index(drop=True)


def _nested(frame: pd.DataFrame, value: str) -> dict[str, dict[str, Any]]:
    nested: dict[str, dict[str, Any]] = {}
    for user, item, v in zip(frame["user"], frame["item"], frame[value].tolist(), strict=True):
        nested.setdefault(user, {})[item] = v
    return nested


def _check_trec_ids(*frames: pd.DataFrame) -> None:
    for frame in frames:
        for column in ("user", "item"):
            bad = frame[column][frame[column].str.contains(r"\s", regex=True)]
            if len(bad):
                raise HBenchError(f"TREC files are split on whitespace, but {column} id {bad.iloc[0]!r} contains some; "
                                  "use --to ranx, csv or parquet")


def _write_table(frame: pd.DataFrame, path: Path) -> None:
    if path.suffix == ".parquet":
        with atomic_path(path) as tmp:
            frame.to_parquet(tmp, index=False)
    else:
        write_text(path, frame.to_csv(index=False))


def write_ranking(ranking: pd.DataFrame, qrels: pd.DataFrame, out: Path, fmt: str) -> list[Path]:
    """The ranking and qrels in `fmt` (one of EXPORT_FORMATS) under `out`; returns the files written."""
    if fmt not in EXPORT_FORMATS:
        raise HBenchError(f"--to must be one of {', '.join(EXPORT_FORMATS)}, not {fmt!r}")
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "ranx":
        # float(repr) round-trips exactly: re-sorting by score must give hbench's order, not one rounded into ties.
        run_path, qrels_path = out / "run.json", out / "qrels.json"
        write_json(run_path, _nested(ranking, "score"))
        write_json(qrels_path, _nested(qrels, "relevance"))
    elif fmt == "trec":
        _check_trec_ids(ranking, qrels)
        run_path, qrels_path = out / "run.trec", out / "qrels.trec"
        write_text(run_path, "".join(f"{u} Q0 {i} {r} {s!r} hbench\n" for u, i, r, s in zip(
            ranking["user"], ranking["item"], ranking["rank"], ranking["score"].tolist(), strict=True)))
        write_text(qrels_path, "".join(f"{u} 0 {i} {r}\n" for u, i, r in zip(
            qrels["user"], qrels["item"], qrels["relevance"], strict=True)))
    else:
        run_path, qrels_path = out / f"run.{fmt}", out / f"qrels.{fmt}"
        _write_table(ranking, run_path)
        _write_table(qrels, qrels_path)
    return [run_path, qrels_path]


def write_embeddings(run: RestoredRun, out: Path, fmt: str) -> tuple[list[Path], dict[str, Any]]:
    """User and item points (original ids, coordinates as evaluation scores them) and their geometry."""
    reps = run.representations()
    files = []
    for name, ids, points in (("users", run.user_ids, reps.users), ("items", run.item_ids, reps.items)):
        array = points.detach().cpu().double().numpy()
        frame = pd.concat([pd.DataFrame({"id": ids}),
                           pd.DataFrame(array, columns=[f"x{j}" for j in range(array.shape[1])])], axis=1)
        path = out / f"{name}.{'csv' if fmt == 'csv' else 'parquet'}"
        _write_table(frame, path)
        files.append(path)
    geometry = {"geometry": reps.geometry.name, **({"c": float(reps.geometry.c)} if hasattr(reps.geometry, "c") else {})}
    return files, geometry


def export_run(run: RestoredRun, out: Path, fmt: str, *, k: int = 100, embeddings: bool = False) -> list[Path]:
    """Write the test ranking (+ qrels), optionally the embeddings, and export.json; returns the files."""
    ranking, qrels = test_ranking(run, k)
    files = write_ranking(ranking, qrels, out, fmt)
    record: dict[str, Any] = {"run": str(run.path), "model": run.recorded.model, "protocol": run.recorded.protocol,
                              "k": k, "users": int(qrels["user"].nunique()), "format": fmt,
                              "candidates": "target + sampled negatives"
                              if get_protocol(run.recorded.protocol).candidates == "sampled"
                              else "all items but the user's training and validation items",
                              "score": "the geometry's ranking score (higher is better)"}
    if embeddings:
        written, geometry = write_embeddings(run, out, fmt)
        files += written
        record.update(geometry)
    record["files"] = [p.name for p in files]
    write_json(out / "export.json", record)
    return [*files, out / "export.json"]


def read_user_ids(path: Path) -> list[str]:
    """User ids from a file: Parquet or CSV/TSV (column `user`, else the first), else one id per line."""
    if not Path(path).is_file():
        raise HBenchError(f"users file {path} does not exist")
    suffix = Path(path).suffix.lower()
    if suffix in (".parquet", ".csv", ".tsv"):
        frame = (pd.read_parquet(path) if suffix == ".parquet"
                 else pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str))
        column = "user" if "user" in frame.columns else frame.columns[0]
        return frame[column].astype(str).tolist()
    return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]

