"""Equal-budget tuning (Rendle et al. 2019; Dacrema et al. 2019): every model gets the same search.

`run_tuning(dataset, models, trials, seeds, out, summarise=...)` runs two sweeps:

1. `search/`: per model, `trials` TPE trials (Optuna) over the search space the model class declares
   (`Recommender.search_space`: log ranges for learning rates and regularisation), each trial trained with
   seed 0 under the same training settings; the objective is the validation selection metric only.
   Hopeless trials are pruned by the median rule on their intermediate validations (unless `prune=False`).
2. `seeds/`: per model, its best trial (highest validation metric) trained over `seeds` (seed 0 again:
   the same configuration and seed give the same numbers, and the stage stays a self-contained sweep).
   A model whose search finished no trial (every one diverged) has no winner: the others' seeds still run,
   and the report names it (`TuneReport.unselected`).

Every setting is checked before anything runs or is written (seeds, the dataset and what the models need of
it, Optuna, the output folder, a damaged tune.json or TPE record): a mistake costs no search.

Both stages are ordinary resumable sweeps: an interrupted tune resumes where it stopped (TPE trials are
recorded before they run). `tune.json` in the output directory records the budget each model got.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from tabulate import tabulate

from hbench.atomic import check_target, damaged_file, read_json, write_json
from hbench.config import coerce_fields
from hbench.errors import HBenchError
from hbench.experiments.execution import ExecutorOptions
from hbench.experiments.plan import configuration_cells, plan_cell
from hbench.experiments.selection import SweepReport
from hbench.experiments.spec import SEARCH_ONLY_KEYS, TRAIN_KEYS, Axis, Pruning, SweepSpec, parse_spec
from hbench.experiments.sweep import Summarise, execute_sweep
from hbench.experiments.tpe import check_tpe_records, require_optuna
from hbench.models.registry import get_model_class
from hbench.runs import CONFIG, RecordedRun, RunDirectory, short_value
from hbench.ui import QUIET, Feedback

TUNE_LOG = "tune.json"
SEARCH_STAGE, SEEDS_STAGE = "search", "seeds"  # the two sweep directories of a tune output


# Optuna's TPE sampler seeds numpy's legacy generator with `search seed + trial index`: it takes 0 .. 2**32 - 1.
_MAX_SAMPLER_SEED = 2**32 - 1


@dataclass(frozen=True)
class Winner:
    """What one model's search chose: the searched values of its best trial, and that trial's validation score."""

    model: str
    values: dict[str, Any]  # the searched settings only (the model's declared space), by name
    metric: str
    valid: float  # the selection metric on validation, seed 0 (the search's trial seed)

    def values_text(self) -> str:
        """`lr=0.01252, reg=0.007257`: the values as table rows and sweep summaries write them."""
        return ", ".join(f"{key}={short_value(value)}" for key, value in sorted(self.values.items())) or "—"


@dataclass(frozen=True)
class TuneReport:
    """What `tune` returns: the search and seeds stages as sweep reports, the recorded budget, and each
    model's winner (or why a model has none)."""

    out: Path
    search: SweepReport
    seeds: SweepReport | None  # None when no model's search finished a trial (no seeds stage ran)
    budget: dict[str, Any]
    winners: dict[str, Winner] = field(default_factory=dict)  # by model
    unselected: tuple[str, ...] = ()  # models whose search finished no trial: their seeds did not run


def search_spec(dataset: str, spaces: dict[str, dict[str, Any]], trials: int, *,
                options: dict[str, dict[str, Any]] | None = None, train: dict[str, Any] | None = None,
                protocol: str | None = None, metric: str | None = None, search_seed: int = 0,
                prune: bool = True) -> SweepSpec:
    """Stage 1: one TPE search per model over its space in `spaces` (model name to search space), seed 0,
    with the model's fixed `options` (model name to options; none when absent) in every trial; with
    `prune`, Optuna's median rule at `spec.Pruning`'s defaults."""
    entries = []
    for name, space in spaces.items():
        search: dict[str, Any] = {"method": "tpe", "trials": trials, "seed": search_seed, "space": space}
        if prune:
            search["prune"] = {}
        entries.append({"name": name, "options": dict((options or {}).get(name, {})), "search": search})
    return parse_spec({"name": f"tune-{Path(dataset).name}-search", "datasets": [dataset], "seeds": [0],
                       "protocol": protocol, "metric": metric, "train": dict(train or {}), "models": entries}, "tune")


