"""`hbench datasets`, `hbench prepare`, `hbench info`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hbench.cli.common import Home, Quiet, feedback
from hbench.datasets.prepare import CustomFiles, dataset_statistics, load_dataset, prepare_dataset
from hbench.datasets.registry import list_datasets
from hbench.datasets.store import PreparedDataset
from hbench.errors import HBenchError
from hbench.paths import prepared_dir

stdout = Console()


def register(app: typer.Typer) -> None:
    app.command("datasets")(datasets)
    app.command("prepare")(prepare)
    app.command("info")(info)


def datasets(home: Home = None) -> None:
    """List the registered datasets, their defaults and whether they are prepared."""
    table = Table("name", "title", "split", "protocol", "published users/items/interactions", "download", "prepared")
    for spec in list_datasets():
        pub = spec.published
        published = f"{pub['users']:,}/{pub['items']:,}/{pub['interactions']:,}" if pub else ""
        ready = "yes" if (prepared_dir(spec.name, home) / "manifest.json").is_file() else ""
        download = ", ".join(f.size_hint for f in spec.raw_files if f.size_hint)
        table.add_row(spec.name, spec.title, spec.defaults.split, spec.defaults.protocol, published, download, ready)
    stdout.print(table)


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
    protocol: Annotated[str | None, typer.Option(help="Default evaluation protocol recorded for this dataset: loo | full | auc.")] = None,
    interactions: Annotated[Path | None, typer.Option(help="custom: one CSV/TSV/Parquet file (user, item[, rating][, timestamp]) for hbench to split.")] = None,
    train: Annotated[Path | None, typer.Option(help="custom: training file of a split kept as given.")] = None,
    valid: Annotated[Path | None, typer.Option(help="custom: validation file of a split kept as given.")] = None,
    test: Annotated[Path | None, typer.Option(help="custom: test file of a split kept as given.")] = None,
    as_name: Annotated[str | None, typer.Option("--name", help="custom: the name to prepare it under (default: custom).")] = None,
    images: Annotated[Path | None, typer.Option("--images", help="custom: folder of item images named <item id>.jpg|jpeg|png|webp.")] = None,
    image_column: Annotated[str | None, typer.Option("--image-column", help="custom: column of the data file holding each item's image path (relative to that file's folder).")] = None,
    home: Home = None,
    quiet: Quiet = False,
) -> None:
    """Download (or take from --source), verify, filter and split a dataset."""
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
                             images=images, image_column=image_column)
    elif any(v is not None for v in (interactions, train, valid, test, as_name, images, image_column)):
        raise HBenchError(
            "--interactions/--train/--valid/--test/--name/--images/--image-column are for `hbench prepare custom` only"
        )
    ds = prepare_dataset(custom.name if custom else name, overrides=overrides, sources=source, home=home, force=force, feedback=feedback(quiet), custom=custom,
                        accept_statistics=accept_statistics)
    _print_statistics(ds)


def info(
    dataset: Annotated[str, typer.Argument(help="A prepared dataset's name or directory.")],
    home: Home = None,
) -> None:
    """Statistics of a prepared dataset: sizes, density, degree quantiles, popularity Gini, split sizes."""
    _print_statistics(load_dataset(dataset, home))


def _print_statistics(ds: PreparedDataset) -> None:
    """Our statistics, with the source's published figure beside each one it publishes."""
    published = ds.manifest.get("spec", {}).get("published", {})
    table = Table("statistic", "value", "published", title=f"{ds.name}  ({ds.path})")
    for key, value in _flatten(dataset_statistics(ds)):
        reference = published.get(key)
        mark = "" if reference is None else f"{_fmt(reference)} {'✓' if reference == value else '✗'}"
        table.add_row(key, _fmt(value), mark)
    stdout.print(table)


def _flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            rows += _flatten(value, f"{prefix}{key}.")
        else:
            rows.append((f"{prefix}{key}", value))
    return rows


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
