"""What one touched embedding row costs to update: with and without prefetching, and with smaller optimiser states.

`step_parts.py` shows that lazy Adam's step is the largest part of a BPR epoch on the CPU. This benchmark
asks what the same work costs with and without prefetching, and what smaller optimiser states would save,
on the peers benchmark's split (the amazon-clothing fixed split: 39,387 users, 23,033 items, 197,338 training pairs) with the trainer's real
index pattern: one epoch of uniform-negative triples cut into batches of 8,192, each batch's user and item
indices grouped by row as `hbench.training.fused.group_by_row` groups them. Random gradient rows of the
right shape stand in for the loss's. Each variant is timed over the whole epoch, in one process, one
variant after another and repeated; the table shows the fastest repetition (the shared VMs' speed drifts).

Variants of the update pass:
- `adam (hbench)`: `hbench.training.fused._adam_rows`, the trainer's step: the gradient rows summed per
  touched row, then Adam on the table and its two moments ([rows, D] arrays each), prefetching the rows a
  few iterations ahead (`hbench.compiled.prefetch_row`);
- `adam without prefetch`: the same loop with the prefetches taken out;
- `sum only`: the per-row sum of the gradient rows, the part every variant shares (no prefetch);
- `adam, one second moment per row`: sum, then the first moment per coordinate and the second one scalar
  per row (FBGEMM's "partial row-wise Adam"; what geoopt's Riemannian Adam keeps on a manifold), no prefetch;
- `sgd`: sum, then the table alone: the memory traffic of Cornac's update, no prefetch.

The last two are other optimisers, shown for what their smaller state would save; hbench keeps Adam, whose
defaults and reference results were chosen with it.

Then, for scale, a whole epoch of Cornac's algorithm written the same way (per-sample SGD, one pass that
reads and writes three rows) beside hbench's compiled BPR loss over the same epoch.

    python benchmarks/row_update_costs.py --source ../shared/data [--repeats 15] [--record]

Run it with one kernel thread (NUMBA_NUM_THREADS=1) to compare layouts without scheduling noise.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numba
import numpy as np
import torch
from tabulate import tabulate

from hbench.compiled import VECTORISE
from hbench.models.bpr_kernels import bpr_scores_and_gradients
from hbench.training.fused import _adam_rows, _group_by_row
from hbench.training.sampling import NegativeSampler

try:
    from common import record
    from peers import prepare
except ImportError:  # run as a module
    from benchmarks.common import record
    from benchmarks.peers import prepare

_KERNEL = {"cache": False, "nogil": True, "error_model": "numpy", "fastmath": set(VECTORISE)}
DIM, BATCH = 50, 8192
ADAM = (np.float32(-1e-3), np.float32(0.1), np.float32(0.999), np.float32(0.001), np.float32(1.0), np.float32(1e-8))


@numba.njit(inline="always", **_KERNEL)
def _summed(k, starts, entries, grad, summed):  # noqa: ANN001, ANN202
    first = entries[starts[k]]
    for d in range(grad.shape[1]):
        summed[k, d] = grad[first, d]
    for e in range(starts[k] + 1, starts[k + 1]):
        for d in range(grad.shape[1]):
            summed[k, d] += grad[entries[e], d]


@numba.njit(**_KERNEL)
def _adam_without_prefetch(table, m, v, rows, starts, entries, grad, summed, step, one_minus_beta1, beta2,  # noqa: ANN001, ANN202
                           one_minus_beta2, inv_sqrt_bias2, eps):
    for k in range(rows.shape[0]):
        _summed(k, starts, entries, grad, summed)
        row = rows[k]
        for d in range(table.shape[1]):
            g = summed[k, d]
            m[row, d] += one_minus_beta1 * (g - m[row, d])
            v[row, d] = v[row, d] * beta2 + one_minus_beta2 * g * g
            table[row, d] += step * m[row, d] / (np.sqrt(v[row, d]) * inv_sqrt_bias2 + eps)


@numba.njit(**_KERNEL)
def _adam_row_second_moment(table, m, v_row, rows, starts, entries, grad, summed, step, one_minus_beta1, beta2,  # noqa: ANN001, ANN202
                            one_minus_beta2, inv_sqrt_bias2, eps):
    width = table.shape[1]
    for k in range(rows.shape[0]):
        _summed(k, starts, entries, grad, summed)
        row = rows[k]
        square = summed.dtype.type(0)
        for d in range(width):
            square += summed[k, d] * summed[k, d]
        v_row[row] = v_row[row] * beta2 + one_minus_beta2 * square / width
        scale = step / (np.sqrt(v_row[row]) * inv_sqrt_bias2 + eps)
        for d in range(width):
            m[row, d] += one_minus_beta1 * (summed[k, d] - m[row, d])
            table[row, d] += scale * m[row, d]


@numba.njit(**_KERNEL)
def _sgd(table, rows, starts, entries, grad, summed, step):  # noqa: ANN001, ANN202
    for k in range(rows.shape[0]):
        _summed(k, starts, entries, grad, summed)
        for d in range(table.shape[1]):
            table[rows[k], d] += step * summed[k, d]


@numba.njit(**_KERNEL)
def _sum_rows(rows, starts, entries, grad, summed):  # noqa: ANN001, ANN202
    for k in range(rows.shape[0]):
        _summed(k, starts, entries, grad, summed)


@numba.njit(**_KERNEL)
def _sgd_bpr_epoch(users_table, items_table, bias, users, items, lr, reg):  # noqa: ANN001, ANN202
    """Cornac's BPR epoch: per triple, σ(−x) and the in-place SGD update of p_u, q_i, q_j, b_i, b_j."""
    for b in range(users.shape[0]):
        u, i, j = users[b], items[b, 0], items[b, 1]
        x = bias[i, 0] - bias[j, 0]
        for d in range(users_table.shape[1]):
            x += users_table[u, d] * (items_table[i, d] - items_table[j, d])
        z = 1.0 / (1.0 + np.exp(x))
        for d in range(users_table.shape[1]):
            p, qi, qj = users_table[u, d], items_table[i, d], items_table[j, d]
            users_table[u, d] += lr * (z * (qi - qj) - reg * p)
            items_table[i, d] += lr * (z * p - reg * qi)
            items_table[j, d] += lr * (-z * p - reg * qj)
        bias[i, 0] += lr * (z - reg * bias[i, 0])
        bias[j, 0] += lr * (-z - reg * bias[j, 0])