def declared_spaces(models: list[str]) -> dict[str, dict[str, Any]]:
    """Each model's declared search space (`Recommender.search_space`), by name; refuses a model without one."""
    spaces = {}
    for name in models:
        space = get_model_class(name).search_space
        if not space:
            raise HBenchError(f"model {name!r} declares no search space; `hbench tune` needs one (see CONTRIBUTING.md)")
        spaces[name] = space
    return spaces


def fixed_options(models: list[str], options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`options` (a model option's name to its value) as each model's fixed options, typed as its Options
    declare them, by model name. Every named model must declare every option, and none may search it: an
    option that only some models have, or that a search varies, would give one tune's models different searches."""
    fixed: dict[str, dict[str, Any]] = {}
    for name in models:
        cls = get_model_class(name)
        declared = set(cls.Options.__dataclass_fields__)
        for key in options:
            if key not in declared:
                raise HBenchError(f"--{key.replace('_', '-')} is not an option of {name}; a tune fixes an option "
                                  "for every model it names (tune models without it separately)")
            if key in cls.search_space:
                raise HBenchError(f"--{key.replace('_', '-')} is searched by {name}'s declared space; it cannot also "
                                  "be fixed")
        # As tune.json will read back, so that a rerun's options compare equal to the recorded ones.
        fixed[name] = json.loads(json.dumps(coerce_fields(cls.Options, options, f"{name}: ")))
    return fixed


def search_winners(search: SweepReport, spaces: dict[str, dict[str, Any]]) -> dict[str, tuple[Winner, RecordedRun]]:
    """Each model's winner of the search and the run it trained, by model; a model of `spaces` whose search
    finished no trial (nothing to select) is absent."""
    runs = _runs_by_group(search.out)
    winners: dict[str, tuple[Winner, RecordedRun]] = {}
    for chosen in search.selections:
        if chosen.model not in spaces or chosen.model in winners:
            continue
        run = runs.get(chosen.group_hash)
        if run is None:
            raise HBenchError(f"the run directory of {chosen.model!r}'s selected trial is missing under {search.out}")
        values = {key: _setting(run, key) for key in spaces[chosen.model]}
        winners[chosen.model] = (Winner(chosen.model, values, chosen.metric, chosen.valid_mean), run)
    return winners


def _setting(run: RecordedRun, key: str) -> Any:
    """A searched setting's value in a recorded run: a model option, the resolved lr, or a training setting."""
    if key in run.model_options:
        return run.model_options[key]
    return run.lr if key == "lr" else run.train.get(key)


def _winner_settings(run: RecordedRun) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model options, training settings) of the run that won a model's search."""
    train = {k: v for k, v in run.train.items() if k in TRAIN_KEYS and k != "lr" and k not in SEARCH_ONLY_KEYS}
    return dict(run.model_options), {**train, "lr": run.lr}


def _runs_by_group(root: Path) -> dict[str, RecordedRun]:
    """The first run directory (in path order) of every configuration below `root`."""
    runs: dict[str, RecordedRun] = {}
    for config_path in sorted(root.rglob(CONFIG)):
        run = RunDirectory(config_path.parent).read_run()
        runs.setdefault(run.group_hash, run)
    return runs


def seeds_spec(dataset: str, winners: dict[str, RecordedRun], seeds: list[int], *,
               protocol: str | None = None, metric: str | None = None) -> SweepSpec:
    """Stage 2: each model's winning configuration (`winners`: the run that won, by model) over every seed."""
    entries = []
    for name, run in winners.items():
        options, train = _winner_settings(run)
        entries.append({"name": name, "options": options, "train": train})
    return parse_spec({"name": f"tune-{Path(dataset).name}-seeds", "datasets": [dataset], "seeds": seeds,
                       "protocol": protocol, "metric": metric, "models": entries}, "tune")


def run_tuning(dataset: str, models: list[str], trials: int, seeds: list[int], out: Path, *, summarise: Summarise,
               options: dict[str, Any] | None = None, train: dict[str, Any] | None = None,
               protocol: str | None = None, metric: str | None = None,
               search_seed: int = 0, prune: bool = True, home: Path | None = None,
               executor: ExecutorOptions = ExecutorOptions(), feedback: Feedback = QUIET) -> TuneReport:
    """Search every model with the same budget on validation, then run each winner over `seeds`;
    `summarise` selects and writes the summary of each stage's sweep directory; `options` are model options
    fixed in every trial of every model (`fixed_options`). Into an existing tune output
    (`resumed_budget`), both stages cover every model it records, and the seeds stage every recorded seed.

    Everything is checked before the search starts and before anything is written: a mistake found after
    hours of trials, or a tune.json left behind by a refused command, would be worse than the check's cost."""
    if trials < 1:
        raise HBenchError(f"--trials must be at least 1, got {trials}")
    if not models:
        raise HBenchError("--models names no model")
    check_seeds(seeds)
    if not 0 <= search_seed <= _MAX_SAMPLER_SEED - trials:
        raise HBenchError(f"--search-seed must be from 0 to {_MAX_SAMPLER_SEED - trials} (the TPE sampler's seed range "
                          f"less the trials), got {search_seed}")
    executor.check()
    require_optuna()
    check_target(out, directory=True)
    budget = {"dataset": dataset, "protocol": protocol, "metric": metric, "trials_per_model": trials,
              "trial_seeds": [0], "final_seeds": seeds, "train": dict(train or {}), "search_seed": search_seed,
              "search": "Optuna TPE over each model's declared space, selection on validation only",
              "pruning": pruning_text(Pruning()) if prune else None, "spaces": declared_spaces(models),
              "options": fixed_options(models, dict(options or {}))}
    budget = resumed_budget(out / TUNE_LOG, budget)
    # Every model the output's tune has searched takes part, not only those named now: a rerun that adds a
    # model resumes the others' finished searches (over their recorded spaces) and both stages' summaries
    # keep listing them beside it.
    spec = search_spec(dataset, budget["spaces"], trials, options=budget.get("options"), train=train,
                       protocol=protocol, metric=metric, search_seed=search_seed, prune=prune)
    check_cells(spec, out / SEARCH_STAGE, home)
    check_tpe_records(spec, out / SEARCH_STAGE)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / TUNE_LOG, budget)
    searched = execute_sweep(spec, out / SEARCH_STAGE, summarise=summarise, home=home, executor=executor,
                             feedback=feedback)
    if searched.stopped_by_budget or searched.failed:
        raise HBenchError(f"the search did not finish ({searched.failed} failed cells); rerun to resume")
    chosen = search_winners(searched, budget["spaces"])
    # A model whose every trial diverged has nothing to run over the seeds; the others' winners still do.
    unselected = tuple(model for model in budget["spaces"] if model not in chosen)
    final = None
    if chosen:
        final = execute_sweep(seeds_spec(dataset, {m: run for m, (_, run) in chosen.items()}, budget["final_seeds"],
                                         protocol=protocol, metric=metric),
                              out / SEEDS_STAGE, summarise=summarise, home=home, executor=executor, feedback=feedback)
    return TuneReport(out, searched, final, budget, {m: winner for m, (winner, _) in chosen.items()}, unselected)


