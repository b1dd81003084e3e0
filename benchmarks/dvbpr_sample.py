"""Write a DVBPR-layout Amazon Men file from real public-domain photos, for an end-to-end check.

The real `AmazonMenWithImgPartitioned.npy` (2.1 GB) is download-only; this builds a small file in exactly
its layout (Python-2 protocol-2 pickle inside a .npy, latin1 keys) from `clothing-cc0` photos, with
interactions in which each user prefers one clothing label, so that item images carry signal:

    python benchmarks/dvbpr_sample.py --photos ../shared/data/clothing-cc0 --out /tmp/mirror --users 400
    hbench prepare amazon-men --source /tmp/mirror && hbench features amazon-men
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests define the layout writer once

from tests.datasets.test_dvbpr import MEN, write_dvbpr_npy  # noqa: E402


def build(photos: Path, users: int, seed: int) -> list:
    catalogue = pd.read_csv(photos / "images.csv")
    labels = catalogue["label"].to_numpy()
    by_label = {label: np.flatnonzero(labels == label) for label in np.unique(labels)}
    rng = np.random.default_rng(seed)
    user_train, user_valid, user_test = {}, [], []
    for user in range(users):
        favourite = by_label[rng.choice(list(by_label))]
        n = int(rng.integers(5, 13))
        picks: list[int] = []
        while len(picks) < n:
            pool = favourite if rng.random() < 0.8 else np.arange(len(labels))
            item = int(rng.choice(pool))
            if item not in picks:
                picks.append(item)
        times = np.sort(rng.integers(1_300_000_000, 1_400_000_000, n))
        entries = [{"productid": item, "rating": 5.0, "time": int(t)} for item, t in zip(picks, times)]
        user_train[user], user_valid, user_test = entries[:-2], [*user_valid, [entries[-2]]], [*user_test, [entries[-1]]]
    items = [{"asin": f"CC0{i:07d}", "imgs": (photos / "images" / f"{name}.jpg").read_bytes()}
             for i, name in enumerate(catalogue["image"])]
    return [user_train, user_valid, dict(enumerate(user_test)), items, users, len(items)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--users", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    write_dvbpr_npy(args.out / MEN, build(args.photos, args.users, args.seed))
    print(args.out / MEN)


if __name__ == "__main__":
    main()
