"""The model protocol: parameters, representations, geometry and loss. Nothing else.

The trainer, negative sampler, evaluation and checkpointing are shared by every model. A model

* declares its options as a dataclass (`Options`), each field documented with `option(help=...)`;
* builds its parameters in `__init__` from a `ModelContext` (sizes, dimension, training data, seeded
  generator);
* returns `Representations` (user points, item points, geometry) for evaluation;
* returns a `LossTerms` for a batch of (user, positive item, negative items) triples;
* may keep its parameters feasible after each optimiser step in `constrain_()` (e.g. CML's unit ball);
* declares what reports need to know about it as class attributes: `family`, the geometry its
  representations live in ("euclidean" or "hyperbolic", the `family` of the geometry `representations()`
  returns with the default options), and `proposed`, whether it is one of the methods the benchmark
  evaluates (the models of the papers hbench reproduces) rather than a baseline they are compared with:
  significance tests pick their default baseline among the models that are not proposed. A model whose
  geometry is an option says so in `family_for(options)`, the family of a configured model;
* may declare its `twin` (`Twin`): the model in the other geometry that is otherwise the same.

Embedding tables (one row per user or item) are read with `lookup()` and listed by `embedding_tables()`:
their gradients then arrive as rows (`hbench.models.rows`), and the trainer updates only the rows a batch
touched (lazy Riemannian Adam, `hbench.training.optim.RowAdam`). Dense Adam would rewrite every row of every
table at every step, which dominated CPU training time. Models that read whole tables every step (graph
propagation) list no embedding tables and get dense Riemannian Adam, or declare their own optimisers with
`configure_optimizers` (HGCF: Riemannian SGD with momentum).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from hbench.config import Range, setting
from hbench.datasets.graph import UserItemGraph
from hbench.datasets.store import Interactions
from hbench.geometry import GeometryFamily, Representations
from hbench.models.rows import RowGradients, gather_rows


def option(default: Any, help: str, range: Range | None = None, *,  # noqa: A002 - mirrors argparse/typer wording
           added_later: bool = False) -> Any:
    """A model option with its documentation and the values it admits (both shown by `hbench models NAME`).

    The range is checked by `parse_options`, through which flags, spec files and the Python API all pass.
    `added_later`: the option came after runs of the model were recorded, and its default reproduces them; at
    that default it stays out of a run's identity (`ResolvedRun.identity_exempt`), so those runs keep their
    hashes. Give every option added to an existing model this flag, and make its default the old behaviour.
    """
    return setting(default, range=range, help=help, added_later=added_later)


def identity_exempt(options: Any) -> tuple[str, ...]:
    """The options of the Options instance `options` that are `added_later` and at their default."""
    return tuple(f.name for f in dataclasses.fields(options)
                 if f.metadata.get("added_later") and getattr(options, f.name) == f.default)


@dataclass(frozen=True)
class ModelContext:
    n_users: int
    n_items: int
    dim: int
    train: Interactions
    generator: torch.Generator  # seeded stream for parameter initialisation
    # Frozen image features [n_items, F] (float32) for models with `needs_features`; None otherwise.
    item_features: torch.Tensor | None = None
    # The prepared split's cached training graph; built from `train` when not given (tests, notebooks).
    graph: UserItemGraph | None = None

    def training_graph(self) -> UserItemGraph:
        return self.graph if self.graph is not None else UserItemGraph.from_parts([self.train], self.n_users,
                                                                                   self.n_items)


@dataclass
class LossTerms:
    """The loss to minimise and its named parts (logged per epoch, inspected by ablation tests)."""

    total: torch.Tensor
    parts: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class Twin:
    """A model's twin: the same model in the other geometry, everything else equal.

    Same propagation or parametrisation, same loss and loss options, same sampler, same optimiser, the same
    options with the same defaults; only the geometry differs (the Poincaré ball against Euclidean space).
    Comparing a hyperbolic model with its twin at equal budget is what answers "does hyperbolic space help?"
    (issue 34); comparing it with another Euclidean model mixes the geometry with the loss and the rest.

    `model` is the twin's registered name (the model itself for a geometry switch) and `options` the
    options that turn it into the twin (e.g. `{"geometry": "euclidean"}`); everything else stays at its
    default. The options only one geometry has (the curvature, the switch itself) are listed in each model's
    `geometry_options`; the contract test checks that the two agree on all the others.
    """

    model: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NoOptions:
    pass


class Recommender(nn.Module):
    """Base class of every model. Subclasses set `name`, `family`, `Options`, `default_lr`, and implement the hooks.

    `family` has no default: a model must say whether it scores in Euclidean space or on the Poincaré ball
    (`register_model` refuses one that does not). `proposed` defaults to False (a baseline).
    """

    name: ClassVar[str] = ""
    # The geometry family of `representations()` under the default options (the contract test checks it).
    family: ClassVar[GeometryFamily]
    # One of the methods under test, not a baseline: significance tests choose their baseline among the others.
    proposed: ClassVar[bool] = False
    Options: ClassVar[type] = NoOptions
    default_lr: ClassVar[float] = 1e-3
    # Training triples per step when none is given. Models whose step costs the touched rows (lazy Adam)
    # train fastest with large batches; graph models propagate the whole graph every step.
    default_batch_size: ClassVar[int] = 1024
    trainable: ClassVar[bool] = True
    needs_features: ClassVar[bool] = False  # the trainer then loads `hbench features` output into the context
    summary: ClassVar[str] = ""
    # `hbench tune`'s space: option or training setting -> an Axis ({low, high, log} or {choices}).
    search_space: ClassVar[dict[str, dict[str, Any]]] = {}
    # `hbench ablate` preset: variant name -> options that switch one part off (empty: the full model).
    ablations: ClassVar[dict[str, dict[str, Any]]] = {}
    # The same model in the other geometry (see `Twin`); None: no twin declared.
    twin: ClassVar[Twin | None] = None
    # Options that only this model's geometry has (curvature, a geometry switch): a twin may lack them or
    # give them other defaults.
    geometry_options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, context: ModelContext, options: Any) -> None:
        super().__init__()
        self.options = options
        # Set by the trainer when it updates embedding rows lazily: lookups then hand their gradients here.
        self.row_gradients: RowGradients | None = None

    @classmethod
    def uses_features(cls, options: Any) -> bool:
        """Whether this configuration reads image features (a model may switch its visual part off)."""
        return cls.needs_features

    @classmethod
    def family_for(cls, options: Any) -> GeometryFamily:
        """The geometry family of a configuration's representations (`family` unless an option switches the
        geometry: HGCF's `--geometry`, HVACF's `--hyperbolic`)."""
        return cls.family

    @classmethod
    def default_lr_for(cls, options: Any) -> float:
        """The learning rate a configuration trains with when none is given (`default_lr` unless overridden)."""
        return cls.default_lr

    def row_kernels_apply(self, tables: tuple[torch.Tensor, ...]) -> bool:
        """Whether a model's compiled table kernels may serve this step: row-gradient training (the trainer
        set `row_gradients`) with autograd on, and `tables` contiguous float CPU tensors of one dtype."""
        return (self.row_gradients is not None and torch.is_grad_enabled()
                and all(t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64) and t.is_contiguous()
                        and t.dtype == tables[0].dtype for t in tables))

    def lookup(self, table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Rows `table[index]` (any index shape); their gradient goes to `row_gradients` when the trainer set it."""
        if self.row_gradients is None or not torch.is_grad_enabled():
            return F.embedding(index, table)
        return gather_rows(table, index, self.row_gradients)

    def embedding_tables(self) -> list[nn.Parameter]:
        """Parameters read only through `lookup` (eligible for sparse, row-wise updates)."""
        return []

    def representations(self) -> Representations:
        raise NotImplementedError

    def loss(self, users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor) -> LossTerms:
        """users, positives: [b]; negatives: [b, n]. Returns the mean loss over the batch."""
        raise NotImplementedError

    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer] | None:
        """The model's own optimisers, or None for the trainer's (lazy Riemannian Adam on embedding rows,
        Riemannian Adam on the rest)."""
        return None

    def constrain_(self, touched: dict[str, torch.Tensor] | None = None) -> None:
        """Project parameters back onto their feasible set after an optimiser step.

        `touched` maps parameter names to the rows the step changed (None: any row may have changed), so
        that a projection costs what the step cost.
        """


def normal_init(shape: tuple[int, ...], std: float, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(shape, generator=generator) * std