def check_seeds(seeds: list[int]) -> None:
    """The final seeds are at least one, distinct, non-negative integers (numpy's SeedSequence takes no
    negative seed); `hbench tune --seeds 0` is a count of no seeds, refused here rather than after the search."""
    if not seeds:
        raise HBenchError("--seeds gives no seed: give a count of at least 1 (--seeds 1 runs seed 0, --seeds 3 "
                          "seeds 0, 1, 2) or the seeds themselves (--seeds 0,1,2)")
    wrong = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int) or s < 0]
    if wrong:
        raise HBenchError(f"--seeds are integers from 0 up, got {wrong[0]!r}")
    if len(set(seeds)) != len(seeds):
        raise HBenchError(f"--seeds repeats a seed: {', '.join(map(str, seeds))}")


def check_cells(spec: SweepSpec, out: Path, home: Path | None) -> None:
    """Plan one cell of every model of `spec` (its defaults, the first seed) without writing anything: this
    loads the dataset and resolves the protocol, metric and features each model needs, so that an unknown
    dataset or a metric the protocol does not produce is refused before the search starts, not at its first trial."""
    datasets: dict[str, Any] = {}
    for dataset in spec.datasets:
        for entry in spec.models:
            plan_cell(configuration_cells(spec, entry, dataset, {}, "check")[0], out, home, datasets)


