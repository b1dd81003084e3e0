"""`hbench sweep SPEC|MODEL ...` and `hbench ablate MODEL ...`."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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
    trackers,
)
from hbench.errors import HBenchError
from hbench.protocols import PROTOCOLS

if TYPE_CHECKING:
    from hbench.experiments import SweepSpec

# The commands import the pipeline when they run (inside them), so that `hbench --help` does not load torch.

_EXTRA = {"allow_extra_args": True, "ignore_unknown_options": True}

Out = Annotated[Path | None, typer.Option(help="Sweep directory (default: results/sweeps/<name>).", show_default=False)]
Executor = Annotated[str, typer.Option(help="sequential | processes | ray.")]
Jobs = Annotated[int, typer.Option(help="Cells at once in local worker processes (one GPU each when present).")]
Address = Annotated[str | None, typer.Option(help="Ray cluster address (default: start a local Ray instance).")]
CpusPerCell = Annotated[float, typer.Option(help="Ray: CPUs reserved by each cell.")]
GpusPerCell = Annotated[float | None, typer.Option(help="Ray: GPUs per cell (default: 1 with CUDA here, else 0).",
                                                   show_default=False)]
Ship = Annotated[bool, typer.Option("--ship-results", help="Ray without shared storage: workers send run files back.")]
Device = Annotated[str, typer.Option(help="auto (CUDA when present), cpu, cuda, cuda:N.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the plan (cells, finished, to run, estimated time) only.")]
Seeds = Annotated[list[str] | None, typer.Option(
    help="A count (5 = seeds 0..4) or a list: --seeds 0,1,2 or --seeds 0 --seeds 1; overrides a spec's seeds.",
    show_default=False, metavar="<int>")]


@dataclass(frozen=True)
class RunFlags:
    """Where a sweep's cells run and how it reports: the flags `sweep` and `ablate` share, declared once."""

    out: Out = None
    executor: Executor = "sequential"
    jobs: Jobs = 1
    address: Address = None
    cpus_per_cell: CpusPerCell = 1.0
    gpus_per_cell: GpusPerCell = None
    ship_results: Ship = False
    device: Device = "auto"
    dry_run: DryRun = False
    log_every: LogEvery = 1
    tracker: TrackerKind = None
    tracker_uri: TrackerUri = None
    home: Home = None
    quiet: Quiet = False


def with_run_flags(command: Callable[..., None]) -> Callable[..., None]:
    """`command(..., flags: RunFlags)` as a Typer command taking every `RunFlags` field as a flag of its own
    (after the command's own parameters)."""
    own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "flags"]
    hints = typing.get_type_hints(RunFlags, include_extras=True)
    shared = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[f.name])
              for f in fields(RunFlags)]

    @functools.wraps(command)
    def with_flags(*args: Any, **kwargs: Any) -> None:
        flags = RunFlags(**{f.name: kwargs.pop(f.name) for f in fields(RunFlags)})
        command(*args, flags=flags, **kwargs)

    with_flags.__signature__ = inspect.Signature([*own, *shared])  # type: ignore[attr-defined]
    with_flags.__annotations__ = {p.name: p.annotation for p in [*own, *shared]}
    return with_flags


def register(app: typer.Typer) -> None:
    app.command("sweep", cls=Command, context_settings=_EXTRA, epilog=(
        "Flag form: any other --name value is a model option or training setting; a comma list is a grid axis, "
        "e.g. hbench sweep hyperml --dataset amazon-sports --c 0.5,1,2 --gamma 0,0.2 --seeds 3"))(with_run_flags(sweep))
    app.command("ablate", cls=Command, context_settings=_EXTRA, epilog=(
        "Other --name value flags fix training settings for every variant, e.g. --epochs 20."))(with_run_flags(ablate))
    app.command("tune", cls=Command, context_settings=_EXTRA, epilog=(
        "Other --name value flags fix training settings for every trial, e.g. --epochs 30 --dim 50. "
        "Example: hbench tune -d amazon-sports --models bpr,cml,hyperml,lightgcn,hgcf --trials 20 --seeds 5"))(tune)


