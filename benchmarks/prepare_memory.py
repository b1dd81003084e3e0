"""Peak memory of `prepare` on a DVBPR file, against the size of the file.

A DVBPR file is one pickle: unpickling it materialises it once, and `prepare` must not add a second copy
(the images are written to the image store one at a time and released). This builds synthetic files in the
real layout (Python 2 protocol-2 pickle inside a .npy; real CC0 photos from ../shared/data/clothing-cc0,
each a distinct object with a unique trailer after the JPEG end, about 7 interactions per user as in Amazon
Men), prepares each in a fresh process, and reports that process's peak RSS (VmHWM) minus its peak after the
imports, as a multiple of the file size. For reference, the same for numpy's own unrestricted
`np.load(allow_pickle=True, encoding="latin1")`, which only loads (one copy, nothing written).

    python benchmarks/prepare_memory.py --source ../shared/data [--sizes 100 200] [--record]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the DVBPR writer of the tests

from tests.datasets.test_dvbpr import MEN, write_dvbpr_npy

try:
    from common import machine, record
except ImportError:  # run as a module
    from benchmarks.common import machine, record

# Runs in a fresh process: peak RSS after the imports, then after the measured step (Linux /proc).
CHILD = """
import json, sys, time
from pathlib import Path
import numpy as np, pandas, pyarrow.parquet, PIL.Image
from hbench.datasets.prepare import prepare_dataset

def high_water_kib():
    # VmHWM belongs to this process image; ru_maxrss would also count the parent's RSS from before exec.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

mode, file, home = sys.argv[1:]
baseline = high_water_kib()
start = time.perf_counter()
if mode == "prepare":
    prepare_dataset("amazon-men", sources=[Path(file).parent], home=Path(home))
else:
    loaded = np.load(file, allow_pickle=True, encoding="latin1")
seconds = time.perf_counter() - start
print(json.dumps({"baseline_kib": baseline, "peak_kib": high_water_kib(), "seconds": seconds}))
"""


def build_file(path: Path, photos: list[bytes], megabytes: float, seed: int = 0) -> dict[str, int]:
    """A DVBPR-layout file of about `megabytes` MB; returns its users, items and interactions."""
    rng = np.random.default_rng(seed)
    mean = sum(map(len, photos)) / len(photos)
    n_items = max(10, int(megabytes * 1e6 / mean))
    n_users = max(10, n_items // 3)
    item_table = [{"imgs": photos[j % len(photos)] + b"hbench-%d" % j} for j in range(n_items)]
    user_train, user_valid, user_test = {}, [], []
    interactions = 0
    for user in range(n_users):
        picks = rng.choice(n_items, int(rng.integers(5, 10)), replace=False)
        user_train[user] = [{"productid": int(i)} for i in picks[:-2]]
        user_valid.append([{"productid": int(picks[-2])}])
        user_test.append([{"productid": int(picks[-1])}])
        interactions += len(picks)
    write_dvbpr_npy(path, [user_train, user_valid, user_test, item_table, n_users, n_items])
    return {"users": n_users, "items": n_items, "interactions": interactions}


def measure(mode: str, file: Path, home: Path) -> dict[str, float]:
    """Peak RSS (KiB) after the imports and after `mode` (np.load or prepare) of `file`, in a fresh process."""
    result = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(file), str(home)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=REPO.parent / "shared" / "data", help="the shared data folder")
    parser.add_argument("--sizes", type=float, nargs="+", default=[100.0, 200.0], help="file sizes in MB")
    parser.add_argument("--record", action="store_true", help="append the numbers to benchmarks/results/")
    args = parser.parse_args()

    folder = args.source / "clothing-cc0"
    names = pd.read_csv(folder / "images.csv")["image"]
    photos = [(folder / "images" / f"{name}.jpg").read_bytes() for name in names]
    rows = []
    for megabytes in args.sizes:
        with tempfile.TemporaryDirectory(prefix="hbench-memory-") as tmp:
            mirror = Path(tmp) / "mirror"
            mirror.mkdir()
            sizes = build_file(mirror / MEN, photos, megabytes)
            file_mb = (mirror / MEN).stat().st_size / 2**20
            for mode in ("np.load", "prepare"):
                numbers = measure(mode, mirror / MEN, Path(tmp) / "home")
                extra_mb = (numbers["peak_kib"] - numbers["baseline_kib"]) / 1024
                rows.append({
                    "step": mode, "file_mib": round(file_mb, 1), **sizes,
                    "baseline_mib": round(numbers["baseline_kib"] / 1024, 1),
                    "peak_mib": round(numbers["peak_kib"] / 1024, 1),
                    "peak_minus_baseline_mib": round(extra_mb, 1),
                    "x_file": round(extra_mb / file_mb, 2),
                    "seconds": round(numbers["seconds"], 1),
                })
    headers = ["step", "file MiB", "users", "items", "interactions", "RSS after imports MiB", "peak RSS MiB",
               "peak − imports MiB", "× file", "seconds"]
    body = [[r["step"], r["file_mib"], r["users"], r["items"], r["interactions"], r["baseline_mib"], r["peak_mib"],
             r["peak_minus_baseline_mib"], r["x_file"], r["seconds"]] for r in rows]
    table = tabulate(body, headers=headers, tablefmt="pipe")
    print(", ".join(f"{k}: {v}" for k, v in machine().items()))
    print(table)
    if args.record:
        path = record("prepare_memory", table, {"rows": rows})
        print(f"recorded in {path}")


if __name__ == "__main__":
    main()
