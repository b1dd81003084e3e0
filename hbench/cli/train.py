"""`hbench train MODEL ...` and `hbench models [MODEL]`."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from pathlib import Path
from typing import Annotated

import typer

from hbench.cli.common import (
    Command,
    Home,
    LogEvery,
    Quiet,
    TrackerKind,
    TrackerUri,
    feedback,
    parse_int_list,
    print_table,
    trackers,
)
from hbench.config import TrainConfig
from hbench.errors import HBenchError
from hbench.protocols import PROTOCOLS

_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


def register(app: typer.Typer) -> None:
    app.command(
        "train",
        cls=Command,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        epilog=("Model options (e.g. --c 1.0 --gamma 0.2 for hyperml, --no-attention for acf models) follow the "
                "common ones; boolean options are flags, --name or --no-name; `hbench models MODEL` lists them."),
    )(train)
    app.command("models", cls=Command)(models)


def model_switches(model: str) -> set[str]:
    """The model's boolean options (names with dashes): on the command line they are `--name` / `--no-name`."""
    import typing

    from hbench.models.registry import get_model_class

    options = get_model_class(model).Options
    return {name.replace("_", "-") for name, hint in typing.get_type_hints(options).items() if hint is bool}


def parse_model_args(args: list[str], switches: Collection[str] = ()) -> dict[str, str]:
    """`--name value` or `--name=value` into {name: value}.

    A boolean option (its dashed name in `switches`) is a flag: `--name` is true and `--no-name` false; it
    never takes the next argument as its value. `--name=true,false` (a list: a sweep's grid axis) is kept.
    """
    switches = set(switches)
    options: dict[str, str] = {}
    i = 0
    while i < len(args):
        token = args[i]
        if not token.startswith("--") or len(token) == 2:
            previous = args[i - 1][2:] if i else ""
            if previous in switches or previous.removeprefix("no-") in switches:
                name = previous.removeprefix("no-")
                raise HBenchError(f"--{name} is a flag and takes no value: write --{name} or --no-{name}, "
                                  f"not --{previous} {token}")
            raise HBenchError(f"unexpected argument {token!r} (model options look like --name value)")
        i += 1
        if "=" in token:
            key, value = token[2:].split("=", 1)
        elif token[2:] in switches:
            key, value = token[2:], "true"
        elif token[2:].startswith("no-") and token[5:] in switches:
            key, value = token[5:], "false"
        elif i < len(args) and not args[i].startswith("--"):
            key, value = token[2:], args[i]
            i += 1
        else:
            raise HBenchError(f"{token} needs a value (--name value)")
        options[key] = value
    return options


def command_flags(ctx: typer.Context) -> set[str]:
    """The long flags a command declares itself, without their dashes (what a mistyped extra flag may have meant)."""
    return {opt[2:] for param in ctx.command.params for opt in [*param.opts, *param.secondary_opts]
            if opt.startswith("--")}


def flag_hint(name: str, candidates: Collection[str]) -> str | None:
    """`did you mean --epochs?` for a mistyped flag `name` (dashed, without its dashes), None when no candidate
    looks like it."""
    from hbench.errors import closest_names

    close = closest_names(name, {c.replace("_", "-") for c in candidates}, n=1)
    return f"did you mean --{close[0]}?" if close else None


def _refuse_unknown_options(ctx: typer.Context, model: str, given: Collection[str]) -> None:
    """An extra flag that is no option of `model`, refused with what it probably meant: the seed flag that
    sweep and tune spell `--seeds`, or a close name among the model's options and train's own flags (a model
    without a close one is left to `parse_options`, which lists the model's options)."""
    from hbench.models.registry import get_model_class

    declared = {name.replace("_", "-") for name in get_model_class(model).Options.__dataclass_fields__}
    for key in given:
        name = key.replace("_", "-")
        if name in declared:
            continue
        if name == "seeds":
            hint: str | None = "did you mean --seed? train takes a list of seeds: --seed 0,1,2"
        else:
            hint = flag_hint(name, declared | command_flags(ctx))
        if hint is not None:
            raise HBenchError(f"model {model!r} has no option --{name} ({hint})")