# What a rerun into the same output may change: more final seeds, and models that the tune did not search yet
# (they get the same budget). Anything else would give one table's models different searches.
_EXTENDABLE = ("final_seeds", "spaces", "options")


def resumed_budget(path: Path, budget: dict[str, Any]) -> dict[str, Any]:
    """The budget to record when `budget` is run into the tune output whose tune.json is `path`: `budget`
    itself for a new output; otherwise the recorded one extended by `budget`'s seeds and new models, after
    checking that nothing else differs (a tune.json written before a key was recorded is not checked on it).
    Raises `HBenchError` naming the first difference."""
    if not path.is_file():
        return budget
    recorded = read_budget(path)
    for key, value in budget.items():
        if key in recorded and key not in _EXTENDABLE and recorded[key] != value:
            raise HBenchError(f"{path.parent} holds a tune with {key} = {_shown(recorded[key])}, not "
                              f"{_shown(value)}: every model of one tune gets the same search; rerun with the "
                              "recorded settings or choose another --out")
    for model, space in budget["spaces"].items():
        if model in recorded.get("spaces", {}) and recorded["spaces"][model] != space:
            raise HBenchError(f"{path.parent} searched {model} over {_shown(recorded['spaces'][model])}, not its "
                              f"declared space {_shown(space)}; choose another --out")
        # A tune.json from before options could be fixed searched every model with none.
        if model in recorded.get("spaces", {}) and recorded.get("options", {}).get(model, {}) != budget["options"][model]:
            raise HBenchError(f"{path.parent} searched {model} with the fixed options "
                              f"{_shown(recorded.get('options', {}).get(model, {}))}, not {_shown(budget['options'][model])}; "
                              "rerun with the recorded options or choose another --out")
    # Seeds are a union: the seeds stage keeps the runs of every seed it ran, and captions count them.
    seeds = sorted(set(recorded.get("final_seeds", [])) | set(budget["final_seeds"]))
    return {**recorded, **{k: v for k, v in budget.items() if k not in recorded}, "final_seeds": seeds,
            "spaces": {**recorded.get("spaces", {}), **budget["spaces"]},
            "options": {**{m: {} for m in recorded.get("spaces", {})}, **recorded.get("options", {}), **budget["options"]}}


# Keys every tune.json has recorded since the first version; later keys (options, pruning, ...) may be absent.
_REQUIRED = ("trials_per_model", "final_seeds", "spaces")


def read_budget(path: Path) -> dict[str, Any]:
    """A tune.json as `run_tuning` wrote it, or the damaged-file error naming it and what is wrong."""
    budget = read_json(path, required=_REQUIRED)
    problem = _budget_problem(budget)
    if problem is not None:
        raise damaged_file(path, problem)
    return budget


def _budget_problem(budget: dict[str, Any]) -> str | None:
    """What in a parsed tune.json is not as `run_tuning` writes it (None when nothing is)."""
    trials = budget["trials_per_model"]
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        return f"trials_per_model is {_shown(trials)}, not a count of trials"
    seeds = budget["final_seeds"]
    if not isinstance(seeds, list) or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        return f"final_seeds is {_shown(seeds)}, not a list of seeds"
    spaces = budget["spaces"]
    if not isinstance(spaces, dict) or not all(isinstance(space, dict) for space in spaces.values()):
        return "spaces is not a search space per model"
    for model, space in spaces.items():
        for key, axis in space.items():
            try:
                Axis.model_validate(axis)
            except ValidationError:
                return f"the space of {model} has an axis {key} = {_shown(axis)}"
    options = budget.get("options", {})
    if not isinstance(options, dict) or not all(isinstance(fixed, dict) for fixed in options.values()):
        return "options is not the fixed options per model"
    if not isinstance(budget.get("train", {}), dict):
        return "train is not a mapping of training settings"
    return None


