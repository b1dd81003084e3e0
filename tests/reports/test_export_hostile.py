"""Issue 33 (audit E01, E04, E07, E09-E12, C21, R03, R06, R08, R15, X07): `hbench export` and `hbench
recommend` given careless outputs and inputs, and a machine that refuses to write.

A user's mistake is one line on stderr and exit 2; a full disk or a read-only target is one line naming
the path the user asked for (never a temporary file) and exit 1; either way nothing is half-written: an
export is replaced whole or not at all. A full disk is simulated by making the write itself fail with
ENOSPC at the chosen file (no tmpfs needed).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest

from hbench.atomic import atomic_path
from hbench.cli import main
from hbench.config import TrainConfig
from hbench.datasets.custom import CustomFiles
from hbench.datasets.prepare import prepare_dataset
from hbench.datasets.synthetic import HierarchySpec, generate_interactions
from hbench.training.trainer import train

ranx = pytest.importorskip("ranx")

SPACED_USER = "user zero"  # an original id TREC files cannot hold (C21)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A bpr run under loo with 100 sampled negatives per user (101 candidates, as movielens-100k's loo)."""
    root = tmp_path_factory.mktemp("export")
    frame = generate_interactions(HierarchySpec(categories=3, subcategories=3, items_per_subcategory=30, users=150,
                                                seed=7))
    frame["user"] = frame["user"].astype(str).replace({"0": SPACED_USER})
    frame.to_csv(root / "tiny.csv", index=False)
    dataset = prepare_dataset("tiny", custom=CustomFiles(name="tiny", interactions=root / "tiny.csv"),
                              overrides={"negatives": 100}, home=root / "home")
    result = train("bpr", TrainConfig(dataset=str(dataset.path), dim=4, epochs=1, batch_size=256, device="cpu",
                                      protocol="loo"), out=root / "results")
    assert result.status == "completed" and dataset.test_negatives.shape == (150, 100)
    users = pd.read_parquet(dataset.path / "users.parquet")["original_id"].astype(str).tolist()
    return {"run": result.path, "dataset": dataset, "users": users}


@pytest.fixture()
def run(trained, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained["run"], tmp_path / "run"))


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, list[str]]:
    with pytest.raises(SystemExit) as done:
        main(args)
    captured = capsys.readouterr()
    return done.value.code, captured.out, captured.err.strip().splitlines()


def _listing(folder: Path) -> dict[str, bytes | None]:
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def _one_error(code: int, err: list[str], expected_code: int) -> str:
    assert code == expected_code and len(err) == 1 and err[0].startswith("error: "), (code, err)
    assert "unexpected" not in err[0] and ".tmp" not in err[0], err
    return err[0]


@pytest.fixture()
def full_disk(monkeypatch: pytest.MonkeyPatch):
    """`fill(name)`: writing a file called `name` (its temporary sibling, as every write goes through one)
    fails with ENOSPC from then on, after half of its bytes (or `code` instead of ENOSPC)."""

    def fill(name: str, code: int = errno.ENOSPC) -> None:
        def matches(path: object) -> bool:
            return Path(str(path)).name.startswith(f".{name}.")

        real_write_bytes, real_to_parquet = Path.write_bytes, pd.DataFrame.to_parquet

        def write_bytes(self: Path, data: bytes) -> int:
            if matches(self):
                real_write_bytes(self, data[: len(data) // 2])
                raise OSError(code, "simulated")
            return real_write_bytes(self, data)

        def to_parquet(self: pd.DataFrame, path: object, *args, **kwargs) -> None:
            if matches(path):
                Path(str(path)).write_bytes(b"PAR1")
                raise OSError(code, "simulated")
            return real_to_parquet(self, path, *args, **kwargs)

        monkeypatch.setattr(Path, "write_bytes", write_bytes)
        monkeypatch.setattr(pd.DataFrame, "to_parquet", to_parquet)

    return fill


def test_default_k_under_loo_is_every_candidate_and_ranx_gets_hbench_s_mrr(run, trained, capsys, tmp_path) -> None:
    stored = json.loads((run / "metrics.json").read_text())["test"]
    code, _, err = _cli(["export", str(run), "--to", "ranx", "-o", str(tmp_path / "x"), "-q"], capsys)
    assert code == 0, err
    record = json.loads((tmp_path / "x" / "export.json").read_text())
    assert record["k"] == 101
    ranking = json.loads((tmp_path / "x" / "run.json").read_text())
    assert {len(items) for items in ranking.values()} == {101}  # the target and its 100 negatives, for every user
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = ranx.evaluate(ranx.Qrels.from_file(str(tmp_path / "x" / "qrels.json")),
                               ranx.Run.from_file(str(tmp_path / "x" / "run.json")), ["mrr", "hit_rate@10", "ndcg@10"])
    assert scores == pytest.approx({"mrr": stored["mrr"], "hit_rate@10": stored["hr@10"],
                                    "ndcg@10": stored["ndcg@10"]}, abs=1e-12)


def test_default_k_under_full_ranking_is_100(run, capsys, tmp_path) -> None:
    config = json.loads((run / "config.json").read_text())
    config["protocol"] = "full"
    (run / "config.json").write_text(json.dumps(config))
    code, _, err = _cli(["export", str(run), "--to", "csv", "-o", str(tmp_path / "x"), "-q"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "x" / "export.json").read_text())["k"] == 100
    assert pd.read_csv(tmp_path / "x" / "run.csv").groupby("user").size().eq(100).all()


def test_export_into_a_file_or_under_one_is_refused_before_loading(run, capsys, tmp_path) -> None:  # E01, E04
    existing = tmp_path / "notes.txt"
    existing.write_text("mine")
    line = _one_error(*_cli(["export", str(run), "-o", str(existing), "-q"], capsys)[::2], 2)
    assert line == f"error: cannot write {existing}: it is a file, not a directory"
    line = _one_error(*_cli(["export", str(run), "-o", str(existing / "sub" / "dir"), "-q"], capsys)[::2], 2)
    assert line == f"error: cannot write {existing / 'sub' / 'dir'}: {existing} is a file, not a directory"
    assert existing.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "run"]


def test_a_second_export_replaces_the_first_whole(run, capsys, tmp_path) -> None:  # E07
    out = tmp_path / "x"
    assert _cli(["export", str(run), "--to", "csv", "--embeddings", "-o", str(out), "-q"], capsys)[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "items.csv", "qrels.csv", "run.csv", "users.csv"]
    code, out_text, _ = _cli(["export", str(run), "--to", "ranx", "-o", str(out), "-q"], capsys)
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "qrels.json", "run.json"]
    assert json.loads((out / "export.json").read_text())["files"] == ["run.json", "qrels.json"]
    assert out_text.splitlines() == [str(out / "run.json"), str(out / "qrels.json"), str(out / "export.json")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "x"]  # no temporary or old folder left


