"""Drawing: matplotlib figures from the numbers of `sweep`, `embeddings` and `training`, saved atomically.

Figures are `matplotlib.figure.Figure` objects drawn by the Agg canvas, never through pyplot, so no
display or GUI backend is touched. A `FigureStyle` sets the size in inches (a paper's single column is
about 3.3 in, a double column 7 in), the font size and a matplotlib style; they apply inside
`figure_context` only, so nothing global is left behind. Files have exactly the requested size (no
tight bounding box): constrained layout fits titles, labels and legends inside it. Below 5 in of width,
two-panel figures stack their panels; legends sit outside the axes, below them.
"""

from __future__ import annotations

import contextlib
import re
import textwrap
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, Patch

from hbench.atomic import atomic_path
from hbench.errors import HBenchError
from hbench.reports.names import metric_name, setting_name
from hbench.reports.plots.embeddings import Correlation, DiskProjection
from hbench.reports.plots.sweep import BAND_LEGEND, Sweep
from hbench.reports.plots.training import (
    ConfigurationCurves,
    TrainingCurve,
    group_by_configuration,
)

IMAGE_FORMATS = ("pdf", "png", "svg")
_STAGE_STYLE = {"valid": "-", "test": "--"}
_STAGE_NAME = {"valid": "validation", "test": "test"}
# configurations of one model share its colour: line styles, then markers, tell them apart
_CONFIGURATION_STYLES = tuple((line, marker) for marker in (None, "s", "^", "D") for line in ("-", "--", ":", "-."))
ZOOM_BELOW = 0.5  # a magnified second disk panel when every point lies within this radius
MAX_LEGEND_LABELS = 20  # category colours: the most frequent labels keep their own, the rest are `other`
DEFAULT_WIDTH = 7.0  # inches: a double-column figure
STACK_BELOW = 5.0  # inches: narrower figures put their two panels one above the other
MAX_INCHES = 60.0


@dataclass(frozen=True)
class FigureStyle:
    """Size (inches; None: 7 in wide, each kind's own height), font size in points (None: the style's) and
    a matplotlib style name or .mplstyle file (None: matplotlib's defaults, whatever the local rc file says)."""

    width: float | None = None
    height: float | None = None
    font_size: float | None = None
    style: str | None = None

    def __post_init__(self) -> None:
        for name, value in (("--width", self.width), ("--height", self.height)):
            if value is not None and not 0.5 <= value <= MAX_INCHES:
                raise HBenchError(f"{name} is in inches, between 0.5 and {MAX_INCHES:g}; got {value:g}")
        if self.font_size is not None and not 2 <= self.font_size <= 72:
            raise HBenchError(f"--font-size is in points, between 2 and 72; got {self.font_size:g}")
        if self.style is not None:
            from matplotlib import style

            if self.style not in (*style.available, "default") and not Path(self.style).is_file():
                raise HBenchError(f"unknown matplotlib style {self.style!r}; choose one of default, "
                                  f"{', '.join(sorted(style.available))} or name an .mplstyle file")

    def size(self, default_height: Callable[[float], float]) -> tuple[float, float]:
        """(width, height): the given ones, else 7 in and the kind's height for that width."""
        width = self.width or DEFAULT_WIDTH
        return width, self.height or default_height(width)

    @property
    def stacked(self) -> bool:
        return (self.width or DEFAULT_WIDTH) < STACK_BELOW


@contextlib.contextmanager
def figure_context(look: FigureStyle) -> Iterator[None]:
    """The style and font size for drawing and saving one figure; TrueType fonts in PDF (publishers refuse
    the Type 3 fonts matplotlib embeds by default)."""
    from matplotlib import rc_context, style

    params = {"pdf.fonttype": 42, "ps.fonttype": 42}
    if look.font_size is not None:
        params["font.size"] = look.font_size
    with style.context(look.style or "default"), rc_context(params):
        yield


