"""The Python API: the command line's verbs as functions (`import hbench` exposes them lazily).

    import hbench
    data = hbench.prepare("mine", interactions="ratings.csv")          # or a registered name
    run = hbench.train("hyperml", data, epochs=20, c=1.0, progress="log")
    print(hbench.table("results"))
    hbench.load_run(run.path).recommend(["u1", "u2"], k=10)

`run_sweep`/`sweep`, `tune` and `run_demo` are the top of the pipeline: they run experiments, then have
reports summarise them (experiments never import reports).

Keyword settings of `train` are training settings (`TrainConfig` fields: epochs, dim, lr, seed, ...) or
the model's options (`hbench models NAME`); `progress` is "rich" (bars), "log" (plain lines), None
(silent) or a `hbench.ui.Feedback`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hbench.reports.settings import DEFAULT_TESTS
from hbench.ui import QUIET, Feedback, ProgressStyle, as_feedback

if TYPE_CHECKING:
    from hbench.datasets.store import PreparedDataset
    from hbench.experiments import ExecutorOptions, SweepReport, SweepSpec
    from hbench.experiments.tune import TuneReport
    from hbench.reports.significance import SignificanceSettings
    from hbench.reports.tables import Table
    from hbench.trackers import Tracker
    from hbench.training.restore import RestoredRun
    from hbench.training.trainer import RunResult

Progress = ProgressStyle | Feedback | None


def prepare(name: str, *, interactions: Path | str | None = None, train: Path | str | None = None,
            valid: Path | str | None = None, test: Path | str | None = None, sources: Sequence[Path | str] = (),
            home: Path | None = None, force: bool = False, progress: Progress = None,
            **options: Any) -> PreparedDataset:
    """Prepare a registered dataset, or your own files (`interactions=`, or `train=`/`test=` [+ `valid=`])
    under the name `name`; `options` are `hbench prepare` options (split="loo", negatives=100, ...)."""
    from hbench.datasets.custom import CustomFiles
    from hbench.datasets.prepare import prepare_dataset

    given = {"interactions": interactions, "train": train, "valid": valid, "test": test}
    custom = None
    if any(v is not None for v in given.values()):
        custom = CustomFiles(name=name, **{k: Path(v) for k, v in given.items() if v is not None})
    return prepare_dataset(name, overrides=options or None, sources=[Path(s) for s in sources], home=home,
                           force=force, feedback=as_feedback(progress), custom=custom)


def _feedback(progress: Progress, trackers: Sequence[Tracker]) -> Feedback:
    for tracker in trackers:
        tracker.check()
    return dataclasses.replace(as_feedback(progress), trackers=tuple(trackers))


def train(model: str, dataset: PreparedDataset | Path | str, *, out: Path | str = "results",
          home: Path | None = None, force: bool = False, progress: Progress = None, trackers: Sequence[Tracker] = (),
          **settings: Any) -> RunResult:
    """Train `model` on a prepared dataset (the object, its directory or its name) into one run directory;
    `trackers`: `hbench.trackers.Tracker("mlflow" | "tensorboard", uri)` the run also reports to."""
    from hbench.config import TrainConfig
    from hbench.datasets.store import PreparedDataset
    from hbench.training.trainer import train as train_model

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    ref = str(dataset.path) if isinstance(dataset, PreparedDataset) else str(dataset)
    config = TrainConfig(dataset=ref, **{k: v for k, v in settings.items() if k in fields})
    options = {k: v for k, v in settings.items() if k not in fields}
    return train_model(model, config, options, out=Path(out), home=home, force=force,
                       feedback=_feedback(progress, trackers))


def sweep(spec: Path | str | dict[str, Any], out: Path | str | None = None, *, home: Path | None = None,
          executor: str = "sequential", jobs: int = 1, device: str = "auto", progress: Progress = None,
          trackers: Sequence[Tracker] = ()) -> SweepReport:
    """Run a sweep spec (a .toml/.yaml file or the same as a dict) into `out` (default results/sweeps/<name>)."""
    from hbench.experiments import ExecutorOptions, load_spec, parse_spec

    parsed = parse_spec(spec, "the spec") if isinstance(spec, dict) else load_spec(Path(spec))
    target = Path(out) if out is not None else Path("results") / "sweeps" / parsed.name
    return run_sweep(parsed, target, home=home, executor=ExecutorOptions(executor=executor, jobs=jobs, device=device),
                     feedback=_feedback(progress, trackers))


def run_sweep(spec: SweepSpec, out: Path, *, home: Path | None = None, executor: ExecutorOptions | None = None,
              feedback: Feedback = QUIET) -> SweepReport:
    """Run every cell of a parsed spec that has not finished (resuming interrupted ones), select on
    validation and write the summary files (sweep-summary.md/.csv, selection.json) into `out`."""
    from hbench.experiments import ExecutorOptions, execute_sweep
    from hbench.reports.sweep_summary import summarise_sweep

    return execute_sweep(spec, out, summarise=summarise_sweep, home=home, executor=executor or ExecutorOptions(),
                         feedback=feedback)


def tune(dataset: str, models: list[str], trials: int, seeds: list[int], out: Path, *,
         options: dict[str, Any] | None = None, train: dict[str, Any] | None = None, protocol: str | None = None, metric: str | None = None,
         search_seed: int = 0, prune: bool = True, home: Path | None = None,
         executor: ExecutorOptions | None = None, feedback: Feedback = QUIET) -> TuneReport:
    """Equal-budget tuning (`hbench.experiments.tune`): the same TPE search for every model on validation
    (hopeless trials pruned by the median rule unless `prune=False`), then each winner over `seeds`; both
    stages' sweep directories get their summaries. `options`: model options fixed for every named model."""
    from hbench.experiments import ExecutorOptions
    from hbench.experiments.tune import run_tuning
    from hbench.reports.sweep_summary import summarise_sweep

    return run_tuning(dataset, models, trials, seeds, out, summarise=summarise_sweep, options=options, train=train,
                      protocol=protocol, metric=metric, search_seed=search_seed, prune=prune, home=home,
                      executor=executor or ExecutorOptions(), feedback=feedback)


