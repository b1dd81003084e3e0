"""prepare_dataset / load_dataset / dataset_statistics: real data through the offline mirror, custom files,
caching, reproducibility and errors."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from hbench.datasets.catalog import DATASETS
from hbench.datasets.custom import CustomFiles
from hbench.datasets.load import load_dataset
from hbench.datasets.prepare import (
    dataset_statistics,
    gini,
    prepare_dataset,
    resolve_options,
)
from hbench.datasets.store import PreparedDataset
from hbench.errors import HBenchError
from hbench.paths import prepared_dir
from hbench.ui import Feedback

# The statistics the sources publish for the data they ship already filtered (../shared/data/README.md).
PUBLISHED = {
    "amazon-clothing": (39_387, 23_033, 278_677),
    "amazon-sports": (35_598, 18_357, 296_337),
    "amazon-cd": (22_947, 18_395, 422_301),
    "movielens-100k": (943, 1_682, 100_000),
    "amazon-men-2018": (3_218, 7_605, 60_299),
    "amazon-beauty": (22_363, 12_101, 198_502),
    "amazon-toys": (19_412, 11_924, 167_597),
    "yelp": (30_431, 20_033, 316_354),
}


def recording_feedback() -> tuple[Feedback, io.StringIO]:
    out = io.StringIO()
    return Feedback(quiet=False, console=Console(file=out, width=200)), out


def check_consistent(ds: PreparedDataset) -> None:
    """Ids in range, parts disjoint per (user, item) for clean data, candidates never positive."""
    for part in (ds.train, ds.valid, ds.test):
        if len(part):
            assert 0 <= part.users.min() and part.users.max() < ds.n_users
            assert 0 <= part.items.min() and part.items.max() < ds.n_items
    if ds.test_negatives is not None:
        positives = set()
        for part in (ds.train, ds.valid, ds.test):
            positives |= set(zip(part.users.tolist(), part.items.tolist(), strict=True))
        sample_users = range(0, ds.n_users, max(1, ds.n_users // 200))
        for negatives in (ds.valid_negatives, ds.test_negatives):
            assert negatives is not None
            for user in sample_users:
                assert not any((user, item) in positives for item in negatives[user].tolist())


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_real_data_matches_published_statistics(name: str, shared_data: Path, hbench_home: Path) -> None:
    ds = prepare_dataset(name, sources=[shared_data], home=hbench_home)
    stats = dataset_statistics(ds)
    assert (stats["users"], stats["items"], stats["interactions"]) == PUBLISHED[name]
    assert ds.manifest["statistics"]["final"]["interactions"] == PUBLISHED[name][2]
    assert ds.default_protocol == DATASETS[name].defaults.protocol
    check_consistent(ds)
    if ds.default_protocol == "loo":
        # Leave-one-out: every user has exactly one test and one validation item (all have >= 5).
        assert stats["split"]["test"] == stats["split"]["valid"] == stats["users"]
        assert stats["negatives_per_user"] == {"valid": 100, "test": 100}


@pytest.mark.slow
def test_yelp_repeats_are_kept_by_default(shared_data: Path, hbench_home: Path) -> None:
    """S3Rec's Yelp sequences repeat 11,830 (user, business) pairs; its published count includes them."""
    deduplicated = prepare_dataset("yelp", overrides={"dedup": True}, sources=[shared_data], home=hbench_home)
    assert dataset_statistics(deduplicated)["interactions"] == 316_354 - 11_830
    assert deduplicated.manifest["options"]["dedup"] is True


@pytest.mark.slow
def test_amazon_cd_keeps_hgcf_test_and_carves_validation(shared_data: Path, hbench_home: Path) -> None:
    ds = prepare_dataset("amazon-cd", sources=[shared_data], home=hbench_home)
    assert len(ds.test) == 93_522 and len(ds.valid) == 22_947 and len(ds.train) == 328_779 - 22_947
    assert ds.valid_negatives is None and ds.default_protocol == "full"
    # HGCF's ids are already dense 0-based: they are kept.
    users = pd.read_parquet(ds.path / "users.parquet")["original_id"]
    assert users.tolist() == [str(u) for u in range(22_947)]


