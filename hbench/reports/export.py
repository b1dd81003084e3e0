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
a relevant item beyond the cut-off counts 0 in ranx but 1/position in hbench); so `k` defaults to every
candidate under a sampled protocol (1 + the stored negatives for `loo`) and to 100 under full ranking.
Ties: hbench ranks a tie pessimistically, an exported list puts the lower item id first.

An export is written whole or not at all: every file goes to a temporary sibling folder that replaces the
output folder at the end, so a refused or failed export (a full disk) leaves the folder as it was, and a
second export into it replaces the first instead of mixing two formats. A folder that holds anything else
than an earlier export is refused, never replaced.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hbench.atomic import atomic_directory, atomic_path, check_target, write_json, write_text
from hbench.errors import HBenchError
from hbench.evaluation.topk import rank_candidates, top_k
from hbench.protocols import get_protocol
from hbench.training.restore import RestoredRun

EXPORT_FORMATS = ("ranx", "trec", "csv", "parquet")
FULL_RANKING_K = 100  # the default cut-off when every item is a candidate
# Every name an export writes; an earlier export (its export.json lists them) may be replaced.
EXPORT_FILES = frozenset({"export.json", *(f"{stem}.{ext}" for stem in ("run", "qrels") for ext in ("json", "trec",
                                                                                                   "csv", "parquet")),
                          *(f"{stem}.{ext}" for stem in ("users", "items") for ext in ("csv", "parquet"))})


def default_k(run: RestoredRun) -> int:
    """Every candidate of a sampled protocol (the target + its negatives: MRR then equals hbench's), else 100."""
    negatives = run.dataset.test_negatives
    if get_protocol(run.recorded.protocol).candidates == "sampled" and negatives is not None:
        return 1 + int(negatives.shape[1])
    return FULL_RANKING_K


def check_export_target(out: Path) -> None:
    """Refuse, before any work, an output that is a file, lies under one, or is a folder with other files
    than an earlier export's (replacing it would delete them)."""
    out = Path(out)
    check_target(out, directory=True)
    cwd = Path.cwd()
    if Path(os.path.abspath(out)) in (cwd, *cwd.parents):  # replacing it would pull the folder from under the shell
        raise HBenchError(f"cannot export into {out}: it is (or holds) the current directory; name a new directory "
                          "with -o")
    if out.is_dir() and any(out.iterdir()):
        foreign = sorted(p.name for p in out.iterdir() if p.name not in _earlier_export(out) or not p.is_file())
        if foreign:
            shown = ", ".join(foreign[:3]) + (" …" if len(foreign) > 3 else "")
            raise HBenchError(f"cannot export into {out}: it holds {shown}, which no earlier export there wrote; "
                              "name a new or empty directory with -o")


def _earlier_export(out: Path) -> frozenset[str]:
    """The names an earlier export wrote into `out`, as its export.json lists them (none without a readable one).

    Only files an export recorded may be replaced: a name alone (a user's own `users.csv`) proves nothing.
    """
    try:
        record = json.loads((out / "export.json").read_text(encoding="utf-8"))
        listed = record["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return frozenset()
    if not isinstance(listed, list) or not all(isinstance(name, str) for name in listed):
        return frozenset()
    return frozenset(name for name in listed if name in EXPORT_FILES) | {"export.json"}


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


def export_run(run: RestoredRun, out: Path, fmt: str, *, k: int | None = None, embeddings: bool = False) -> list[Path]:
    """Write the test ranking (+ qrels), optionally the embeddings, and export.json into `out`, all or nothing
    (replacing an earlier export there); returns the files. `k`: `default_k` when None."""
    if fmt not in EXPORT_FORMATS:
        raise HBenchError(f"--to must be one of {', '.join(EXPORT_FORMATS)}, not {fmt!r}")
    out = Path(out)
    if out.is_symlink():  # the folder it points to is replaced, not the link
        out = out.resolve()
    check_export_target(out)
    k = default_k(run) if k is None else k
    ranking, qrels = test_ranking(run, k)
    if fmt == "trec":
        _check_trec_ids(ranking, qrels)  # before the folder is touched
    record: dict[str, Any] = {"run": str(run.path), "model": run.recorded.model, "protocol": run.recorded.protocol,
                              "k": k, "users": int(qrels["user"].nunique()), "format": fmt,
                              "candidates": "target + sampled negatives"
                              if get_protocol(run.recorded.protocol).candidates == "sampled"
                              else "all items but the user's training and validation items",
                              "score": "the geometry's ranking score (higher is better)"}
    with atomic_directory(out) as tmp:
        files = write_ranking(ranking, qrels, tmp, fmt)
        if embeddings:
            written, geometry = write_embeddings(run, tmp, fmt)
            files += written
            record.update(geometry)
        record["files"] = [p.name for p in files]
        write_json(tmp / "export.json", record)
    return [out / name for name in [*record["files"], "export.json"]]


def read_user_ids(path: Path) -> list[str]:
    """User ids from a file: Parquet or CSV/TSV (column `user`, else the first), else one id per line (UTF-8,
    a byte-order mark allowed). Repeats are kept (the caller says how many it drops); no id at all, a file
    that is not UTF-8 and an unreadable table are user errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise HBenchError(f"users file {path} {'is a directory' if path.is_dir() else 'does not exist'}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".csv", ".tsv"):
            frame = (pd.read_parquet(path) if suffix == ".parquet"
                     else pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str, encoding="utf-8"))
            column = "user" if "user" in frame.columns else (frame.columns[0] if len(frame.columns) else None)
            ids = [] if column is None else frame[column].dropna().astype(str).str.strip().tolist()
        else:
            ids = [line.strip() for line in path.read_bytes().decode("utf-8-sig").splitlines()]
    except UnicodeDecodeError as exc:
        raise HBenchError(f"users file {path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at position "
                          f"{exc.start}); save it as UTF-8") from None
    except pd.errors.EmptyDataError:
        ids = []
    except (ValueError, pd.errors.ParserError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        reason = " ".join(str(exc).split())[:120]
        raise HBenchError(f"users file {path} cannot be read as {suffix[1:].upper()} ({reason})") from None
    except OSError as exc:
        raise HBenchError(f"cannot read users file {path}: {exc.strerror or exc}") from None
    ids = [i for i in ids if i]
    if not ids:
        raise HBenchError(f"users file {path} holds no user ids; write one id per line (or a `user` column)")
    return ids
