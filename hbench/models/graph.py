"""What graph models share: the training graph's normalised adjacency on the model's device, and propagation.

The adjacency comes from the prepared split (`UserItemGraph.adjacency`, built once and cached there); a
model keeps it as a plain attribute, not a buffer, because it is data, not a parameter: checkpoints stay
the size of the embeddings, and a restored model rebuilds it from the same split.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from hbench.datasets.graph import UserItemGraph


class Propagation:
    """K layers of parameter-free propagation E⁽ᵏ⁺¹⁾ = Â E⁽ᵏ⁾ over the bipartite graph (users first)."""

    def __init__(self, graph: UserItemGraph, normalisation: str) -> None:
        matrix = graph.adjacency(normalisation)  # type: ignore[arg-type]
        with warnings.catch_warnings():  # torch calls its CSR support "beta"; sparse @ dense with autograd works
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            self._cpu = torch.sparse_csr_tensor(torch.from_numpy(matrix.indptr.astype(np.int64)),
                                                torch.from_numpy(matrix.indices.astype(np.int64)),
                                                torch.from_numpy(matrix.data), size=matrix.shape,
                                                check_invariants=True)
        self._on: dict[torch.device, torch.Tensor] = {}
        self.n_users = graph.n_users

    def adjacency(self, device: torch.device) -> torch.Tensor:
        if device not in self._on:
            self._on[device] = self._cpu.to(device)
        return self._on[device]

    def layers(self, ego: torch.Tensor, n_layers: int) -> list[torch.Tensor]:
        """[E⁽⁰⁾, E⁽¹⁾, …, E⁽ᴷ⁾] for ego embeddings [n_users + n_items, D]."""
        adjacency = self.adjacency(ego.device)
        out = [ego]
        for _ in range(n_layers):
            out.append(torch.sparse.mm(adjacency, out[-1]))
        return out

    def split(self, nodes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(user rows, item rows) of a node matrix."""
        return nodes[: self.n_users], nodes[self.n_users :]
