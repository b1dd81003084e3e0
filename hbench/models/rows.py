"""Embedding rows read by a training step, and their gradients, without sparse tensors.

A batch of B triples reads a few thousand rows of tables with tens of thousands of rows. Autograd through
`table[index]` would build a dense table-sized gradient (zeroed and rewritten every step); torch's sparse
embedding gradient builds a COO tensor that the optimiser must coalesce (a sort) before it can use it.
Both cost what the table costs, not what the batch touched.

`gather_rows(table, index, sink)` reads `table[index]`; its backward hands (index, gradient rows) to the
sink instead of accumulating into `table.grad`. The optimiser (`hbench.training.optim.RowAdam`) then sums
the gradient per touched row and updates those rows only.
"""

from __future__ import annotations

from typing import Any

import torch


class RowGradients:
    """Gradient rows of one step, per table: what backward wrote, in the order lookups were made."""

    def __init__(self) -> None:
        self._reads: dict[int, tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]] = {}

    def add(self, table: torch.Tensor, index: torch.Tensor, grad: torch.Tensor) -> None:
        entry = self._reads.setdefault(id(table), (table, [], []))
        entry[1].append(index.reshape(-1))
        entry[2].append(grad.reshape(-1, table.shape[1]))

    def pop(self, table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[tuple[int, int], ...]] | None:
        """(index [L], gradient rows [L, D], reads key) of every read of `table` since the last pop, or None.

        The key names the index memory that was read ((data pointer, length) per lookup): two tables read
        with the same index tensors (an item embedding and its bias) get equal keys, so the optimiser can
        find their touched rows once.
        """
        entry = self._reads.pop(id(table), None)
        if entry is None:
            return None
        _, indices, grads = entry
        key = tuple((index.data_ptr(), index.numel()) for index in indices)
        if len(indices) == 1:
            return indices[0], grads[0], key
        return torch.cat(indices), torch.cat(grads), key

    def clear(self) -> None:
        self._reads.clear()


class _GatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, table: torch.Tensor, index: torch.Tensor, sink: RowGradients) -> torch.Tensor:
        ctx.table, ctx.sink = table, sink
        ctx.save_for_backward(index)
        return table.index_select(0, index.reshape(-1)).reshape(*index.shape, table.shape[1])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, None, None]:
        (index,) = ctx.saved_tensors
        ctx.sink.add(ctx.table, index, grad)
        return None, None, None


def gather_rows(table: torch.Tensor, index: torch.Tensor, sink: RowGradients) -> torch.Tensor:
    """`table[index]` (any index shape) whose gradient goes to `sink` as rows, not to `table.grad`."""
    return _GatherRows.apply(table, index, sink)