@pytest.mark.slow
def test_second_prepare_is_a_noop_and_split_hash_is_stable(
    shared_data: Path, hbench_home: Path, tmp_path: Path
) -> None:
    first = prepare_dataset("movielens-100k", sources=[shared_data], home=hbench_home)
    feedback, out = recording_feedback()
    second = prepare_dataset("movielens-100k", sources=[shared_data], home=hbench_home, feedback=feedback)
    assert "already prepared" in out.getvalue()
    assert second.manifest == first.manifest  # not rewritten: same creation time
    elsewhere = prepare_dataset("movielens-100k", sources=[shared_data], home=tmp_path / "other-home")
    assert elsewhere.split_hash == first.split_hash
    forced = prepare_dataset("movielens-100k", sources=[shared_data], home=hbench_home, force=True)
    assert forced.split_hash == first.split_hash
    reseeded = prepare_dataset("movielens-100k", overrides={"seed": 1}, sources=[shared_data], home=hbench_home)
    assert reseeded.split_hash != first.split_hash
    # Temporal leave-one-out does not depend on the seed; only the candidates do.
    assert np.array_equal(reseeded.test.items, first.test.items)


@pytest.mark.slow
def test_load_dataset_by_name_and_path(shared_data: Path, hbench_home: Path) -> None:
    prepared = prepare_dataset("amazon-men-2018", sources=[shared_data], home=hbench_home)
    by_name = load_dataset("amazon-men-2018")  # HBENCH_HOME points at hbench_home
    by_path = load_dataset(prepared.path)
    assert by_name.split_hash == by_path.split_hash == prepared.split_hash
    assert np.array_equal(by_name.train.items, prepared.train.items)
    manifest = by_name.manifest
    assert set(manifest["sources"]) == {"trainingset.tsv", "validationset.tsv", "testset.tsv"}
    assert manifest["spec"]["published"] == {"users": 3218, "items": 7605, "interactions": 60299}
    assert manifest["options"]["split"] == "fixed" and manifest["created"].endswith("+00:00")
    assert [s["step"] for s in manifest["statistics"]["preprocessing"]][0] == "raw"


def test_synthetic_dataset_needs_no_files(hbench_home: Path, tmp_path: Path) -> None:
    from hbench.ui import Feedback

    log = tmp_path / "prepare.log"
    ds = prepare_dataset("synthetic-fashion", feedback=Feedback(quiet=True, log_file=log))
    # Its first line says what happens: no "reading" followed by an empty list of files (audit rough edge 15).
    assert log.read_text().splitlines()[0] == "synthetic-fashion: generating from its seed"
    assert ds.n_items == 480 and ds.manifest["sources"] == {} and ds.default_protocol == "loo"
    assert len(ds.test) == ds.n_users and ds.test_negatives is not None
    check_consistent(ds)


def test_load_dataset_missing(hbench_home: Path) -> None:
    with pytest.raises(HBenchError, match="hbench prepare movielens-1m"):
        load_dataset("movielens-1m")
    with pytest.raises(HBenchError, match="not a prepared dataset"):
        load_dataset(hbench_home / "nowhere")


