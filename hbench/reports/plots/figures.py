"""Drawing: matplotlib figures from the numbers of `sweep`, `embeddings` and `training`, saved atomically.

Figures are `matplotlib.figure.Figure` objects drawn by the Agg canvas, never through pyplot, so no
display or GUI backend is touched and nothing global is left behind.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, Patch

from hbench.atomic import atomic_path
from hbench.errors import HBenchError
from hbench.reports.plots.embeddings import Correlation, DiskProjection
from hbench.reports.plots.sweep import BAND_LEGEND, Sweep
from hbench.reports.plots.training import TrainingCurve

IMAGE_FORMATS = ("png", "svg")
_STAGE_STYLE = {"valid": "-", "test": "--"}
_STAGE_NAME = {"valid": "validation", "test": "test"}
ZOOM_BELOW = 0.5  # a magnified second disk panel when every point lies within this radius
MAX_LEGEND_LABELS = 20  # category colours: the most frequent labels keep their own, the rest are `other`


def resolve_output(output: Path | None, fmt: str | None, default_stem: str) -> tuple[Path, str]:
    """(path, format): `--format` if given, else the output's suffix, else png; the default path is
    `<default_stem>.<format>` in the working directory."""
    if fmt is not None and fmt.lower() not in IMAGE_FORMATS:
        raise HBenchError(f"--format must be png or svg, not {fmt!r}")
    suffix = output.suffix.lower().lstrip(".") if output is not None else ""
    if output is not None and suffix and suffix not in IMAGE_FORMATS and fmt is None:
        raise HBenchError(f"cannot write {output}: images are .png or .svg (or name one with --format)")
    if fmt is not None and suffix in IMAGE_FORMATS and suffix != fmt.lower():
        raise HBenchError(f"--format {fmt} contradicts the output name {output}")
    chosen = (fmt or (suffix if suffix in IMAGE_FORMATS else "png")).lower()
    return (output if output is not None else Path(f"{default_stem}.{chosen}")), chosen


def save_figure(figure: Figure, output: Path, fmt: str, dpi: int = 150) -> Path:
    """Write the figure atomically (a reader never sees half an image) and return the path."""
    # No timestamps or software strings in the file: the same figure gives the same bytes.
    metadata = {"Date": None, "Creator": None} if fmt == "svg" else {"Software": None}
    with atomic_path(output) as tmp:
        figure.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight", metadata=metadata)
    return output


def _colours(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


# --- sweep ---------------------------------------------------------------------------------------------------


def sweep_figure(sweep: Sweep, log_x: bool) -> Figure:
    """Mean line per group and stage (valid solid, test dashed) with its band shaded."""
    figure = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = figure.subplots()
    colours = dict(zip(sweep.lines, _colours(len(sweep.lines)), strict=True))
    for label in sweep.lines:
        for stage in sweep.stages:
            points = sweep.line(label, stage)
            points = points[points["n"] > 0]
            if points.empty:
                continue
            x = points["x"].to_numpy(float)
            style = _STAGE_STYLE[stage] if len(sweep.stages) > 1 else "-"
            ax.plot(x, points["mean"], style, marker="o", markersize=4, color=colours[label])
            if sweep.band != "none":
                ax.fill_between(x, points["lower"], points["upper"], color=colours[label], alpha=0.15, linewidth=0)
    if log_x:
        ax.set_xscale("log")
    if sweep.categorical:
        ax.set_xticks(range(len(sweep.categories)), sweep.categories)
    else:
        ax.set_xticks(sorted(set(sweep.points["x"])))
        ax.tick_params(axis="x", which="minor", bottom=False)
        ax.xaxis.set_major_formatter("{x:g}")
    ax.set_xlabel(sweep.axis)
    ax.set_ylabel(sweep.metric + (f" ({_STAGE_NAME[sweep.stages[0]]})" if len(sweep.stages) == 1 else ""))
    ax.grid(alpha=0.3)

    # Every stage counts the same runs: the first stage's points hold each line's diverged runs once.
    first = sweep.points[sweep.points["stage"] == sweep.stages[0]]
    diverged = first.groupby("line")["n_diverged"].sum()
    handles = [Line2D([], [], color=colours[label], marker="o", markersize=4,
                      label=label + (f" ({diverged[label]} diverged, not averaged)" if diverged.get(label, 0) else ""))
               for label in sweep.lines]
    if len(sweep.stages) > 1:
        handles += [Line2D([], [], color="black", linestyle=_STAGE_STYLE[s], label=_STAGE_NAME[s]) for s in sweep.stages]
    seeds = f"{first['n'].min()}–{first['n'].max()}" if first["n"].min() != first["n"].max() else str(first["n"].max())
    band = f"; band: {BAND_LEGEND[sweep.band]}" if sweep.band != "none" else ""
    handles.append(Patch(color="grey", alpha=0.3 if band else 0.0, label=f"line: mean over {seeds} seeds{band}"))
    ax.legend(handles=handles, fontsize="small", loc="best")
    ax.set_title(f"{sweep.metric} against {sweep.axis} · {sweep.title}", fontsize="medium")
    return figure


# --- norms ---------------------------------------------------------------------------------------------------


def _binned_median(x: np.ndarray, y: np.ndarray, n_bins: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Median of y in log-spaced bins of x > 0 (bins with points only), for a trend line over the scatter."""
    if len(x) == 0 or x.min() == x.max():
        return np.array([]), np.array([])
    edges = np.geomspace(x.min(), x.max() * (1 + 1e-9), n_bins + 1)
    which = np.digitize(x, edges) - 1
    centres, medians = [], []
    for b in range(n_bins):
        inside = which == b
        if inside.any():
            centres.append(np.sqrt(edges[b] * edges[b + 1]))
            medians.append(np.median(y[inside]))
    return np.array(centres), np.array(medians)


