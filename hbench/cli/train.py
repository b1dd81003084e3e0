"""`hbench train MODEL ...` and `hbench models [MODEL]`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hbench.cli.common import Home, Quiet, feedback
from hbench.config import TrainConfig
from hbench.errors import HBenchError

stdout = Console()
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


def register(app: typer.Typer) -> None:
    app.command(
        "train",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        epilog="Model options (e.g. --c 1.0 --gamma 0.2 for hyperml) follow the common ones; `hbench models MODEL` lists them.",
    )(train)
    app.command("models")(models)


def parse_model_args(args: list[str]) -> dict[str, str]:
    """`--name value`, `--name=value`, or a bare `--flag` (true) into {name: value}."""
    options: dict[str, str] = {}
    i = 0
    while i < len(args):
        token = args[i]
        if not token.startswith("--") or len(token) == 2:
            raise HBenchError(f"unexpected argument {token!r} (model options look like --name value)")
        if "=" in token:
            key, value = token[2:].split("=", 1)
            i += 1
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            key, value = token[2:], args[i + 1]
            i += 2
        else:
            key, value = token[2:], "true"
            i += 1
        options[key] = value
    return options


def train(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="A registered model (see `hbench models`).")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Prepared dataset name or directory.")],
    protocol: Annotated[str | None, typer.Option(help="loo | full | auc (default: the dataset's).")] = None,
    dim: Annotated[int, typer.Option(help="Embedding dimension.")] = _DEFAULTS["dim"],
    lr: Annotated[float | None, typer.Option(help="Learning rate (default: the model's).")] = None,
    batch_size: Annotated[int, typer.Option(help="Training triples per step.")] = _DEFAULTS["batch_size"],
    epochs: Annotated[int, typer.Option(help="Maximum epochs.")] = _DEFAULTS["epochs"],
    patience: Annotated[int, typer.Option(help="Stop after this many validations without improvement.")] = _DEFAULTS["patience"],
    eval_every: Annotated[int, typer.Option(help="Validate every N epochs.")] = _DEFAULTS["eval_every"],
    negatives: Annotated[int, typer.Option(help="Sampled negatives per positive in training.")] = _DEFAULTS["negatives"],
    seed: Annotated[list[int] | None, typer.Option(help="Seed of initialisation and sampling; repeat for several runs.")] = None,
    metric: Annotated[str | None, typer.Option(help="Validation metric for early stopping (default: the protocol's).")] = None,
    k: Annotated[list[int] | None, typer.Option("--k", help="Cut-offs K of the ranking metrics; repeatable (default 10, 20).")] = None,
    optimizer: Annotated[str, typer.Option(help="sparse: lazy Riemannian Adam on the embedding rows a batch touches; dense: every row every step.")] = _DEFAULTS["optimizer"],
    features: Annotated[str | None, typer.Option(help="Image encoder whose `hbench features` output visual models use (default: the only one extracted).")] = None,
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu, cuda, cuda:N.")] = "auto",
    out: Annotated[Path, typer.Option(help="Results root; one run directory per run below it.")] = Path("results"),
    force: Annotated[bool, typer.Option("--force", help="Train again even if this exact run has finished.")] = False,
    home: Home = None,
    quiet: Quiet = False,
) -> None:
    """Train a model on a prepared dataset; write config, history, metrics, per-user metrics and checkpoint."""
    # torch is imported only by the commands that need it, so that `hbench prepare/info` start fast.
    from hbench.models.registry import get_model_class, parse_options
    from hbench.training.trainer import train as train_model

    model_options = parse_model_args(list(ctx.args))
    parse_options(get_model_class(model), model_options)  # fail fast on a bad model or option, before any data loads
    fb = feedback(quiet)
    failures = 0
    for s in seed or [0]:
        config = TrainConfig(dataset=dataset, protocol=protocol, dim=dim, lr=lr, batch_size=batch_size, epochs=epochs,
                             patience=patience, eval_every=eval_every, negatives=negatives, seed=s,
                             ks=tuple(k) if k else _DEFAULTS["ks"], metric=metric, optimizer=optimizer, features=features,
                             device=device)
        result = train_model(model, config, model_options, out=out, home=home, force=force, feedback=fb)
        if result.status != "completed":
            failures += 1
            typer.echo(f"error: {model} seed {s} diverged: {result.metrics['message']} ({result.path})", err=True)
            continue
        test = result.metrics["test"]
        shown = "  ".join(f"{name} {value:.4f}" for name, value in test.items())
        typer.echo(f"{result.path}\t{shown}")
    if failures:
        raise typer.Exit(3)


def models(name: Annotated[str | None, typer.Argument(help="Show this model's options.")] = None) -> None:
    """List the registered models, or one model's options with defaults."""
    from hbench.models.registry import available_models, get_model_class, option_help

    if name is None:
        table = Table("model", "description", "default lr")
        for model_name, cls in sorted(available_models().items()):
            table.add_row(model_name, cls.summary, f"{cls.default_lr:g}" if cls.trainable else "—")
        stdout.print(table)
        return
    cls = get_model_class(name)
    table = Table("option", "type", "default", "meaning", title=f"{name}: {cls.summary}")
    for flag, type_name, default, help_text in option_help(cls):
        table.add_row(flag, type_name, str(default), help_text)
    stdout.print(table)