def test_movielens_1m_from_a_mirror_zip(tmp_path: Path, hbench_home: Path) -> None:
    rows = [f"{u}::{i}::{1 + (u * i) % 5}::{978300000 + 10 * i}" for u in range(1, 4) for i in range(1, 8)]
    with zipfile.ZipFile(tmp_path / "ml-1m.zip", "w") as zf:
        zf.writestr("ml-1m/ratings.dat", "\n".join(rows) + "\n")
    # A 21-rating stand-in is not MovieLens 1M: refused unless accepted explicitly (issue 13.2).
    with pytest.raises(HBenchError, match="the raw files give 3 users .published: 6,040."):
        prepare_dataset("movielens-1m", overrides={"negatives": 0, "protocol": "full"}, sources=[tmp_path],
                        home=hbench_home)
    ds = prepare_dataset(
        "movielens-1m", overrides={"negatives": 0, "protocol": "full"}, sources=[tmp_path], home=hbench_home,
        accept_statistics=True,
    )
    assert (ds.n_users, ds.n_items, len(ds.train)) == (3, 7, 15)
    assert ds.test.items.tolist() == [6, 6, 6]  # item 7 (internal 6) is the latest of every user
    overrides = {"implicit_threshold": 4, "negatives": 0, "protocol": "full"}
    ds4 = prepare_dataset("movielens-1m", overrides=overrides, sources=[tmp_path], home=hbench_home)
    assert ds4.manifest["statistics"]["preprocessing"][1]["interactions"] < 21


def write_interactions(path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = [
        (f"u{u}", f"i{int(i)}", int(rng.integers(1, 6)), 1000 + 10 * k)
        for u in range(30)
        for k, i in enumerate(rng.choice(50, 8, replace=False))
    ]
    pd.DataFrame(rows, columns=["userId", "movieId", "rating", "timestamp"]).to_csv(path, index=False)


def test_custom_interactions(tmp_path: Path, hbench_home: Path) -> None:
    path = tmp_path / "town.csv"
    write_interactions(path)
    custom = CustomFiles(name="town", interactions=path)
    ds = prepare_dataset("town", custom=custom, overrides={"negatives": 20, "protocol": "loo"})
    assert (ds.n_users, ds.n_items) == (30, len(pd.read_csv(path)["movieId"].unique()))
    assert len(ds.test) == len(ds.valid) == 30 and ds.test_negatives is not None
    assert ds.test_negatives.shape == (30, 20) and ds.manifest["split_order"] == "temporal"
    assert ds.test.timestamps is not None and set(ds.test.timestamps.tolist()) == {1070}
    check_consistent(ds)
    assert prepared_dir("town").is_dir()


def test_custom_fixed_split(tmp_path: Path, hbench_home: Path) -> None:
    train = pd.DataFrame({"user_id": [1, 1, 1, 2, 2], "item_id": [10, 11, 12, 10, 13]})
    train.to_csv(tmp_path / "train.tsv", sep="\t", index=False)
    pd.DataFrame({"user_id": [1, 2], "item_id": [13, 11]}).to_parquet(tmp_path / "test.parquet")
    custom = CustomFiles(name="mine", train=tmp_path / "train.tsv", test=tmp_path / "test.parquet")
    ds = prepare_dataset("mine", custom=custom, home=hbench_home)
    assert (len(ds.train), len(ds.valid), len(ds.test)) == (3, 2, 2)
    assert ds.default_protocol == "full" and ds.test_negatives is None
    assert set(ds.manifest["sources"]) == {"train.tsv", "test.parquet"}


def test_custom_missing_column(tmp_path: Path, hbench_home: Path) -> None:
    (tmp_path / "log.csv").write_text("user,product\n1,2\n")
    with pytest.raises(HBenchError, match="no item column"):
        prepare_dataset("log", custom=CustomFiles(name="log", interactions=tmp_path / "log.csv"), home=hbench_home)


def test_custom_file_combinations(tmp_path: Path, hbench_home: Path) -> None:
    path = tmp_path / "a.csv"
    write_interactions(path)
    with pytest.raises(HBenchError, match="not both"):
        prepare_dataset("x", custom=CustomFiles(name="x", interactions=path, train=path), home=hbench_home)
    with pytest.raises(HBenchError, match="train and a test"):
        prepare_dataset("x", custom=CustomFiles(name="x", train=path), home=hbench_home)
    with pytest.raises(HBenchError, match="taken by a registered dataset"):
        prepare_dataset("yelp", custom=CustomFiles(name="yelp", interactions=path), home=hbench_home)
    with pytest.raises(HBenchError, match="does not exist"):
        prepare_dataset("x", custom=CustomFiles(name="x", interactions=tmp_path / "none.csv"), home=hbench_home)


def test_unknown_dataset(hbench_home: Path) -> None:
    with pytest.raises(HBenchError, match="unknown dataset 'nope'"):
        prepare_dataset("nope", home=hbench_home)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"colour": "red"}, "unknown prepare option 'colour'"),
        ({"split": "kfold"}, r"option split expects loo\|ratio\|fixed, got 'kfold'"),
        ({"order": "sideways"}, r"option order expects temporal\|random"),
        ({"user_k": -1}, "user_k must be >= 0"),
        ({"negatives": "many"}, "option negatives expects int, got 'many'"),
        ({"ratios": "0.5,0.5"}, "ratios must be three numbers"),
        ({"ratios": (0.5, 0.3, 0.3)}, "summing to 1"),
        ({"negatives": 0}, "protocol loo"),
        ({"dedup": "maybe"}, "option dedup expects bool, got 'maybe'"),
        # Options are converted as every setting is (hbench.config): "on" is no boolean there either.
        ({"dedup": "on"}, "option dedup expects bool, got 'on'"),
    ],
)
def test_bad_options(overrides: dict, message: str) -> None:
    with pytest.raises(HBenchError, match=message):
        resolve_options(DATASETS["movielens-100k"].defaults, overrides)