def correlation_text(correlation: Correlation) -> str:
    if np.isnan(correlation.rho):
        return f"Spearman ρ undefined (a constant side; n = {correlation.n} items)"
    p = "p < 1e-300" if correlation.pvalue == 0 else f"p = {correlation.pvalue:.2g}"  # underflows on large data
    return f"Spearman ρ = {correlation.rho:.3f} ({p}, n = {correlation.n} items)"


def norms_figure(popularity: np.ndarray, item_distance: np.ndarray, user_distance: np.ndarray,
                 correlation: Correlation, title: str, c: float) -> Figure:
    """Left: item distance from the origin against training popularity (log x) with a binned median.
    Right: distributions of user and item distances from the origin (step histograms, density)."""
    figure = Figure(figsize=(11.5, 4.6), layout="constrained")
    left, right = figure.subplots(1, 2)
    seen = popularity > 0  # log axis: items without training interactions cannot be placed
    left.scatter(popularity[seen], item_distance[seen], s=6, alpha=0.4, linewidths=0, color="tab:blue", label="item")
    centres, medians = _binned_median(popularity[seen].astype(float), item_distance[seen])
    left.plot(centres, medians, color="tab:red", marker="o", markersize=3, label="median per popularity bin")
    left.set_xscale("log")
    left.set_xlabel("training interactions of the item (log scale)")
    left.set_ylabel(f"d_c(0, item), c = {c:g}")
    unseen = int((~seen).sum())
    left.set_title(correlation_text(correlation) + (f"\n{unseen} items with no training interaction not drawn"
                                                   if unseen else ""), fontsize="medium")
    left.legend(fontsize="small")
    left.grid(alpha=0.3)

    both = np.concatenate([user_distance, item_distance])
    bins = np.linspace(both.min(), both.max(), 50) if both.max() > both.min() else 10
    right.hist(user_distance, bins=bins, density=True, histtype="step", linewidth=1.5, color="tab:gray",
               label=f"users (n = {len(user_distance)})")
    right.hist(item_distance, bins=bins, density=True, histtype="step", linewidth=1.5, color="tab:blue",
               label=f"items (n = {len(item_distance)})")
    right.set_xlabel(f"distance from the origin d_c(0, ·), c = {c:g}")
    right.set_ylabel("density")
    right.set_title("users and items by distance from the origin", fontsize="medium")
    right.legend(fontsize="small")
    right.grid(alpha=0.3)
    figure.suptitle(title, fontsize="medium")
    return figure


# --- disk ----------------------------------------------------------------------------------------------------


def _top_labels(labels: np.ndarray) -> np.ndarray:
    """Labels with all but the MAX_LEGEND_LABELS − 1 most frequent merged into `other` (when there are more)."""
    values, counts = np.unique(labels.astype(str), return_counts=True)
    if len(values) <= MAX_LEGEND_LABELS:
        return labels.astype(str)
    keep = set(values[np.argsort(-counts, kind="stable")[: MAX_LEGEND_LABELS - 1]])
    return np.array([label if label in keep else "other" for label in labels.astype(str)], dtype=object)


def disk_note(projection: DiskProjection, dim: int, c: float) -> str:
    """How the points were put on the disk, and what that keeps (printed under the disk)."""
    scale = "" if c == 1 else f"; on the unit disk distances are √c = {c ** 0.5:g} times those of B_c"
    if not projection.projected:
        return f"{dim}-D points, not projected" + scale
    return (f"{dim}-D points projected: log0 → 2 principal axes about the origin ({projection.retained:.0%} of the "
            f"squared tangent length) → exp0; each point's distance from the origin is kept{scale}")


