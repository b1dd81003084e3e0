"""Where a training epoch's time goes: the phases of hbench's step, per model, on the peers benchmark's split.

Runs the trainer's step (`training/trainer.py`'s `train_epoch` body: loss, zero_grad + backward, the
optimisers' step, the model's projection) over real batches of the amazon-clothing fixed split (the data
of `peers.py`: 39,387 users, 23,033 items, 197,338 training pairs), with the default batch size and lazy
Adam, and times each phase; the epoch's draw of triples (`NegativeSampler.draw_epoch`, which the trainer
prefetches in a thread) is timed on its own. The first epochs warm up (compilation, caches) and are not
counted. The sum of the phases is what the loop costs without the trainer's per-epoch work (finiteness
check, history, resume state), so `peers.py`'s s/epoch minus this sum is that work plus the draw's share
of the two cores.

    python benchmarks/step_parts.py --source ../shared/data [--models bpr,cml,hyperml] [--record]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from tabulate import tabulate

from hbench.models import ModelContext, create_model
from hbench.models.registry import get_model_class
from hbench.training.sampling import NegativeSampler
from hbench.training.trainer import make_optimizers, touched_rows

try:
    from common import record
    from peers import prepare
except ImportError:  # run as a module
    from benchmarks.common import record
    from benchmarks.peers import prepare

PHASES = ("loss", "zero_grad + backward", "optimiser step", "projection")


def time_phases(dataset, model_name: str, dim: int, epochs: int, warmup: int, seed: int) -> dict[str, float]:
    """Seconds per epoch of each phase (mean over the timed epochs), and of the epoch's draw."""
    model_class = get_model_class(model_name)
    context = ModelContext(dataset.n_users, dataset.n_items, dim, dataset.train,
                           torch.Generator().manual_seed(seed))
    model = create_model(model_name, context)
    optimizers = make_optimizers(model, "sparse", lr=model_class.default_lr)
    sampler = NegativeSampler(dataset.train, dataset.n_items, np.random.default_rng(seed), dataset.train_graph)
    batch = model_class.default_batch_size
    spent = dict.fromkeys((*PHASES, "draw (prefetched)"), 0.0)
    for epoch in range(warmup + epochs):
        started = time.perf_counter()
        drawn = sampler.draw_epoch(1)
        draw_seconds = time.perf_counter() - started
        users, positives, negatives = (torch.from_numpy(a) for a in (drawn.users, drawn.positives, drawn.negatives))
        laps = dict.fromkeys(PHASES, 0.0)
        for lo in range(0, users.shape[0], batch):
            t0 = time.perf_counter()
            terms = model.loss(users[lo:lo + batch], positives[lo:lo + batch], negatives[lo:lo + batch])
            t1 = time.perf_counter()
            for optimizer in optimizers:
                optimizer.zero_grad(set_to_none=True)
            terms.total.backward()
            t2 = time.perf_counter()
            for optimizer in optimizers:
                optimizer.step()
            t3 = time.perf_counter()
            model.constrain_(touched_rows(model, optimizers))
            t4 = time.perf_counter()
            for phase, seconds in zip(PHASES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                laps[phase] += seconds
        if epoch >= warmup:
            for phase in PHASES:
                spent[phase] += laps[phase] / epochs
            spent["draw (prefetched)"] += draw_seconds / epochs
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, action="append", required=True, help="offline mirror of the raw files")
    parser.add_argument("--home", type=Path, default=None, help="HBENCH_HOME for the prepared split")
    parser.add_argument("--models", default="bpr,cml,hyperml")
    parser.add_argument("--dim", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=6, help="timed epochs per model")
    parser.add_argument("--warmup", type=int, default=2, help="untimed epochs first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--record", action="store_true", help="append the table to benchmarks/results/")
    args = parser.parse_args()

    dataset = prepare(args.source, args.home)
    rows, numbers = [], {}
    for name in args.models.split(","):
        spent = time_phases(dataset, name, args.dim, args.epochs, args.warmup, args.seed)
        numbers[name] = spent
        loop = sum(spent[phase] for phase in PHASES)
        rows.append([name, *(f"{spent[phase] * 1e3:.1f}" for phase in PHASES), f"{loop * 1e3:.1f}",
                     f"{spent['draw (prefetched)'] * 1e3:.1f}"])
    headers = ["model", *(f"{phase} ms" for phase in PHASES), "loop ms", "draw ms"]
    shape = (f"{dataset.n_users:,} users × {dataset.n_items:,} items, {len(dataset.train):,} training pairs, "
             f"d={args.dim}, default batch sizes, lazy Adam, CPU, torch threads {torch.get_num_threads()}; "
             f"ms per epoch, mean of {args.epochs} epochs after {args.warmup} warm-up epochs")
    table = tabulate(rows, headers=headers, tablefmt="pipe", disable_numparse=True)
    print(shape)
    print(table)
    if args.record:
        path = record("step_parts", f"{shape}\n\n{table}", {"shape": shape, "models": numbers})
        print(f"recorded in {path}")


if __name__ == "__main__":
    main()