def test_a_folder_with_other_files_is_never_replaced(run, capsys, tmp_path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("years of work")
    line = _one_error(*_cli(["export", str(run), "-o", str(tmp_path / "mine"), "-q"], capsys)[::2], 2)
    assert line == (f"error: cannot export into {tmp_path / 'mine'}: it holds thesis.tex, which no earlier export "
                    "there wrote; name a new or empty directory with -o")
    assert _listing(tmp_path / "mine") == {"thesis.tex": b"years of work"}


def test_files_named_like_an_export_but_not_recorded_by_one_are_never_replaced(run, capsys, tmp_path) -> None:
    """`users.csv` is also what a user names a `recommend --users` file: only export.json's list proves a file
    is an export's."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "users.csv").write_text("user\n42\n")
    (mine / "run.csv").write_text("my own run\n")
    line = _one_error(*_cli(["export", str(run), "-o", str(mine), "-q"], capsys)[::2], 2)
    assert line.startswith(f"error: cannot export into {mine}: it holds run.csv, users.csv, which no earlier export")
    assert _listing(mine) == {"users.csv": b"user\n42\n", "run.csv": b"my own run\n"}
    # An export.json that does not list a file does not vouch for it either.
    (mine / "export.json").write_text(json.dumps({"files": ["run.csv"]}))
    line = _one_error(*_cli(["export", str(run), "-o", str(mine), "-q"], capsys)[::2], 2)
    assert "it holds users.csv, which no earlier export" in line
    assert (mine / "users.csv").read_text() == "user\n42\n"


def test_a_refused_trec_export_leaves_no_folder(run, capsys, tmp_path) -> None:  # C21
    line = _one_error(*_cli(["export", str(run), "--to", "trec", "-o", str(tmp_path / "new" / "x"), "-q"],
                            capsys)[::2], 2)
    assert "contains some; use --to ranx, csv or parquet" in line
    assert not (tmp_path / "new").exists()


def test_a_full_disk_after_the_ranking_leaves_the_earlier_export(run, capsys, tmp_path, full_disk) -> None:  # E11
    out = tmp_path / "x"
    assert _cli(["export", str(run), "--to", "csv", "-o", str(out), "-q"], capsys)[0] == 0
    before = _listing(out)
    full_disk("users.csv")
    line = _one_error(*_cli(["export", str(run), "--to", "csv", "--embeddings", "-o", str(out), "-q"], capsys)[::2], 1)
    assert line == f"error: cannot write {out / 'users.csv'}: No space left on device"
    assert _listing(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "x"]


def test_a_full_disk_in_a_new_folder_leaves_nothing(run, capsys, tmp_path, full_disk) -> None:  # E09
    full_disk("export.json")
    out = tmp_path / "new" / "deeper" / "x"
    line = _one_error(*_cli(["export", str(run), "--to", "parquet", "-o", str(out), "-q"], capsys)[::2], 1)
    assert line == f"error: cannot write {out / 'export.json'}: No space left on device"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_read_only_target_is_an_environment_failure(run, capsys, tmp_path, full_disk, monkeypatch) -> None:
    # E10: the file system refuses the write itself...
    full_disk("run.parquet", errno.EROFS)
    line = _one_error(*_cli(["export", str(run), "--to", "parquet", "-o", str(tmp_path / "x"), "-q"], capsys)[::2], 1)
    assert line == f"error: cannot write {tmp_path / 'x' / 'run.parquet'}: Read-only file system"
    # ... or a folder the process may not write is seen before the model loads.
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: Path(path) != tmp_path and real_access(path, mode, **kw))
    line = _one_error(*_cli(["export", str(run), "-o", str(tmp_path / "y"), "-q"], capsys)[::2], 1)
    assert line.startswith(f"error: cannot write {tmp_path / 'y'}: {tmp_path} is not writable (")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_an_atomic_write_names_its_target_not_the_temporary_file(tmp_path) -> None:  # X07, rough edge 15
    from hbench.errors import EnvironmentFailure  # new with issue 33: imported here so the other tests run without it

    target = tmp_path / "x.pdf"
    with pytest.raises(EnvironmentFailure) as failure:
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"%PDF")
            raise OSError(errno.EROFS, "Read-only file system", str(tmp))
    assert str(failure.value) == f"cannot write {target}: Read-only file system"
    assert list(tmp_path.iterdir()) == []


def test_recommend_to_a_full_disk_or_under_a_file(run, trained, capsys, tmp_path, full_disk) -> None:  # E12
    user = trained["users"][1]
    existing = tmp_path / "old.csv"
    existing.write_text("old\n")
    code, _, err = _cli(["recommend", str(run), "--user", user, "--k", "2", "-o", str(existing), "-q"], capsys)
    assert code == 0 and pd.read_csv(existing)["rank"].tolist() == [1, 2]  # an existing file is replaced
    line = _one_error(*_cli(["recommend", str(run), "--user", user, "-o", str(existing / "r.csv"), "-q"],
                            capsys)[::2], 2)
    assert line == f"error: cannot write {existing / 'r.csv'}: {existing} is a file, not a directory"
    full_disk("r.parquet")
    out = tmp_path / "new" / "r.parquet"
    line = _one_error(*_cli(["recommend", str(run), "--user", user, "-o", str(out), "-q"], capsys)[::2], 1)
    assert line == f"error: cannot write {out}: No space left on device"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.csv", "run"]


def test_recommend_refuses_an_empty_or_non_utf8_users_file(run, capsys, tmp_path) -> None:  # R03, R06
    empty = tmp_path / "users.txt"
    empty.write_text("\n  \n")
    line = _one_error(*_cli(["recommend", str(run), "--users", str(empty), "-q"], capsys)[::2], 2)
    assert line == f"error: users file {empty} holds no user ids; write one id per line (or a `user` column)"
    header_only = tmp_path / "users.csv"
    header_only.write_text("user\n")
    assert "holds no user ids" in _one_error(*_cli(["recommend", str(run), "--users", str(header_only), "-q"],
                                                   capsys)[::2], 2)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("\xff1\n".encode("latin-1"))
    line = _one_error(*_cli(["recommend", str(run), "--users", str(latin), "-q"], capsys)[::2], 2)
    assert line == f"error: users file {latin} is not UTF-8 text (byte 0xff at position 0); save it as UTF-8"


def test_recommend_ranks_each_user_once_and_says_what_it_dropped(run, trained, capsys, tmp_path) -> None:  # R15
    a, b, c = trained["users"][3], trained["users"][1], trained["users"][2]
    ids = tmp_path / "users.txt"
    ids.write_text("\n".join([a, b, a, c, b, a]) + "\n")
    code, out, err = _cli(["recommend", str(run), "--users", str(ids), "--k", "3", "-q"], capsys)
    assert code == 0
    ranked = pd.read_csv(pd.io.common.StringIO(out), sep="\t", dtype={"user": str, "item": str})
    assert ranked["user"].tolist() == [a] * 3 + [b] * 3 + [c] * 3  # once each, in the order first given
    assert err == ["warning: 3 repeated user id(s) dropped: each user is ranked once, in the order first given"]


def test_recommend_says_once_when_lists_are_shorter_than_k(run, trained, capsys) -> None:  # R08
    dataset, users = trained["dataset"], trained["users"][1:3]
    code, out, err = _cli(["recommend", str(run), "--user", users[0], "--user", users[1], "--k", "5000", "-q"], capsys)
    assert code == 0
    ranked = pd.read_csv(pd.io.common.StringIO(out), sep="\t", dtype={"user": str, "item": str})
    seen = {u: int((dataset.train.users == i).sum()) for i, u in enumerate(trained["users"]) if u in users}
    assert ranked.groupby("user").size().to_dict() == {u: dataset.n_items - seen[u] for u in users}
    assert err == ["warning: 2 of 2 user(s) have fewer than 5000 items they have not seen: their lists are shorter"]
