"""The model protocol: parameters, representations, geometry and loss. Nothing else.

The trainer, negative sampler, evaluation and checkpointing are shared by every model. A model

* declares its options as a dataclass (`Options`), each field documented with `option(help=...)`;
* builds its parameters in `__init__` from a `ModelContext` (sizes, dimension, training data, seeded
  generator);
* returns `Representations` (user points, item points, geometry) for evaluation;
* returns a `LossTerms` for a batch of (user, positive item, negative items) triples;
* may keep its parameters feasible after each optimiser step in `constrain_()` (e.g. CML's unit ball).

Embedding tables (one row per user or item) are read with `lookup()` and listed by `embedding_tables()`:
their gradients are then sparse, and the trainer updates only the rows a batch touched (lazy Riemannian
Adam). Dense Adam would rewrite every row of every table at every step, which dominated CPU training time
(~180 ms vs 18 ms a step on amazon-clothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from hbench.config import Range, setting
from hbench.datasets.store import Interactions
from hbench.evaluation.ranking import Representations


def option(default: Any, help: str, range: Range | None = None) -> Any:  # noqa: A002 - mirrors argparse/typer wording
    """A model option with its documentation and the values it admits (both shown by `hbench models NAME`).

    The range is checked by `parse_options`, through which flags, spec files and the Python API all pass.
    """
    return setting(default, range=range, help=help)


@dataclass(frozen=True)
class ModelContext:
    n_users: int
    n_items: int
    dim: int
    train: Interactions
    generator: torch.Generator  # seeded stream for parameter initialisation
    # Frozen image features [n_items, F] (float32) for models with `needs_features`; None otherwise.
    item_features: torch.Tensor | None = None


@dataclass
class LossTerms:
    """The loss to minimise and its named parts (logged per epoch, inspected by ablation tests)."""

    total: torch.Tensor
    parts: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class NoOptions:
    pass


class Recommender(nn.Module):
    """Base class of every model. Subclasses set `Options`, `default_lr`, and implement the hooks."""

    name: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions
    default_lr: ClassVar[float] = 1e-3
    trainable: ClassVar[bool] = True
    needs_features: ClassVar[bool] = False  # the trainer then loads `hbench features` output into the context
    summary: ClassVar[str] = ""
    # `hbench ablate` preset: variant name -> options that switch one part off (empty: the full model).
    ablations: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, context: ModelContext, options: Any) -> None:
        super().__init__()
        self.options = options
        self.sparse_gradients = False  # set by the trainer when it updates embedding rows lazily

    @classmethod
    def uses_features(cls, options: Any) -> bool:
        """Whether this configuration reads image features (a model may switch its visual part off)."""
        return cls.needs_features

    def lookup(self, table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Rows `table[index]` (any index shape), with a sparse gradient when `sparse_gradients` is on."""
        return F.embedding(index, table, sparse=self.sparse_gradients)

    def embedding_tables(self) -> list[nn.Parameter]:
        """Parameters read only through `lookup` (eligible for sparse, row-wise updates)."""
        return []

    def representations(self) -> Representations:
        raise NotImplementedError

    def loss(self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor) -> LossTerms:
        """users, positives: [b]; negatives: [b, n]. Returns the mean loss over the batch."""
        raise NotImplementedError

    def constrain_(self) -> None:
        """Project parameters back onto their feasible set after an optimiser step."""


def normal_init(shape: tuple[int, ...], std: float, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(shape, generator=generator) * std
