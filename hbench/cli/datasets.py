"""`hbench datasets`, `hbench prepare`, `hbench info`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from hbench.cli.common import Command, Home, Quiet, feedback, print_table
from hbench.errors import HBenchError
from hbench.protocols import PROTOCOLS

if TYPE_CHECKING:
    from hbench.datasets.hyperbolicity import Hyperbolicity
    from hbench.datasets.store import PreparedDataset

# The commands import the dataset modules (numpy, pandas, scipy, numba) when they run, so that `hbench --help`
# and a mistyped flag do not load them. The defaults shown in `info --help` are therefore copies of
# hbench.datasets.hyperbolicity's DEFAULT_SAMPLES and DEFAULT_NODES (tests/test_startup.py checks they agree).
DEFAULT_SAMPLES = 100_000
DEFAULT_NODES = 500


def register(app: typer.Typer) -> None:
    app.command("datasets", cls=Command)(datasets)
    app.command("prepare", cls=Command)(prepare)
    app.command("info", cls=Command)(info)


def datasets(home: Home = None) -> None:
    """List the registered datasets, their defaults and whether they are prepared."""
    from hbench.datasets.catalog import list_datasets
    from hbench.paths import prepared_dir

    rows = []
    for spec in list_datasets():
        pub = spec.published
        published = f"{pub['users']:,}/{pub['items']:,}/{pub['interactions']:,}" if pub else ""
        ready = "yes" if (prepared_dir(spec.name, home) / "manifest.json").is_file() else ""
        download = ", ".join(f.size_hint for f in spec.raw_files if f.size_hint)
        rows.append((spec.name, spec.title, spec.defaults.split, spec.defaults.protocol, published, download, ready))
    print_table(("name", "title", "split", "protocol", "published users/items/interactions", "download", "prepared"),
                rows)


def prepare(
    name: Annotated[str, typer.Argument(help="A registered dataset (see `hbench datasets`) or `custom`.")],
    source: Annotated[list[Path] | None, typer.Option("--source", help="Local directory holding the raw files (offline mirror); repeatable. Also $HBENCH_MIRROR.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Prepare again even if an identical preparation exists; verify the raw files anew.")] = False,
    accept_statistics: Annotated[bool, typer.Option("--accept-statistics", help="Accept raw files whose statistics differ from the published ones (a source that changed on purpose).")] = False,
    split: Annotated[str | None, typer.Option(help="loo | ratio | fixed (default: the dataset's).")] = None,
    order: Annotated[str | None, typer.Option(help="temporal | random.")] = None,
    ratios: Annotated[str | None, typer.Option(help="train,valid,test fractions for --split ratio, e.g. 0.8,0.1,0.1.")] = None,
    negatives: Annotated[int | None, typer.Option(help="Sampled candidates per user for sampled protocols (0: none).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the split and the sampled candidates.")] = None,
    user_k: Annotated[int | None, typer.Option("--user-k", help="Iterative k-core: minimum interactions per user.")] = None,
    item_k: Annotated[int | None, typer.Option("--item-k", help="Iterative k-core: minimum interactions per item.")] = None,
    threshold: Annotated[float | None, typer.Option(help="Implicit feedback: keep ratings >= threshold.")] = None,
    protocol: Annotated[str | None, typer.Option(help="Default evaluation protocol recorded for this dataset: " + " | ".join(PROTOCOLS) + ".")] = None,
    interactions: Annotated[Path | None, typer.Option(help="custom: one CSV/TSV/Parquet file (user, item[, rating][, timestamp]) for hbench to split.")] = None,
    train: Annotated[Path | None, typer.Option(help="custom: training file of a split kept as given.")] = None,
    valid: Annotated[Path | None, typer.Option(help="custom: validation file of a split kept as given.")] = None,
    test: Annotated[Path | None, typer.Option(help="custom: test file of a split kept as given.")] = None,
    as_name: Annotated[str | None, typer.Option("--name", help="custom: the name to prepare it under (default: custom).")] = None,
    columns: Annotated[str | None, typer.Option("--columns", help="custom: the columns of files without a header row, in order, e.g. user,item,rating,timestamp (- skips one). A file whose first row is all numbers is read as user,item[,rating[,timestamp]] without it.", show_default=False)] = None,
    sep: Annotated[str | None, typer.Option("--sep", help="custom: the separator of text files (tab, space, ';', '::'...; default: by extension, else detected).", show_default=False)] = None,
    images: Annotated[Path | None, typer.Option("--images", help="custom: folder of item images named <item id>.jpg|jpeg|png|webp.")] = None,
    image_column: Annotated[str | None, typer.Option("--image-column", help="custom: column of the data file holding each item's image path (relative to that file's folder).")] = None,
    home: Home = None,
    quiet: Quiet = False,
) -> None:
    """Download (or take from --source), verify, filter and split a dataset."""
    from hbench.datasets.custom import CustomFiles
    from hbench.datasets.prepare import prepare_dataset

    overrides: dict[str, Any] = {
        key: value for key, value in {
            "split": split, "order": order, "negatives": negatives, "seed": seed, "user_k": user_k,
            "item_k": item_k, "implicit_threshold": threshold, "protocol": protocol,
        }.items() if value is not None
    }
    if ratios is not None:
        try:
            overrides["ratios"] = tuple(float(x) for x in ratios.split(","))
        except ValueError:
            raise HBenchError(f"--ratios expects three comma-separated fractions, got {ratios!r}") from None
    custom = None
    if name == "custom":
        custom = CustomFiles(name=as_name or "custom", interactions=interactions, train=train, valid=valid, test=test,
                             sep=sep, columns=None if columns is None else tuple(c.strip() for c in columns.split(",")),
                             images=images, image_column=image_column)
    elif any(v is not None for v in (interactions, train, valid, test, as_name, columns, sep, images, image_column)):
        raise HBenchError("--interactions/--train/--valid/--test/--name/--columns/--sep/--images/--image-column are "
                          "for `hbench prepare custom` only")
    ds = prepare_dataset(custom.name if custom else name, overrides=overrides, sources=source, home=home, force=force, feedback=feedback(quiet), custom=custom,
                         accept_statistics=accept_statistics)
    _print_statistics(ds)


def info(
    dataset: Annotated[str, typer.Argument(help="A prepared dataset's name or directory.")],
    hyperbolicity: Annotated[bool, typer.Option("--hyperbolicity", help="Also estimate the Gromov δ of the training "
                                                "user-item graph (four-point condition on sampled quadruples).")] = False,
    samples: Annotated[int, typer.Option(help="--hyperbolicity: quadruples to sample.")] = DEFAULT_SAMPLES,
    nodes: Annotated[int, typer.Option(help="--hyperbolicity: nodes drawn from the largest connected component; "
                                            "quadruples are drawn among them (one BFS each).")] = DEFAULT_NODES,
    seed: Annotated[int, typer.Option(help="--hyperbolicity: seed of the node and quadruple samples.")] = 0,
    home: Home = None,
) -> None:
    """Statistics of a prepared dataset: sizes, density, degree quantiles, popularity Gini, split sizes;
    with --hyperbolicity, how tree-like its training graph is (δ and 2δ/diameter)."""
    from hbench.datasets.hyperbolicity import estimate_hyperbolicity
    from hbench.datasets.load import load_dataset

    ds = load_dataset(dataset, home)
    _print_statistics(ds)
    if hyperbolicity:
        result = estimate_hyperbolicity(ds.train, ds.n_users, ds.n_items, samples=samples, nodes=nodes, seed=seed)
        print_table(("statistic", "value"), hyperbolicity_rows(result),
                    title=f"Gromov δ of the training user-item graph of {ds.name}")


def _print_statistics(ds: PreparedDataset) -> None:
    """Our statistics, with the source's published figure beside each one it publishes."""
    from hbench.config import flat_items
    from hbench.datasets.prepare import dataset_statistics

    published = ds.manifest.get("spec", {}).get("published", {})
    rows = []
    for key, value in flat_items(dataset_statistics(ds)):
        reference = published.get(key)
        mark = "" if reference is None else f"{_fmt(reference)} {'✓' if reference == value else '✗'}"
        rows.append((key, _fmt(value), mark))
    print_table(("statistic", "value", "published"), rows, title=f"{ds.name}  ({ds.path})")