def disk_figure(users: DiskProjection, items: DiskProjection, *, n_users: int, n_items: int,
                popularity: np.ndarray | None = None, labels: np.ndarray | None = None,
                title: str = "", note: str = "") -> Figure:
    """Items (by popularity, or by label) and users (grey crosses, on top) on the unit disk, boundary drawn.

    Trained points often stay close to the origin; when every point lies within half the radius a second
    panel shows the same points magnified to their extent (the unit circle is then out of view).
    """
    extent = float(np.linalg.norm(np.concatenate([users.coords, items.coords]), axis=1).max(initial=0.0))
    zoom = 0.0 < extent < ZOOM_BELOW
    figure = Figure(figsize=(13.5 if zoom else 7.8, 6.6), layout="constrained")
    axes = figure.subplots(1, 2 if zoom else 1, squeeze=False)[0]
    item_label = f"items ({len(items.coords)} of {n_items})"
    user_label = f"users ({len(users.coords)} of {n_users})"
    names = None
    if labels is not None:
        labels = _top_labels(labels)
        names = sorted(set(labels), key=lambda v: (v == "other", v))
    for ax, limit in zip(axes, (1.05, 1.08 * extent), strict=False):
        ax.add_patch(Circle((0, 0), 1.0, fill=False, color="black", linewidth=1.0))
        if names is not None:
            for name, colour in zip(names, _colours(len(names)), strict=True):
                inside = labels == name
                ax.scatter(items.coords[inside, 0], items.coords[inside, 1], s=9, color=colour, alpha=0.8,
                           linewidths=0, label=name)
        else:
            shade = np.log10(1.0 + np.asarray(popularity, dtype=float))
            order = np.argsort(shade, kind="stable")  # popular items drawn last, on top
            points = ax.scatter(items.coords[order, 0], items.coords[order, 1], c=shade[order], cmap="viridis",
                                s=9, alpha=0.85, linewidths=0, vmin=0.0, vmax=max(float(shade.max(initial=0)), 1e-9),
                                label=item_label)
        ax.scatter(users.coords[:, 0], users.coords[:, 1], s=6, marker="x", linewidths=0.5, color="0.25", alpha=0.5,
                   label=user_label)
        ax.set_xlim(-limit, limit)
        ax.set_ylim(-limit, limit)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ax.spines.values():
            side.set_visible(ax is not axes[0])
    if zoom:
        axes[1].set_title(f"magnified: every point within radius {extent:.3g} of the unit disk", fontsize="medium")
    if names is not None:
        axes[-1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), title=item_label)
    else:
        figure.colorbar(points, ax=axes[-1], shrink=0.8, label="log10(1 + training interactions)")
        axes[0].legend(fontsize="small", loc="upper left")
    axes[0].set_title(title, fontsize="medium")
    if note:
        figure.text(0.5, 0.0, note, ha="center", va="top", fontsize="small", wrap=True)
    return figure


# --- training ------------------------------------------------------------------------------------------------


def training_figure(curves: list[TrainingCurve], metric: str) -> Figure:
    """Left: mean training loss per epoch. Right: the validation metric, best epoch starred."""
    figure = Figure(figsize=(11.5, 4.6), layout="constrained")
    left, right = figure.subplots(1, 2)
    for curve, colour in zip(curves, _colours(len(curves)), strict=True):
        suffix = "" if curve.status == "completed" else f" [{curve.status}]"
        left.plot(curve.epochs, curve.loss, color=colour, label=curve.label + suffix)
        if len(curve.valid):
            right.plot(curve.valid_epochs, curve.valid, color=colour, marker="o", markersize=3)
            if curve.best_epoch in set(curve.valid_epochs.tolist()):
                best = curve.valid[curve.valid_epochs.tolist().index(curve.best_epoch)]
                right.plot([curve.best_epoch], [best], marker="*", markersize=12, color=colour, linestyle="none")
    left.set_xlabel("epoch")
    left.set_ylabel("training loss (mean over batches)")
    left.set_title("training loss", fontsize="medium")
    left.grid(alpha=0.3)
    right.set_xlabel("epoch")
    right.set_ylabel(f"validation {metric}")
    right.set_title(f"validation {metric} (★ best epoch, the checkpoint)", fontsize="medium")
    right.grid(alpha=0.3)
    if not any(len(c.valid) for c in curves):
        right.text(0.5, 0.5, "no validation logged yet", transform=right.transAxes, ha="center", va="center")
    for ax in (left, right):
        ax.xaxis.get_major_locator().set_params(integer=True)
    figure.legend(*left.get_legend_handles_labels(), loc="outside lower center", ncols=min(3, len(curves)),
                  fontsize="small")
    return figure