def resolve_output(output: Path | None, fmt: str | None, default_stem: str) -> tuple[Path, str]:
    """(path, format): `--format` if given, else the output's suffix, else png; the default path is
    `<default_stem>.<format>` in the working directory."""
    if fmt is not None and fmt.lower() not in IMAGE_FORMATS:
        raise HBenchError(f"--format must be pdf, png or svg, not {fmt!r}")
    suffix = output.suffix.lower().lstrip(".") if output is not None else ""
    if output is not None and suffix and suffix not in IMAGE_FORMATS and fmt is None:
        raise HBenchError(f"cannot write {output}: figures are .pdf, .png or .svg (or name one with --format)")
    if fmt is not None and suffix in IMAGE_FORMATS and suffix != fmt.lower():
        raise HBenchError(f"--format {fmt} contradicts the output name {output}")
    chosen = (fmt or (suffix if suffix in IMAGE_FORMATS else "png")).lower()
    return (output if output is not None else Path(f"{default_stem}.{chosen}")), chosen


# No timestamps or software strings in the file: the same figure gives the same bytes.
_METADATA = {"svg": {"Date": None, "Creator": None}, "pdf": {"CreationDate": None, "Creator": None, "Producer": None},
             "png": {"Software": None}}


def save_figure(figure: Figure, output: Path, fmt: str, dpi: int = 150) -> Path:
    """Write the figure atomically (a reader never sees half an image) at its own size, and return the path.

    A size too small for the labels and legend is refused: matplotlib would only warn and draw collapsed axes.
    """
    with atomic_path(output) as tmp, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        figure.savefig(tmp, format=fmt, dpi=dpi, metadata=_METADATA[fmt])
        if any("constrained_layout not applied" in str(w.message) for w in caught):
            width, height = figure.get_size_inches()
            raise HBenchError(f"a {width:.3g} × {height:.3g} in figure has no room left for its axes after labels and "
                              "legend: give a larger --width/--height or a smaller --font-size")
    return output


def render_figure(draw: Callable[[FigureStyle], Figure], look: FigureStyle, output: Path, fmt: str,
                  dpi: int = 150) -> Path:
    """Draw and save one figure inside its style."""
    with figure_context(look):
        return save_figure(draw(look), output, fmt, dpi)