def train(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="A registered model (see `hbench models`).")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Prepared dataset name or directory.")],
    protocol: Annotated[str | None, typer.Option(help=" | ".join(PROTOCOLS) + " (default: the dataset's).")] = None,
    dim: Annotated[int, typer.Option(help="Embedding dimension.")] = _DEFAULTS["dim"],
    lr: Annotated[float | None, typer.Option(help="Learning rate (default: the model's).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Training triples per step (default: the model's).")] = None,
    epochs: Annotated[int, typer.Option(help="Maximum epochs.")] = _DEFAULTS["epochs"],
    patience: Annotated[int, typer.Option(help="Stop after this many validations without improvement.")] = _DEFAULTS["patience"],
    eval_every: Annotated[int, typer.Option(help="Validate every N epochs.")] = _DEFAULTS["eval_every"],
    negatives: Annotated[int, typer.Option(help="Sampled negatives per positive in training.")] = _DEFAULTS["negatives"],
    seed: Annotated[list[str] | None, typer.Option(help="Seed of initialisation and sampling; several runs: --seed 0 --seed 1 or --seed 0,1.", metavar="<int>")] = None,
    metric: Annotated[str | None, typer.Option(help="Validation metric for early stopping (default: the protocol's).")] = None,
    k: Annotated[list[str] | None, typer.Option("--k", help="Cut-offs K of the ranking metrics: --k 10 --k 20 or --k 10,20 (default 10, 20).", metavar="<int>")] = None,
    optimizer: Annotated[str, typer.Option(help="sparse: lazy Riemannian Adam on the embedding rows a batch touches; dense: every row every step.")] = _DEFAULTS["optimizer"],
    features: Annotated[str | None, typer.Option(help="Image encoder whose `hbench features` output visual models use (default: the only one extracted).")] = None,
    record_test_curve: Annotated[bool, typer.Option("--record-test-curve", help="Also evaluate test at every validation into the run's test_curve.jsonl, for `hbench table --protocol-gap`; nothing that selects reads it.")] = False,
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu, cuda, cuda:N.")] = "auto",
    out: Annotated[Path, typer.Option(help="Results root; one run directory per run below it.")] = Path("results"),
    force: Annotated[bool, typer.Option("--force", help="Train again even if this exact run has finished.")] = False,
    log_every: LogEvery = 1,
    tracker: TrackerKind = None,
    tracker_uri: TrackerUri = None,
    home: Home = None,
    quiet: Quiet = False,
) -> None:
    """Train a model on a prepared dataset; write config, history, metrics, per-user metrics and checkpoint."""
    # torch is imported only by the commands that need it, so that `hbench prepare/info` start fast.
    from hbench.models.registry import get_model_class, parse_options
    from hbench.training.trainer import train as train_model

    model_options = parse_model_args(list(ctx.args), model_switches(model))
    _refuse_unknown_options(ctx, model, model_options)
    parse_options(get_model_class(model), model_options)  # fail fast on a bad model or option, before any data loads
    seeds = parse_int_list(seed, "--seed") if seed else [0]
    ks = tuple(parse_int_list(k, "--k")) if k else _DEFAULTS["ks"]
    fb = feedback(quiet, log_every=log_every, trackers=trackers(tracker, tracker_uri, "hbench"))
    failures = 0
    for s in seeds:
        config = TrainConfig(dataset=dataset, protocol=protocol, dim=dim, lr=lr, batch_size=batch_size, epochs=epochs,
                             patience=patience, eval_every=eval_every, negatives=negatives, seed=s,
                             ks=ks, metric=metric, optimizer=optimizer, features=features,
                             record_test_curve=record_test_curve, device=device)
        result = train_model(model, config, model_options, out=out, home=home, force=force, feedback=fb)
        if result.status != "completed":
            failures += 1
            typer.echo(f"error: {model} seed {s} diverged: {result.metrics['message']} ({result.path})", err=True)
            continue
        from hbench.evaluation.metrics import metric_order

        test = result.metrics["test"]  # a finished run's, read back from JSON, is sorted by name: show the usual order
        shown = "  ".join(f"{name} {test[name]:.4f}" for name in sorted(test, key=metric_order))
        typer.echo(f"{result.path}\t{shown}")
    if failures:
        raise typer.Exit(3)


def models(name: Annotated[str | None, typer.Argument(help="Show this model's options.")] = None) -> None:
    """List the registered models, or one model's options with defaults."""
    from hbench.models.registry import available_models, get_model_class, option_help

    if name is None:
        rows = [(model_name, cls.summary, f"{cls.default_lr:g}" if cls.trainable else "—")
                for model_name, cls in sorted(available_models().items())]
        print_table(("model", "description", "default lr"), rows)
        return
    cls = get_model_class(name)
    switches = model_switches(name)
    rows = [(f"{flag}/--no-{flag[2:]}" if flag[2:] in switches else flag, "flag" if flag[2:] in switches else type_name,
             str(default), help_text) for flag, type_name, default, help_text in option_help(cls)]
    print_table(("option", "type", "default", "meaning"), rows, title=f"{name}: {cls.summary}")
