"""A hyperbolic run's points, and the numbers the `norms` and `disk` figures show.

Points live on the Poincaré ball B_c = {x : c‖x‖² < 1}. The model is rebuilt from its checkpoint and asked
for `representations()`, so tangent-space parametrizations (exp0), attentive user aggregation (ACF) and a
learned curvature are mapped exactly as evaluation maps them; a run whose geometry is not Poincaré is refused.

    distance from the origin   d_c(0, x) = (2/√c) · artanh(√c‖x‖)
    log map at the origin      log0(x)  = artanh(√c‖x‖) · x / (√c‖x‖),   so ‖log0(x)‖ = d_c(0, x) / 2
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from hbench.datasets.store import Interactions, PreparedDataset
from hbench.datasets.synthetic import HierarchySpec, item_hierarchy
from hbench.errors import HBenchError
from hbench.geometry import PoincareDistance
from hbench.reports.plots.rundirs import run_label
from hbench.runs import RecordedRun
from hbench.training.restore import restore_run
from hbench.ui import QUIET, Feedback

# Largest √c‖x‖ used: points geoopt projected in float32 can round onto the boundary, where artanh is infinite.
MAX_SCALED_NORM = 1.0 - 1e-12


def scaled_norms(points: np.ndarray, c: float) -> np.ndarray:
    """√c‖x‖ per row, in float64, kept below 1."""
    norms = np.linalg.norm(np.asarray(points, dtype=np.float64), axis=-1)
    return np.minimum(np.sqrt(c) * norms, MAX_SCALED_NORM)


def distance_from_origin(points: np.ndarray, c: float) -> np.ndarray:
    """d_c(0, x) = (2/√c) · artanh(√c‖x‖) for every row x of `points` [n, d] on B_c."""
    return 2.0 / np.sqrt(c) * np.arctanh(scaled_norms(points, c))


def log0(points: np.ndarray, c: float) -> np.ndarray:
    """Tangent vectors at the origin: log0(x) = artanh(√c‖x‖) · x / (√c‖x‖) (0 at the origin)."""
    points = np.asarray(points, dtype=np.float64)
    s = scaled_norms(points, c)
    # artanh(s)/s → 1 as s → 0; the guard only avoids 0/0 for points exactly at the origin.
    factor = np.divide(np.arctanh(s), s, out=np.ones_like(s), where=s > 0)
    return points * factor[:, None]


def principal_axes(vectors: np.ndarray, k: int = 2) -> np.ndarray:
    """The k unit directions [d, k] that keep most of Σ‖v‖² (eigenvectors of VᵀV, not centred).

    Not centred on purpose: the origin is the reference point of the plot (distance from it is depth), so
    the axes are principal about the origin. Each axis' largest entry is made positive, so that the same
    points always give the same picture.
    """
    gram = vectors.T @ vectors
    _, eigenvectors = np.linalg.eigh(gram)  # ascending eigenvalues
    axes = eigenvectors[:, ::-1][:, :k].copy()
    signs = np.sign(axes[np.abs(axes).argmax(axis=0), np.arange(k)])
    return axes * np.where(signs == 0, 1.0, signs)


@dataclass(frozen=True)
class DiskProjection:
    """Points on the unit disk. `retained`: Σ‖P log0 x‖² / Σ‖log0 x‖², the share of squared tangent length the
    two axes keep (1 for 2-D runs, which are not projected)."""

    coords: np.ndarray  # [n, 2], every row of norm < 1
    retained: float
    projected: bool

    def take(self, rows: np.ndarray) -> DiskProjection:
        return DiskProjection(self.coords[rows], self.retained, self.projected)


def project_to_disk(points: np.ndarray, c: float) -> DiskProjection:
    """Points of B_c [n, d] drawn on the unit Poincaré disk, keeping each one's distance from the origin.

    d ≤ 2: y = √c · x (a 1-D run is put on the horizontal axis).
    d > 2: v = log0(x); a = v projected on the two principal axes about the origin (`principal_axes`);
           y = √c‖x‖ · a / ‖a‖, i.e. y = exp0 (on the unit disk) of the tangent vector of length ‖v‖√c along a.
    Preserved exactly, per point: the distance from the origin, up to the curvature's scale,
    d_1(0, y) = 2·artanh(‖y‖) = √c · d_c(0, x) (equal when c = 1), so the order of points by depth and every
    radial comparison hold. Only directions are projected: angles and distances *between* points are
    approximate (a point's direction is that of its tangent vector's principal component).
    """
    points = np.asarray(points, dtype=np.float64)
    n, dim = points.shape
    radius = scaled_norms(points, c)
    if dim <= 2:
        planar = np.zeros((n, 2))
        planar[:, :dim] = np.sqrt(c) * points
        norms = np.linalg.norm(planar, axis=1)
        # Rows already inside the disk are unchanged; only boundary round-off is pulled in.
        scale = np.divide(radius, norms, out=np.ones_like(norms), where=norms > 0)
        return DiskProjection(planar * scale[:, None], 1.0, projected=False)
    tangent = log0(points, c)
    planar = tangent @ principal_axes(tangent)
    length = np.linalg.norm(planar, axis=1)
    direction = np.zeros_like(planar)
    direction[:, 0] = 1.0  # a point orthogonal to both axes has no direction of its own: draw it on the first
    np.divide(planar, length[:, None], out=direction, where=length[:, None] > 0)
    total = float((tangent**2).sum())
    retained = float((planar**2).sum()) / total if total > 0 else 1.0
    return DiskProjection(radius[:, None] * direction, retained, projected=True)


def item_popularity(train: Interactions, n_items: int) -> np.ndarray:
    """Training interactions of every item (0 for an item never seen in training)."""
    return np.bincount(np.asarray(train.items, dtype=np.int64), minlength=n_items)


@dataclass(frozen=True)
class Correlation:
    rho: float  # NaN when either side is constant
    pvalue: float
    n: int


def popularity_correlation(popularity: np.ndarray, distance: np.ndarray) -> Correlation:
    """Spearman's rank correlation ρ between item popularity and distance from the origin.

    ρ < 0: popular items sit nearer the origin (what HVACF reports); ρ > 0: farther out.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input: scipy warns and returns NaN, which the caller shows
        result = spearmanr(popularity, distance)
    return Correlation(float(result.statistic), float(result.pvalue), len(popularity))