def _colours(n: int) -> list:
    """The style's colour cycle when it has enough colours, else tab20."""
    from matplotlib import colormaps, rcParams

    cycle = rcParams["axes.prop_cycle"].by_key().get("color", [])
    if n <= len(cycle):
        return list(cycle[:n])
    cmap = colormaps["tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


_CHAR_EM = 0.52  # average width of a DejaVu Sans character, in ems
_SMALL = 0.833  # matplotlib's "small" relative to the base font size


def _points(scale: float = 1.0) -> float:
    from matplotlib import rcParams

    return float(rcParams["font.size"]) * scale


def _wrap(text: str, inches: float, scale: float = 1.0) -> str:
    """`text` broken into lines that fit `inches` (less a margin for tick labels) at font size × `scale`."""
    chars = max(12, int((inches - 0.8) * 72 / (_CHAR_EM * _points(scale))))
    return "\n".join(textwrap.fill(part, chars) for part in text.split("\n"))


def _typeset(label: str) -> str:
    """Settings in a legend label by their symbols: `hyperml (gamma=0.2)` → `hyperml (γ=0.2)`."""
    return re.sub(r"\b([a-z][a-z_]*)=", lambda m: f"{setting_name(m.group(1))}=", label)


def _legend_below(figure: Figure, handles: list, title: str | None = None) -> int:
    """The legend outside the axes, under them, in as many columns as the width allows (labels wrapped
    when even one column is too narrow); returns its number of text lines, for the figure's height."""
    width = figure.get_figwidth()
    char = _CHAR_EM * _points(_SMALL) / 72
    labels = [h.get_label() for h in handles]
    longest = max((len(line) for label in labels for line in label.split("\n")), default=10)
    columns = max(1, min(len(labels), int((width - 0.2) / ((longest + 5) * char))))
    if columns == 1:
        fill = max(12, int((width - 0.2) / char) - 5)
        labels = ["\n".join(textwrap.fill(line, fill) for line in label.split("\n")) for label in labels]
    title = _wrap(title, width, _SMALL) if title else None
    figure.legend(handles, labels, loc="outside lower center", ncols=columns, fontsize="small", title=title,
                  title_fontsize="small")
    rows = [labels[start:start + columns] for start in range(0, len(labels), columns)]
    return sum(max(label.count("\n") + 1 for label in row) for row in rows) + (title.count("\n") + 1 if title else 0)


def _fit_height(figure: Figure, look: FigureStyle, axes_height: float, text_lines: int, rows: int = 1) -> Figure:
    """Unless a height was asked for: the axes' height plus room for the legend's lines of small text. An
    asked-for height that leaves under an inch per row of axes is refused (the legend would cover them)."""
    legend = 0.25 + text_lines * _points(_SMALL) * 1.45 / 72
    if look.height is None:
        figure.set_size_inches(figure.get_figwidth(), axes_height + legend)
    elif look.height < legend + rows * (1.0 + 3 * _points() / 72):
        raise HBenchError(f"--height {look.height:g} leaves no room for the axes beside the legend and labels "
                          f"(about {legend + rows * (1.0 + 3 * _points() / 72):.1f} in needed at this width and font "
                          "size); give a larger --height or --width, or a smaller --font-size")
    return figure


def _two_panels(look: FigureStyle, aspect: float) -> tuple[Figure, np.ndarray, float]:
    """Two panels side by side, or stacked when narrow; each panel `aspect` × its width tall (plus titles
    and labels). Returns the figure, its axes and the height they take (without a legend)."""
    rows, cols = (2, 1) if look.stacked else (1, 2)
    width = look.width or DEFAULT_WIDTH
    axes_height = rows * (aspect * width / cols + 0.75)
    figure = Figure(figsize=(width, look.height or axes_height), layout="constrained")
    return figure, figure.subplots(rows, cols).ravel(), axes_height


# --- sweep ---------------------------------------------------------------------------------------------------


def sweep_figure(sweep: Sweep, log_x: bool, look: FigureStyle = FigureStyle()) -> Figure:
    """Mean line per group and stage (valid solid, test dashed) with its band shaded; legend below."""
    width = look.width or DEFAULT_WIDTH
    axes_height = 0.55 * width + 0.8
    figure = Figure(figsize=(width, look.height or axes_height), layout="constrained")
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
    metric = metric_name(sweep.metric)
    ax.set_xlabel(setting_name(sweep.axis))
    ax.set_ylabel(metric + (f" ({_STAGE_NAME[sweep.stages[0]]})" if len(sweep.stages) == 1 else ""))
    ax.grid(alpha=0.3)

    # Every stage counts the same runs: the first stage's points hold each line's diverged runs once.
    first = sweep.points[sweep.points["stage"] == sweep.stages[0]]
    diverged = first.groupby("line")["n_diverged"].sum()
    handles = [Line2D([], [], color=colours[label], marker="o", markersize=4,
                      label=_typeset(label) + (f" ({diverged[label]} diverged, not averaged)"
                                               if diverged.get(label, 0) else ""))
               for label in sweep.lines]
    if len(sweep.stages) > 1:
        handles += [Line2D([], [], color="black", linestyle=_STAGE_STYLE[s], label=_STAGE_NAME[s]) for s in sweep.stages]
    seeds = f"{first['n'].min()}–{first['n'].max()}" if first["n"].min() != first["n"].max() else str(first["n"].max())
    band = f"; band: {BAND_LEGEND[sweep.band]}" if sweep.band != "none" else ""
    handles.append(Patch(color="grey", alpha=0.3 if band else 0.0, label=f"line: mean over {seeds} seeds{band}"))
    ax.set_title(_wrap(f"{metric} against {setting_name(sweep.axis)} · {sweep.title}", width), fontsize="medium")
    return _fit_height(figure, look, axes_height, _legend_below(figure, handles))


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
                 correlation: Correlation, title: str, c: float, look: FigureStyle = FigureStyle()) -> Figure:
    """Left (top when narrow): item distance from the origin against training popularity (log x) with a
    binned median. Right: distributions of user and item distances from the origin (step histograms)."""
    figure, (left, right), axes_height = _two_panels(look, 0.75)
    panel = figure.get_figwidth() / (1 if look.stacked else 2)
    item_colour, median_colour = _colours(2)
    seen = popularity > 0  # log axis: items without training interactions cannot be placed
    left.scatter(popularity[seen], item_distance[seen], s=6, alpha=0.4, linewidths=0, color=item_colour)
    centres, medians = _binned_median(popularity[seen].astype(float), item_distance[seen])
    left.plot(centres, medians, color=median_colour, marker="o", markersize=3)
    left.set_xscale("log")
    left.set_xlabel("training interactions of the item")
    left.set_ylabel(f"$d_c(0, i)$, c = {c:g}")
    unseen = int((~seen).sum())
    left.set_title(_wrap(correlation_text(correlation) + (f"\n{unseen} items with no training interaction not drawn"
                                                          if unseen else ""), panel, 0.9), fontsize="small")
    left.grid(alpha=0.3)

    both = np.concatenate([user_distance, item_distance])
    bins = np.linspace(both.min(), both.max(), 50) if both.max() > both.min() else 10
    right.hist(user_distance, bins=bins, density=True, histtype="step", linewidth=1.5, color="0.45")
    right.hist(item_distance, bins=bins, density=True, histtype="step", linewidth=1.5, color=item_colour)
    right.set_xlabel(f"$d_c(0, \\cdot)$, c = {c:g}")
    right.set_ylabel("density")
    right.set_title(_wrap("users and items by distance from the origin", panel, 0.9), fontsize="small")
    right.grid(alpha=0.3)
    handles = [Line2D([], [], marker="o", linestyle="none", markersize=4, alpha=0.6, color=item_colour,
                      label=f"items (n = {len(item_distance)})"),
               Line2D([], [], marker="o", markersize=3, color=median_colour, label="median per popularity bin"),
               Line2D([], [], color="0.45", linewidth=1.5, label=f"users (n = {len(user_distance)})")]
    figure.suptitle(_wrap(title, figure.get_figwidth()), fontsize="medium")
    return _fit_height(figure, look, axes_height + 0.3, _legend_below(figure, handles), 2 if look.stacked else 1)


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
                title: str = "", note: str = "", look: FigureStyle = FigureStyle()) -> Figure:
    """Items (by popularity, or by label) and users (grey crosses, on top) on the unit disk, boundary drawn.

    Trained points often stay close to the origin; when every point lies within half the radius a second
    panel shows the same points magnified to their extent (the unit circle is then out of view).
    """
    extent = float(np.linalg.norm(np.concatenate([users.coords, items.coords]), axis=1).max(initial=0.0))
    zoom = 0.0 < extent < ZOOM_BELOW
    # The magnified disk stays beside the whole one even when narrow: stacked, two disks are too tall a column.
    width = look.width or DEFAULT_WIDTH
    panels = 2 if zoom else 1
    panel = width / panels
    axes_height = min(panel, 6.5) + 0.8
    figure = Figure(figsize=(width, look.height or axes_height), layout="constrained")
    axes = figure.subplots(1, panels, squeeze=False)[0]
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
        axes[1].set_title(_wrap(f"magnified: every point within radius {extent:.3g} of the unit disk", panel, 0.9),
                          fontsize="small")
    users_handle = Line2D([], [], marker="x", linestyle="none", color="0.25", label=user_label)
    if names is not None:
        handles = [Line2D([], [], marker="o", linestyle="none", color=colour, label=name)
                   for name, colour in zip(names, _colours(len(names)), strict=True)]
        lines = _legend_below(figure, [*handles, users_handle], title=item_label)
    else:
        label = _wrap(f"{item_label}: log10(1 + training interactions)", width)
        lines = 2 + label.count("\n")
        figure.colorbar(points, ax=list(axes), shrink=0.8, location="bottom", aspect=30, label=label)
        axes[0].legend(handles=[users_handle], fontsize="x-small", loc="upper left", bbox_to_anchor=(0.0, 1.0),
                       frameon=False)
    figure.suptitle(_wrap(title, figure.get_figwidth()), fontsize="medium")
    if note:
        axes[-1].set_xlabel(_wrap(note, panel, 0.7), fontsize="x-small")
    note_lines = axes[-1].get_xlabel().count("\n") + 1 if note else 0
    title_lines = figure.get_suptitle().count("\n") + 1
    return _fit_height(figure, look, axes_height + 0.2 * title_lines + 0.14 * note_lines, lines)