def test_options_from_cli_text() -> None:
    options = resolve_options(
        DATASETS["movielens-100k"].defaults,
        {"user-k": "5", "implicit_threshold": "4", "ratios": "0.7,0.2,0.1", "split": "ratio", "dedup": "no"},
    )
    assert (options.user_k, options.implicit_threshold, options.ratios) == (5, 4.0, (0.7, 0.2, 0.1))
    assert options.split == "ratio" and options.dedup is False and options.negatives == 100


def test_fixed_split_on_data_without_one(tmp_path: Path, hbench_home: Path) -> None:
    path = tmp_path / "a.csv"
    write_interactions(path)
    with pytest.raises(HBenchError, match="ships no split"):
        prepare_dataset("a", custom=CustomFiles(name="a", interactions=path), overrides={"split": "fixed"})


def test_statistics_helpers() -> None:
    assert gini(np.array([5, 5, 5, 5])) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 10])) == pytest.approx(0.75)


# Every file of ../shared/data that some dataset reads.
SHARED_RAW_FILES = (
    "movielens-100k/u.data",
    "amazon-cd-hgcf/train.pkl",
    "amazon-cd-hgcf/test.pkl",
    "amazon-cd-hgcf/user_item_list.pkl",
    "amazon-5core-s3rec/Sports_and_Outdoors.txt",
    "amazon-5core-s3rec/Beauty.txt",
    "amazon-5core-s3rec/Toys_and_Games.txt",
    "amazon-5core-s3rec/Yelp.txt",
    "amazon-clothing-5core/Clothing.txt",
    "amazon-men-2018/trainingset.tsv",
    "amazon-men-2018/validationset.tsv",
    "amazon-men-2018/testset.tsv",
)


def test_catalog_pins_every_shared_file(shared_data: Path) -> None:
    """The catalog pins each of those files (or archive members) with the hash in SHA256SUMS."""
    sums = dict(reversed(line.split()) for line in (shared_data / "SHA256SUMS").read_text().splitlines() if line)
    pinned: dict[str, str] = {}
    for spec in DATASETS.values():
        for raw in spec.raw_files:
            if raw.sha256:
                pinned[raw.name] = raw.sha256
            pinned.update({Path(member).name: sha for member, sha in raw.members.items() if sha})
    for path in SHARED_RAW_FILES:
        assert pinned[Path(path).name] == sums[path], path