def subsample(n: int, max_points: int | None, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of at most `max_points` of n rows, uniformly without replacement (all when it fits)."""
    if max_points is None or n <= max_points:
        return np.arange(n)
    return np.sort(rng.choice(n, size=max_points, replace=False))


# --- item labels ---------------------------------------------------------------------------------------------

LABEL_COLUMNS = ("category", "label")


def item_labels(dataset: PreparedDataset, labels_file: Path | None = None) -> np.ndarray:
    """A label (string) for every internal item id, from the first source that has them:

    1. `labels_file`: CSV, TSV or Parquet with the original item id (column `item`, else the first) and a
       label (column `category` or `label`, else the second); items it does not name get `unknown`;
    2. a `category` column in the prepared dataset's items.parquet;
    3. the generator's hierarchy for `synthetic-fashion` (its top-level category).
    """
    original = pd.read_parquet(dataset.path / "items.parquet")
    ids = original["original_id"].astype(str).to_numpy()
    if labels_file is not None:
        frame = _read_table(Path(labels_file))
        if frame.shape[1] < 2:
            raise HBenchError(f"{labels_file} needs two columns: the item id and its label")
        item_col = "item" if "item" in frame.columns else frame.columns[0]
        label_col = next((c for c in LABEL_COLUMNS if c in frame.columns),
                         next(c for c in frame.columns if c != item_col))
        mapping = dict(zip(frame[item_col].astype(str), frame[label_col].astype(str), strict=True))
        labels = np.array([mapping.get(i, "unknown") for i in ids], dtype=object)
        if (labels == "unknown").all():
            raise HBenchError(f"{labels_file} names none of the {len(ids)} items of dataset {dataset.name!r} "
                              f"(column {item_col!r} must hold original item ids)")
        return labels
    if "category" in original.columns:
        return original["category"].astype(str).to_numpy(dtype=object)
    if dataset.manifest.get("spec", {}).get("name") == "synthetic-fashion":
        hierarchy = item_hierarchy(HierarchySpec())
        category = dict(zip(hierarchy["item"].astype(str), hierarchy["category"], strict=True))
        return np.array([f"category {category[i]}" for i in ids], dtype=object)
    raise HBenchError(f"dataset {dataset.name!r} stores no item categories; pass --labels FILE "
                      "(columns: original item id, label) or use --color-by popularity")


def _read_table(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise HBenchError(f"labels file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path, sep="\t" if suffix in (".tsv", ".tab") else ",", dtype=str)


# --- rebuilding a run ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunEmbeddings:
    """A hyperbolic run's final (best-checkpoint) points on B_c, as evaluation saw them."""

    path: Path
    recorded: RecordedRun
    label: str  # model (settings) seed N
    users: np.ndarray  # [n_users, d] float64
    items: np.ndarray  # [n_items, d] float64
    c: float
    dataset: PreparedDataset

    @property
    def popularity(self) -> np.ndarray:
        return item_popularity(self.dataset.train, self.dataset.n_items)


def load_run_embeddings(path: Path, home: Path | None = None, *, purpose: str = "this plot",
                        feedback: Feedback = QUIET) -> RunEmbeddings:
    """Rebuild the run's model from config.json and checkpoint.pt and take its representations.

    Refuses a run whose geometry is not the Poincaré ball (Euclidean models have no hyperbolic distance
    from the origin).
    """
    run = restore_run(path, home, feedback=feedback)
    reps = run.representations()
    if not isinstance(reps.geometry, PoincareDistance):
        raise HBenchError(f"{purpose} needs a hyperbolic run, but {run.recorded.model} in {run.path} scores with the "
                          f"Euclidean '{reps.geometry.name}' geometry (no Poincaré ball)")
    return RunEmbeddings(
        path=run.path,
        recorded=run.recorded,
        label=run_label(run.recorded),
        users=reps.users.detach().cpu().double().numpy(),
        items=reps.items.detach().cpu().double().numpy(),
        c=float(reps.geometry.c),
        dataset=run.dataset,
    )