# --- training ------------------------------------------------------------------------------------------------


def _band_line(ax, band, colour, linestyle: str, marker: str | None = None) -> None:
    ax.plot(band.epochs, band.mean, color=colour, linestyle=linestyle, marker=marker, markersize=3, linewidth=1.3)
    if (band.n > 1).any():
        ax.fill_between(band.epochs, band.low, band.high, color=colour, alpha=0.18, linewidth=0)


def _configuration_styles(groups: list[ConfigurationCurves]) -> dict[str, tuple]:
    """(colour, line style, marker) per configuration: a colour per model; the configurations of one model
    take its colour with different line styles, then markers."""
    models = list(dict.fromkeys(g.model for g in groups))
    colours = dict(zip(models, _colours(len(models)), strict=True))
    seen: dict[str, int] = {}
    styles = {}
    for group in groups:
        index = seen.get(group.model, 0)
        seen[group.model] = index + 1
        styles[group.configuration] = (colours[group.model], *_CONFIGURATION_STYLES[index % len(_CONFIGURATION_STYLES)])
    return styles


def training_figure(curves: list[TrainingCurve], metric: str, look: FigureStyle = FigureStyle()) -> Figure:
    """Left (top when narrow): mean training loss per epoch. Right: the validation metric. One line per
    configuration: mean over its seeds, band from the lowest to the highest seed; a colour per model; each
    seed's checkpoint epoch (its best validation) marked ▲."""
    groups = group_by_configuration(curves)
    styles = _configuration_styles(groups)
    figure, (left, right), axes_height = _two_panels(look, 0.72)
    for group in groups:
        colour, linestyle, marker = styles[group.configuration]
        _band_line(left, group.loss, colour, linestyle, marker)
        if len(group.valid.epochs):
            _band_line(right, group.valid, colour, linestyle, marker or "o")
        for run in group.runs:
            if len(run.valid) and run.best_epoch in set(run.valid_epochs.tolist()):
                best = run.valid[run.valid_epochs.tolist().index(run.best_epoch)]
                right.plot([run.best_epoch], [best], marker="^", markersize=5, color=colour, linestyle="none",
                           markeredgecolor="white", markeredgewidth=0.5)
    name = metric_name(metric)
    left.set_xlabel("epoch")
    left.set_ylabel("training loss")
    panel = figure.get_figwidth() / (1 if look.stacked else 2)
    left.set_title(_wrap("training loss (mean over batches)", panel, _SMALL), fontsize="small")
    right.set_xlabel("epoch")
    right.set_ylabel(f"validation {name}")
    right.set_title(_wrap(f"validation {name} (▲ each seed's checkpoint)", panel, _SMALL), fontsize="small")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    if not any(len(g.valid.epochs) for g in groups):
        right.text(0.5, 0.5, "no validation logged yet", transform=right.transAxes, ha="center", va="center")
    handles = []
    shared_settings = curves[0].shared_settings
    for group in groups:
        colour, linestyle, marker = styles[group.configuration]
        unfinished = {k: v for k, v in group.statuses.items() if k != "completed"}
        status = "".join(f", {v} {k}" for k, v in sorted(unfinished.items()))
        seeds = f"{len(group.runs)} seed{'s' if len(group.runs) > 1 else ''}"
        handles.append(Line2D([], [], color=colour, linestyle=linestyle, marker=marker, markersize=3,
                              label=f"{_typeset(group.configuration)} ({seeds}{status})"))
    if any(len(g.runs) > 1 for g in groups):
        handles.append(Patch(color="grey", alpha=0.3, label="line: mean over seeds; band: min–max"))
    shared = _typeset(" ".join(shared_settings)) if shared_settings else None
    return _fit_height(figure, look, axes_height, _legend_below(figure, handles, shared and f"all runs: {shared}"),
                       2 if look.stacked else 1)