def _seeds(given: list[str] | None, default: int) -> Any:
    """One number is a count of seeds; several (repeated, or a comma list) are the seeds themselves."""
    if not given:
        return default
    values = parse_int_list(given, "--seeds", "a count or integers (0,1,2 or repeated)")
    if len(given) == 1 and "," not in given[0]:
        if values[0] < 1:  # `--seeds 0` read as "seed 0" would run no seed at all
            raise HBenchError(f"--seeds {values[0]} is a count of no seeds: --seeds 1 runs seed 0, --seeds 3 seeds "
                              "0, 1, 2; a list gives the seeds themselves (--seeds 0,1,2)")
        return values[0]
    return values


def _refuse_unknown_flags(ctx: typer.Context, keys: list[str], models: list[str], command: str) -> None:
    """An extra flag that is neither a training setting nor an option of any of `models`, refused with what it
    probably meant: `--seeds` for train's `--seed`, or a close name among the settings, options and the
    command's own flags. Without a close name the spec's own check reports it (it lists the known ones)."""
    from hbench.cli.train import command_flags, flag_hint
    from hbench.experiments.spec import TRAIN_KEYS
    from hbench.models.registry import get_model_class

    known = {*TRAIN_KEYS, *(name for model in models for name in get_model_class(model).Options.__dataclass_fields__)}
    for key in keys:
        if key.replace("-", "_") in known:
            continue
        name = key.replace("_", "-")
        if name == "seed":
            hint = f"did you mean --seeds? {command} takes a count of seeds or a list: --seeds 3 or --seeds 0,1,2"
        else:
            hint = flag_hint(name, known | command_flags(ctx))
        if hint is not None:
            owners = f"an option of {', '.join(models)} nor " if models else ""
            raise HBenchError(f"--{name} is neither {owners}a training setting ({hint})")


def _flag_form(args: list[str], model: str | None = None, switches: set[str] | None = None,
               ) -> tuple[dict[str, Any], dict[str, Any], dict[str, list[Any]]]:
    """Extra flags → (fixed model options, fixed training settings, grid axes). Values stay text: the
    model's Options and TrainConfig parse them by their declared types. The model's boolean options are
    flags (`--attention`, `--no-attention`); `--attention=true,false` sweeps both. `switches` gives those
    flags' names (dashed) for several models at once, instead of `model`."""
    from hbench.cli.train import model_switches, parse_model_args
    from hbench.config import TrainConfig
    from hbench.experiments.spec import TRAIN_KEYS

    # A setting that is itself a list (ks = 10,20) takes its commas as one value, not as a grid axis.
    list_settings = {k for k, hint in typing.get_type_hints(TrainConfig).items() if typing.get_origin(hint) is tuple}

    options: dict[str, Any] = {}
    train: dict[str, Any] = {}
    grid: dict[str, list[Any]] = {}
    for key, raw in parse_model_args(args, switches if switches is not None else
                                     model_switches(model) if model else ()).items():
        name = key.replace("-", "_")
        if not raw.strip():
            raise HBenchError(f"--{key} has an empty value")
        if "," in raw and name not in list_settings:
            grid[name] = [v.strip() for v in raw.split(",") if v.strip()]
            if not grid[name]:
                raise HBenchError(f"--{key} has an empty list")
        elif name in TRAIN_KEYS:
            train[name] = raw.strip()
        else:
            options[name] = raw.strip()
    return options, train, grid