def table(results: Path | str = "results", fmt: str = "markdown", metrics: Sequence[str] | None = None, *,
          significance: SignificanceSettings | None = DEFAULT_TESTS, with_paper: bool = False,
          all_configs: bool = False, labels: Sequence[str] = (), fragment: bool = False,
          time_to_quality: bool = False, protocol_gap: bool = False, progress: Progress = None) -> str:
    """Paper tables of the finished runs below `results` (markdown | latex | csv | html), as text, with the
    same significance tests as `hbench table` by default (`significance`: a
    `hbench.reports.settings.SignificanceSettings`, None for none), `labels` renames rows
    (`RUN_OR_CONFIG=NAME`), `fragment` gives HTML tables without a page, `time_to_quality` adds that column,
    `protocol_gap` the best test value on each run's recorded test curve and its gap to the selected value.
    What cannot be rendered over a tree of studies is left out with a warning line on stderr (see
    `hbench.reports.tables.build_tables`), whatever `progress` says."""
    from hbench.errors import HBenchError
    from hbench.reports.collect import collect_runs
    from hbench.reports.tables import FORMATS, build_tables, parse_labels, render

    if fmt not in FORMATS:  # before any test runs
        raise HBenchError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fragment and fmt != "html":
        raise HBenchError(f"--fragment is for --format html, not {fmt}")
    parsed = parse_labels(list(labels))
    feedback = as_feedback(progress)
    runs = collect_runs(Path(results), selected_only=not all_configs, feedback=feedback)
    return render(build_tables(runs, metrics, significance=significance, with_paper=with_paper, labels=parsed,
                               time_to_quality=time_to_quality, protocol_gap=protocol_gap, feedback=feedback),
                  fmt, fragment=fragment)


def load_run(path: Path | str, home: Path | None = None) -> RestoredRun:
    """A finished run directory's model, dataset and metrics: `.recommend(users, k)`, `.representations()`."""
    from hbench.training.restore import restore_run

    return restore_run(path, home)


DEMO_DATASET = "synthetic-fashion"
DEMO_ENCODER = "efficientnet_lite0"
DEMO_MODELS = ("pop", "bpr", "vbpr", "cml", "hyperml", "vacf", "hvacf")


def run_demo(out: Path, *, home: Path | None = None, models: Sequence[str] = DEMO_MODELS,
             seeds: Sequence[int] = (0, 1), epochs: int = 40, feedback: Feedback = QUIET) -> list[Table]:
    """The zero-network demo (`hbench demo`): prepare the synthetic fashion dataset (generated interactions
    and procedurally drawn item pictures) → features (the offline EfficientNet-Lite0 encoder) → train
    `models` over `seeds` → tables of the runs under `out`; a few minutes on CPU."""
    from hbench.config import TrainConfig
    from hbench.datasets.prepare import prepare_dataset
    from hbench.features.dataset import dataset_features
    from hbench.reports.collect import collect_runs
    from hbench.reports.tables import build_tables
    from hbench.training.trainer import train as train_model

    dataset = prepare_dataset(DEMO_DATASET, home=home, feedback=feedback)
    dataset_features(dataset, DEMO_ENCODER, feedback=feedback)
    for model in models:
        for seed in seeds:
            config = TrainConfig(dataset=str(dataset.path), dim=32, epochs=epochs, batch_size=512, seed=seed)
            train_model(model, config, out=out, home=home, feedback=feedback)
    return build_tables(collect_runs(out))