def fastest(run: Callable[[], None], repeats: int) -> float:
    run()  # compile and warm the caches
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, action="append", required=True, help="offline mirror of the raw files")
    parser.add_argument("--home", type=Path, default=None, help="HBENCH_HOME for the prepared split")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--record", action="store_true", help="append the table to benchmarks/results/")
    args = parser.parse_args()

    dataset = prepare(args.source, args.home)
    drawn = NegativeSampler(dataset.train, dataset.n_items, np.random.default_rng(args.seed),
                            dataset.train_graph).draw_epoch(1)
    rng = np.random.default_rng(args.seed + 1)
    sizes = {"users": dataset.n_users, "items": dataset.n_items}
    tables = {name: (rng.standard_normal((n, DIM)) * 0.1).astype(np.float32) for name, n in sizes.items()}
    first, second = ({name: np.zeros((n, DIM), np.float32) for name, n in sizes.items()} for _ in range(2))
    row_second = {name: np.zeros(n, np.float32) for name, n in sizes.items()}
    position = {name: np.full(n, -1, np.int64) for name, n in sizes.items()}
    items_of_batch = np.concatenate([drawn.positives[:, None], drawn.negatives], axis=1)
    steps = []  # (table name, rows, starts, entries, gradient rows, summed scratch) per batch and table
    for lo in range(0, len(drawn.users), BATCH):
        for name, index in (("users", drawn.users[lo:lo + BATCH]), ("items", items_of_batch[lo:lo + BATCH].reshape(-1))):
            rows, starts, entries = (np.empty(len(index), np.int64), np.empty(len(index) + 1, np.int64),
                                     np.empty(len(index), np.int64))
            count = _group_by_row(index, position[name], rows, starts, entries)
            grad = (rng.standard_normal((len(index), DIM)) * 1e-4).astype(np.float32)
            steps.append((name, rows[:count].copy(), starts[: count + 1].copy(), entries, grad,
                          np.empty((count, DIM), np.float32)))

    def over(name: str, update: Callable[..., None]) -> Callable[[], None]:
        def run() -> None:
            for table_name, rows, starts, entries, grad, summed in steps:
                if table_name == name:
                    update(table_name, rows, starts, entries, grad, summed)
        return run

    variants: dict[str, Callable[..., None]] = {
        "adam (hbench)": lambda t, r, s, e, g, out: _adam_rows(tables[t], first[t], second[t], r, s, e, g, out, *ADAM),
        "adam without prefetch": lambda t, r, s, e, g, out: _adam_without_prefetch(tables[t], first[t], second[t], r, s,
                                                                                   e, g, out, *ADAM),
        "sum only": lambda t, r, s, e, g, out: _sum_rows(r, s, e, g, out),
        "adam, one second moment per row": lambda t, r, s, e, g, out: _adam_row_second_moment(
            tables[t], first[t], row_second[t], r, s, e, g, out, *ADAM),
        "sgd": lambda t, r, s, e, g, out: _sgd(tables[t], r, s, e, g, out, np.float32(-1e-3)),
    }
    touched = {name: sum(step[1].shape[0] for step in steps if step[0] == name) for name in sizes}
    body, numbers = [], {}
    for variant, update in variants.items():
        costs = {name: fastest(over(name, update), args.repeats) for name in sizes}
        numbers[variant] = {name: {"epoch_ms": costs[name] * 1e3, "ns_per_row": costs[name] / touched[name] * 1e9}
                            for name in sizes}
        body.append([variant, *(f"{costs[n] / touched[n] * 1e9:.1f}" for n in sizes),
                     f"{sum(costs.values()) * 1e3:.1f}"])

    bias = np.zeros((dataset.n_items, 1), np.float32)
    batch_outputs = [tuple(np.empty(shape, np.float32) for shape in
                           ((BATCH, 1), (BATCH,), (BATCH,), (BATCH, 2), (BATCH, DIM), (BATCH, 2, DIM), (BATCH, 2)))]

    def hbench_loss() -> None:
        for lo in range(0, len(drawn.users), BATCH):
            users = drawn.users[lo:lo + BATCH]
            outputs = tuple(a[: users.shape[0]] for a in batch_outputs[0])
            bpr_scores_and_gradients(tables["users"], tables["items"], bias, users, items_of_batch[lo:lo + BATCH],
                                     0.01, *outputs)

    copies = {name: table.copy() for name, table in tables.items()}
    sgd_epoch = fastest(lambda: _sgd_bpr_epoch(copies["users"], copies["items"], bias.copy(), drawn.users,
                                               items_of_batch, np.float32(0.05), np.float32(0.01)), args.repeats)
    loss_epoch = fastest(hbench_loss, args.repeats)
    numbers["whole epoch"] = {"cornac_algorithm_sgd_ms": sgd_epoch * 1e3, "hbench_bpr_loss_ms": loss_epoch * 1e3}

    headers = ["update pass", "ns per touched user row", "ns per touched item row", "ms per epoch (both tables)"]
    table = tabulate(body, headers=headers, tablefmt="pipe", disable_numparse=True)
    shape = (f"{dataset.n_users:,} users × {dataset.n_items:,} items, {len(drawn.users):,} triples, d={DIM}, batch "
             f"{BATCH:,}: {touched['users']:,} user and {touched['items']:,} item row updates per epoch; kernel threads "
             f"{numba.get_num_threads()}, torch threads {torch.get_num_threads()}; fastest of {args.repeats}")
    scale = (f"Whole epoch, same data: Cornac's algorithm (per-sample SGD, one pass) {sgd_epoch * 1e3:.1f} ms; "
             f"hbench's compiled BPR loss alone {loss_epoch * 1e3:.1f} ms")
    print(shape)
    print(table)
    print(scale)
    if args.record:
        path = record("row_update_costs", f"{shape}\n\n{table}\n\n{scale}", {"shape": shape, "variants": numbers})
        print(f"recorded in {path}")


if __name__ == "__main__":
    main()
