"""What graph models share: the training graph's normalised adjacency on the model's device, and propagation.

The adjacency comes from the prepared split (`UserItemGraph.adjacency`, built once and cached there); a
model keeps it as a plain attribute, not a buffer, because it is data, not a parameter: checkpoints stay
the size of the embeddings, and a restored model rebuilds it from the same split.

Propagation's backward multiplies by Âᵀ, which is built once here. Autograd through `torch.sparse.mm`
would instead transpose the CSR matrix at every backward (a sort of all its entries), which was most of a
LightGCN step on a CPU. On a CPU both products run in a compiled loop over the output rows, split between
the threads (`_csr_times_dense`; scipy's and torch's CSR kernels use one thread there: 41 and 28 ms for
one product on amazon-clothing against about 23 ms); on other devices in torch's sparse CSR.
"""

from __future__ import annotations

import warnings
from typing import Any

import numba
import numpy as np
import scipy.sparse as sp
import torch

from hbench.compiled import PARALLEL_KERNEL, PREFETCH_DISTANCE, VECTORISE, prefetch_row
from hbench.datasets.graph import UserItemGraph


@numba.njit(cache=True, nogil=True, error_model="numpy", parallel=True, fastmath=set(VECTORISE))
def _csr_times_dense(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, dense: np.ndarray,
                     out: np.ndarray) -> None:
    """out = A dense for A in CSR (each output row is its entries' weighted sum of dense rows, in CSR order).

    The dense rows an output row reads are its neighbours, anywhere in the matrix: the row of the entry a
    few entries on is prefetched while this one is added."""
    width, entries = dense.shape[1], indices.shape[0]
    for row in numba.prange(out.shape[0]):  # each output row is written by one iteration
        for d in range(width):
            out[row, d] = 0
        for k in range(indptr[row], indptr[row + 1]):
            if k + PREFETCH_DISTANCE < entries:  # a dense row read a few entries on (see hbench.compiled)
                prefetch_row(dense, indices[k + PREFETCH_DISTANCE])
            column, weight = indices[k], data[k]
            for d in range(width):
                out[row, d] += weight * dense[column, d]


def _torch_csr(matrix: sp.csr_matrix) -> torch.Tensor:
    with warnings.catch_warnings():  # torch calls its CSR support "beta"; sparse @ dense works
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(torch.from_numpy(matrix.indptr.astype(np.int64)),
                                       torch.from_numpy(matrix.indices.astype(np.int64)),
                                       torch.from_numpy(matrix.data), size=matrix.shape, check_invariants=True)


class _SparseOperator:
    """One constant sparse matrix, multiplied with dense matrices on any device."""

    def __init__(self, matrix: sp.csr_matrix) -> None:
        self.matrix = matrix
        self._on: dict[torch.device, torch.Tensor] = {}

    def __matmul__(self, dense: torch.Tensor) -> torch.Tensor:
        if dense.device.type == "cpu":
            values = dense.detach().contiguous().numpy()
            matrix = self.matrix
            out = np.empty((matrix.shape[0], values.shape[1]), values.dtype)
            with PARALLEL_KERNEL:  # see hbench.compiled
                _csr_times_dense(matrix.indptr, matrix.indices, matrix.data.astype(values.dtype, copy=False), values,
                                 out)
            return torch.from_numpy(out)
        if dense.device not in self._on:
            self._on[dense.device] = _torch_csr(self.matrix).to(dense.device)
        return torch.sparse.mm(self._on[dense.device], dense)


class _Propagate(torch.autograd.Function):
    """y = Â x with ∂L/∂x = Âᵀ ∂L/∂y (Â is constant: no gradient for it)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, forward: _SparseOperator, transposed: _SparseOperator) -> torch.Tensor:
        ctx.transposed = transposed
        return forward @ x

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        return ctx.transposed @ grad, None, None


class Propagation:
    """K layers of parameter-free propagation E⁽ᵏ⁺¹⁾ = Â E⁽ᵏ⁾ over the bipartite graph (users first)."""

    def __init__(self, graph: UserItemGraph, normalisation: str) -> None:
        matrix = graph.adjacency(normalisation)  # type: ignore[arg-type]
        self._forward = _SparseOperator(matrix)
        # D^-1/2 A D^-1/2 is symmetric; the row normalisations are not.
        self._transposed = self._forward if normalisation == "symmetric" else _SparseOperator(matrix.T.tocsr())
        self.n_users = graph.n_users

    def layers(self, ego: torch.Tensor, n_layers: int) -> list[torch.Tensor]:
        """[E⁽⁰⁾, E⁽¹⁾, …, E⁽ᴷ⁾] for ego embeddings [n_users + n_items, D]."""
        out = [ego]
        for _ in range(n_layers):
            out.append(_Propagate.apply(out[-1], self._forward, self._transposed))
        return out

    def split(self, nodes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(user rows, item rows) of a node matrix."""
        return nodes[: self.n_users], nodes[self.n_users :]
