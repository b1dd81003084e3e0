"""`hbench features DATASET`: pooled image features of every item, cached under the prepared dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hbench.cli.common import Command, Home, Quiet, feedback


def register(app: typer.Typer) -> None:
    app.command("features", cls=Command)(features)


def features(
    dataset: Annotated[str, typer.Argument(help="A prepared dataset's name or directory (with item images).")],
    encoder: Annotated[str, typer.Option(help="efficientnet_lite0 (weights ship with a package: works offline), inception_v3 (the paper's), resnet50, or timm:<name>.")] = "efficientnet_lite0",
    weights: Annotated[Path | None, typer.Option(help="Local weights file (state dict; read with weights_only=True). Needed offline for inception_v3/resnet50 unless in the torch hub cache, and for timm:<name>.")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 64,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N | mps.")] = "auto",
    workers: Annotated[int | None, typer.Option(help="Image-decoding processes (default: cores - 1, at most 8).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Extract again even if identical features exist.")] = False,
    home: Home = None,
    quiet: Quiet = False,
) -> None:
    """Encode every item image with a pretrained network; prints the artifact directory and its shape.

    Resumes an interrupted extraction; a second run with the same images, encoder, weights and transform
    does nothing.
    """
    from hbench.datasets.load import load_dataset
    from hbench.features.dataset import dataset_features

    ds = load_dataset(dataset, home)
    artifact = dataset_features(
        ds, encoder, weights=weights, batch_size=batch_size, device=device, workers=workers, force=force,
        feedback=feedback(quiet),
    )
    n_items, dim = artifact.shape
    print(f"{artifact.path}\t{n_items}x{dim}")