def hyperbolicity_rows(h: Hyperbolicity) -> list[tuple[str, str]]:
    """What `info --hyperbolicity` prints: the estimate, its interval and what it was computed on."""
    level = f"{h.confidence:.0%}"
    diameter = f"{h.diameter}" + ("" if h.diameter_exact else " (lower bound: largest eccentricity of the sampled nodes)")
    sampled = ("every quadruple of the sampled nodes" if h.exhaustive
               else f"{h.quadruples:,} sampled quadruples; with {level} confidence fewer than {100 * h.exceed_bound:.2g}% of "
                    "the sampled nodes' quadruples exceed it")
    return [
        ("delta", f"{h.delta:g} (max over {sampled})"),
        ("2*delta/diameter", f"{h.relative:.3f} (0: a tree)"),
        ("diameter", diameter),
        ("mean delta", f"{h.mean_delta:.4f} ({level} bootstrap interval {h.mean_interval[0]:.4f}–{h.mean_interval[1]:.4f})"),
        ("delta distribution", ", ".join(f"{v:g}: {c / h.quadruples:.1%}" for v, c in h.delta_counts.items())),
        ("graph", f"largest connected component only: {h.component_nodes:,} of {h.graph_nodes:,} nodes "
                  f"({h.component_users:,} users, {h.component_items:,} items; {h.components:,} component{'s' if h.components > 1 else ''} in all)"),
        ("sample", f"{h.pool:,} nodes (one BFS each), {h.quadruples:,} quadruples, seed {h.seed}"),
    ]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