def _shown(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _options_text(options: dict[str, Any]) -> str:
    return ", ".join(f"{key} = {_shown(value)}" for key, value in sorted(options.items()))


def budget_text(budget: dict[str, Any]) -> str:
    """One sentence stating the budget every model got (for summaries and captions)."""
    pruning = f", hopeless trials pruned ({budget['pruning']})" if budget.get("pruning") else ""
    fixed = "; ".join(f"{model}: {_options_text(options)}" for model, options in budget.get("options", {}).items()
                      if options)
    with_fixed = f" (fixed options: {fixed})" if fixed else ""
    return (f"Equal budget: every model had {budget['trials_per_model']} TPE trials (seed 0) over its declared "
            f"search space{with_fixed}{pruning}, selected on validation, then {len(budget['final_seeds'])} seeds "
            "of the winner.")


def tune_markdown(report: TuneReport) -> str:
    """What `hbench tune` prints: per model the searched values of the winning trial and its validation score,
    then its seeds' test metrics (mean ± std); a model whose search finished no trial says so. (Each stage's
    sweep-summary.md has every trial and seed.)"""
    configs = report.seeds.configurations if report.seeds is not None else None
    tests = [] if configs is None else [c for c in configs.columns if c.startswith("test/") and not c.endswith(" std")]
    metric = next((w.metric for w in report.winners.values()), "metric")
    rows = []
    for model in report.budget["spaces"]:
        winner = report.winners.get(model)
        if winner is None:
            rows.append([model, "no finished trial (each diverged or failed)", "—", "—", *("—" for _ in tests)])
            continue
        final = configs[configs["model"] == model] if configs is not None else None
        if final is None or final.empty:
            rows.append([model, winner.values_text(), f"{winner.valid:.4f}", "—", *("—" for _ in tests)])
            continue
        row = final.iloc[0]
        done = f"{row['completed']}/{row['seeds']}" + (f" ({row['diverged']} diverged)" if row["diverged"] else "") + (
            f" ({row['failed']} failed)" if row["failed"] else "")
        rows.append([model, winner.values_text(), f"{winner.valid:.4f}", done,
                     *(_mean_std(row.get(c), row.get(f"{c} std")) for c in tests)])
    name = Path(str(report.budget.get("dataset", report.out))).name
    headers = ["model", "winning configuration", f"valid {metric} (search)", "seeds done", *tests]
    table = tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)  # 0.2800 stays 0.2800
    return "\n".join([f"# Tune {name}", "", table, "",
                      "The winning configuration: the searched values of the trial with the highest validation "
                      f"{metric} (seed 0); test metrics: mean ± std over the seeds of the winner.", ""]) + "\n"


def _mean_std(mean: Any, std: Any) -> str:
    if mean is None or not math.isfinite(float(mean)):
        return "—"
    return f"{float(mean):.4f}" + ("" if std is None or not math.isfinite(float(std)) else f" ± {float(std):.4f}")


def pruning_text(pruning: Pruning) -> str:
    """The pruning rule in words, as tune.json records it."""
    return (f"median rule: {pruning.startup_trials} startup trials, {pruning.warmup_evaluations} warm-up "
            "validations")


def model_budget_text(budget: dict[str, Any] | None, model: str) -> str:
    """What search chose `model`'s configuration under a tune.json `budget`, for a table caption ("" when
    there is no budget or the tune did not search that model, e.g. a baseline placed beside its runs)."""
    if budget is None or model not in budget.get("spaces", {}):
        return ""
    axes = ", ".join(sorted(budget["spaces"][model])) or "its declared space"
    pruned = ", median pruning" if budget.get("pruning") else ""
    fixed = budget.get("options", {}).get(model, {})
    with_fixed = f" with {_options_text(fixed)} fixed" if fixed else ""
    return (f"{budget['trials_per_model']} TPE trials over {axes}{with_fixed} (seed 0, validation only{pruned}), "
            f"then {len(budget['final_seeds'])} seeds of the winner")