def _run(spec: SweepSpec, flags: RunFlags) -> None:
    from hbench.api import run_sweep
    from hbench.experiments import ExecutorOptions, describe_plan, plan_sweep
    from hbench.reports.sweep_summary import SUMMARY_MD, sweep_markdown

    out = flags.out if flags.out is not None else Path("results") / "sweeps" / spec.name
    if flags.dry_run:
        typer.echo(describe_plan(plan_sweep(spec, out, flags.home)), nl=False)
        return
    options = ExecutorOptions(executor=flags.executor, jobs=flags.jobs, address=flags.address,
                              cpus_per_cell=flags.cpus_per_cell, gpus_per_cell=flags.gpus_per_cell, device=flags.device,
                              ship=flags.ship_results)
    fb = feedback(flags.quiet, log_every=flags.log_every, trackers=trackers(flags.tracker, flags.tracker_uri, spec.name))
    report = run_sweep(spec, out, home=flags.home, executor=options, feedback=fb)
    typer.echo(sweep_markdown(report), nl=False)
    fb.log(f"{report.ran} cells run, {report.skipped} already finished, {report.failed} failed, "
           f"in {report.seconds / 60:.1f} min; summary in {out / SUMMARY_MD}")
    if report.stopped_by_budget:
        fb.warn("the budget stopped the sweep before every cell ran: rerun the same command to go on")
    if report.without_result:
        # As `train` does for a diverged seed: a sweep with no result at all is no success, even with -q.
        counts = report.cells["status"].value_counts()
        typer.echo(f"error: every cell of sweep {spec.name} diverged or failed ({counts.get('diverged', 0)} "
                   f"diverged, {counts.get('failed', 0)} failed): no configuration has a result; see "
                   f"{out / SUMMARY_MD}", err=True)
    if report.failed or report.without_result:
        raise typer.Exit(3)


def sweep(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="A spec file (.toml, .yaml) or, for the flag form, a model name.")],
    dataset: Annotated[list[str] | None, typer.Option("--dataset", "-d", help="Flag form: dataset(s); repeatable.")] = None,
    seeds: Seeds = None,
    protocol: Annotated[str | None, typer.Option(help="Flag form: " + " | ".join(PROTOCOLS) + ".")] = None,
    metric: Annotated[str | None, typer.Option(help="Flag form: validation metric that selects configurations.")] = None,
    *,
    flags: RunFlags,
) -> None:
    """Run every configuration × seed of a spec that has not finished; resume interrupted ones; select on validation."""
    from hbench.experiments import load_spec, parse_spec

    path = Path(target)
    if path.suffix in (".toml", ".yaml", ".yml") or path.is_file():
        if ctx.args or dataset or protocol or metric:
            raise HBenchError("with a spec file, put datasets and settings in the file (only --seeds may override it)")
        spec = load_spec(path, {"seeds": _seeds(seeds, 1)} if seeds is not None else None)
    else:
        if not dataset:
            raise HBenchError(f"{target!r} is not a spec file; the flag form needs --dataset")
        options, train, grid = _flag_form(list(ctx.args), target)
        _refuse_unknown_flags(ctx, [*options, *grid], [target], "sweep")
        spec = parse_spec({"name": f"{target}-{'-'.join(Path(d).name for d in dataset)}", "datasets": dataset, "seeds": _seeds(seeds, 1),
                           "protocol": protocol, "metric": metric, "train": train,
                           "models": [{"name": target, "options": options, "grid": grid}]}, "flags")
    _run(spec, flags)


