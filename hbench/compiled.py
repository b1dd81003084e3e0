"""What the compiled (Numba) CPU kernels share.

Numba's default thread pool ("workqueue") aborts the process when two threads launch parallel kernels at
once (two trainings in threads of one notebook): every parallel kernel is entered under this one lock.

`prefetch_row(table, row)` asks the CPU to start loading a table row that a kernel will read a few
iterations later. The training kernels read embedding rows in an order no hardware prefetcher can guess
(the rows of a batch's users and items), so without it each row's cache misses wait for memory one row at
a time; with the next rows requested `PREFETCH_DISTANCE` iterations ahead, their loads overlap the current
row's arithmetic. On the 2-vCPU developer VM this took lazy Adam's update of a touched row from 261 to
150 ns (users) and from 257 to 105 ns (items), one thread (`benchmarks/results/row_update_costs.md`). A
prefetch is only a hint: it changes no value, cannot fault on any address, and compiles to nothing on CPUs
without the instruction.
"""

from __future__ import annotations

import threading

import numba
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

PARALLEL_KERNEL = threading.Lock()

VECTORISE = frozenset({"reassoc", "contract", "nsz", "arcp"})
"""Numba `fastmath` flags for the kernels' sums: reassociation (and fused multiply-add) lets the compiler
vectorise a reduction over a row; "nnan" and "ninf" are left out, so non-finite values behave as IEEE says
and divergence is still detected. Results differ from a sequential sum by rounding only."""

PREFETCH_DISTANCE = 8
"""How many rows ahead the kernels prefetch: far enough for a row's loads (about 100 ns from memory on the
developer VM) to finish while the rows before it are updated, near enough that the prefetched lines are
still in cache when used (in a one-off measurement of Adam's update there, 4 and 8 were fastest, 16 and 32
slower)."""

_CACHE_LINE = 64


def _prefetch_intrinsic(write: int):  # noqa: ANN202
    """A Numba intrinsic `(table, row, offset)` emitting `llvm.prefetch` of byte `offset` into row `row` of a
    2-D array: for reading (`write` 0) or for writing (1), kept in every cache level, data."""

    @intrinsic
    def prefetch_bytes(typingctx, table, row, offset):  # noqa: ANN001, ANN202, ARG001 - numba's signature
        if not (isinstance(table, types.Array) and table.ndim == 2):
            return None
        signature = types.void(table, types.intp, types.intp)

        def codegen(context, builder, sig, args):  # noqa: ANN001, ANN202
            array = context.make_array(sig.args[0])(context, builder, args[0])
            byte, int32 = ir.IntType(8).as_pointer(), ir.IntType(32)
            row_start = builder.mul(args[1], builder.extract_value(array.strides, 0))
            address = builder.gep(builder.bitcast(array.data, byte), [builder.add(row_start, args[2])])
            name = "llvm.prefetch.p0i8"
            function = builder.module.globals.get(name) or ir.Function(
                builder.module, ir.FunctionType(ir.VoidType(), [byte, int32, int32, int32]), name=name)
            builder.call(function, [address, int32(write), int32(3), int32(1)])
            return context.get_dummy_value()

        return signature, codegen

    return prefetch_bytes


def _row_prefetcher(write: int):  # noqa: ANN202
    """A compiled `(table, row)` that prefetches every cache line of `table[row]` (a C-contiguous 2-D array)."""
    prefetch_bytes = _prefetch_intrinsic(write)

    @numba.njit(inline="always", nogil=True)
    def prefetch(table, row):  # noqa: ANN001, ANN202 - typed by Numba
        width = table.shape[1] * table.itemsize
        for offset in range(0, width, _CACHE_LINE):
            prefetch_bytes(table, row, offset)
        if width > 0:
            prefetch_bytes(table, row, width - 1)  # a row that starts mid-line ends in one more line

    return prefetch


prefetch_row = _row_prefetcher(0)
"""`prefetch_row(table, row)`: prefetch `table[row]` for reading. Changes nothing."""
prefetch_row_for_write = _row_prefetcher(1)
"""`prefetch_row_for_write(table, row)`: for a row about to be written (its lines arrive ready to modify)."""


@numba.njit(inline="always", cache=True, nogil=True)
def prefetch_batch_row(users_table, items_table, users, items, b):  # noqa: ANN001, ANN201 - typed by Numba
    """Prefetch the user row and the item rows that batch row b + PREFETCH_DISTANCE of a training kernel
    reads (`users` [B], `items` [B, 1 + n]); nothing past the batch's end."""
    ahead = b + PREFETCH_DISTANCE
    if ahead < users.shape[0]:
        prefetch_row(users_table, users[ahead])
        for j in range(items.shape[1]):
            prefetch_row(items_table, items[ahead, j])
