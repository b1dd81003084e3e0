"""Full-ranking evaluation speed on amazon-clothing (39,387 users × 23,033 items).

Times hbench's block-wise evaluation (score, mask training items, count per target) for dot-product and
Poincaré scoring, next to a bare matrix product of the same shape done in the same blocks, and prints
the ratio. Representations are random (timing does not depend on training).

    python benchmarks/full_ranking.py --source ../shared/data [--device cuda] [--dim 64] [--record]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from tabulate import tabulate

from hbench.datasets.prepare import prepare_dataset
from hbench.evaluation.ranking import count_full, default_budget
from hbench.geometry import DotProduct, PoincareDistance, Representations
from hbench.geometry.poincare import poincare_distance_matrix

try:
    from common import record
except ImportError:  # run as a module
    from benchmarks.common import record


def bare_gemm(users: torch.Tensor, items: torch.Tensor, block: int) -> None:
    for lo in range(0, users.shape[0], block):
        users[lo : lo + block] @ items.T
    if users.is_cuda:
        torch.cuda.synchronize()


def bare_poincare(users: torch.Tensor, items: torch.Tensor, block: int, c: float) -> None:
    for lo in range(0, users.shape[0], block):
        poincare_distance_matrix(users[lo : lo + block], items, c)
    if users.is_cuda:
        torch.cuda.synchronize()


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, action="append", help="offline mirror of the raw files")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--record", action="store_true", help="append the numbers to benchmarks/results/")
    args = parser.parse_args()

    ds = prepare_dataset("amazon-clothing", sources=args.source)
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    users = (torch.randn(ds.n_users, args.dim, generator=g) * 0.1).to(device)
    items = (torch.randn(ds.n_items, args.dim, generator=g) * 0.1).to(device)
    block = max(1, default_budget(device) // ds.n_items)
    c = 1.0
    rows = []
    bare = timed(lambda: bare_gemm(users, items, block), args.repeats)
    rows.append(("bare GEMM (users × items, same blocks)", bare, 1.0))
    bare_p = timed(lambda: bare_poincare(users, items, block, c), args.repeats)
    rows.append(("Poincaré distance matrix only", bare_p, bare_p / bare))
    for label, geometry in (("full ranking, dot product", DotProduct()), ("full ranking, Poincaré", PoincareDistance(c))):
        reps = Representations(users, items, geometry)
        seconds = timed(lambda: count_full(reps, ds.test, ds.pairs_through("test")), args.repeats)
        rows.append((label, seconds, seconds / bare))
    headers = ["step", "seconds (best of %d)" % args.repeats, "× bare GEMM"]
    body = [(name, f"{s:.3f}", f"{r:.2f}") for name, s, r in rows]
    shape = f"{ds.n_users:,} users × {ds.n_items:,} items, d={args.dim}, device {device}, block {block} users"
    table = tabulate(body, headers=headers, tablefmt="pipe")
    print(shape)
    print(table)
    if args.record:
        path = record("full_ranking", f"{shape}\n\n{table}", {"shape": shape, "rows": [dict(zip(("step", "seconds", "ratio"), r)) for r in rows]})
        print(f"recorded in {path}")


if __name__ == "__main__":
    main()