def tune(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Prepared dataset name or directory.")],
    models: Annotated[str, typer.Option("--models", help="Comma-separated models, each searched with the same budget.")],
    trials: Annotated[int, typer.Option("--trials", help="TPE trials per model (seed 0 each).")] = 20,
    seeds: Seeds = None,
    protocol: Annotated[str | None, typer.Option(help=" | ".join(PROTOCOLS) + " (default: the dataset's).")] = None,
    metric: Annotated[str | None, typer.Option(help="Validation metric that selects (default: the protocol's).")] = None,
    search_seed: Annotated[int, typer.Option("--search-seed", help="Seed of the TPE sampler.")] = 0,
    prune: Annotated[bool, typer.Option("--prune/--no-prune", help="Stop hopeless trials by the median rule on "
                                        "their validations (Optuna's MedianPruner rule; tune.json records its settings).")] = True,
    out: Out = None,
    executor: Executor = "sequential",
    jobs: Jobs = 1,
    device: Device = "auto",
    log_every: LogEvery = 1,
    tracker: TrackerKind = None,
    tracker_uri: TrackerUri = None,
    home: Home = None,
    quiet: Quiet = False,
) -> None:
    """Equal-budget tuning: the same TPE search for every model on validation, then each winner over the seeds.

    Extra flags are training settings (--epochs 200) or model options fixed in every trial (--negative
    closest); a fixed option must be one that every named model has and none searches."""
    from hbench.api import tune as run_tune
    from hbench.experiments import ExecutorOptions
    from hbench.experiments.tune import budget_text, tune_markdown
    from hbench.cli.train import model_switches
    from hbench.reports.sweep_summary import SUMMARY_MD

    names = [m.strip() for m in models.split(",") if m.strip()]
    options, train, grid = _flag_form(list(ctx.args), switches=set().union(*(model_switches(m) for m in names)))
    _refuse_unknown_flags(ctx, [*options, *grid], names, "tune")
    if grid:
        raise HBenchError(f"tune searches each model's declared space; a list cannot be swept here: {', '.join(grid)}")
    seed_value = _seeds(seeds, 5)
    seed_list = list(range(seed_value)) if isinstance(seed_value, int) else seed_value
    target = out if out is not None else Path("results") / "tune" / Path(dataset).name
    fb = feedback(quiet, log_every=log_every,
                  trackers=trackers(tracker, tracker_uri, f"tune-{Path(dataset).name}"))
    report = run_tune(dataset, names, trials, seed_list, target, options=options, train=train, protocol=protocol,
                      metric=metric, search_seed=search_seed, prune=prune, home=home,
                      executor=ExecutorOptions(executor=executor, jobs=jobs, device=device), feedback=fb)
    typer.echo(tune_markdown(report), nl=False)
    typer.echo(budget_text(report.budget))
    fb.log(f"search in {target / 'search'}, winners over {len(report.budget['final_seeds'])} seeds in "
           f"{target / 'seeds'}: `hbench table {target / 'seeds'}`")
    if report.unselected:
        # The other models' seeds ran; the command still fails, as a sweep without any result does.
        typer.echo(f"error: no trial of the search of {', '.join(report.unselected)} finished (each diverged or "
                   f"failed), so its seeds did not run; see {target / 'search' / SUMMARY_MD}", err=True)
    if report.unselected or (report.seeds is not None and (report.seeds.failed or report.seeds.without_result)):
        raise typer.Exit(3)


def ablate(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="A model with an ablation preset (hvacf, vacf, hyperml).")],
    dataset: Annotated[list[str], typer.Option("--dataset", "-d", help="Dataset(s); repeatable.")],
    seeds: Seeds = None,
    protocol: Annotated[str | None, typer.Option(help=" | ".join(PROTOCOLS) + " (default: the dataset's).")] = None,
    metric: Annotated[str | None, typer.Option(help="Validation metric for early stopping.")] = None,
    *,
    flags: RunFlags,
) -> None:
    """Run a model's ablation preset (each variant switches one part off) over the seeds, as one sweep."""
    from hbench.experiments import ablation_spec

    options, train, grid = _flag_form(list(ctx.args))
    _refuse_unknown_flags(ctx, [*options, *grid], [], "ablate")
    if options or grid:
        raise HBenchError(f"ablate takes training settings only; unknown or swept: {', '.join([*options, *grid])}")
    seed_value = _seeds(seeds, 3)
    spec = ablation_spec(model, dataset, list(range(seed_value)) if isinstance(seed_value, int) else seed_value,
                         train, protocol, metric)
    _run(spec, flags)
