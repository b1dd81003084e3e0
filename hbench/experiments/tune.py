"""Equal-budget tuning (Rendle et al. 2019; Dacrema et al. 2019): every model gets the same search.

`run_tuning(dataset, models, trials, seeds, out, summarise=...)` runs two sweeps:

1. `search/`: per model, `trials` TPE trials (Optuna) over the search space the model class declares
   (`Recommender.search_space`: log ranges for learning rates and regularisation), each trial trained with
   seed 0 under the same training settings; the objective is the validation selection metric only.
   Hopeless trials are pruned by the median rule on their intermediate validations (unless `prune=False`).
2. `seeds/`: per model, its best trial (highest validation metric) trained over `seeds` (seed 0 again:
   the same configuration and seed give the same numbers, and the stage stays a self-contained sweep).

Both stages are ordinary resumable sweeps: an interrupted tune resumes where it stopped (TPE trials are
recorded before they run). `tune.json` in the output directory records the budget each model got.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hbench.atomic import write_json
from hbench.config import coerce_fields
from hbench.errors import HBenchError
from hbench.experiments.execution import ExecutorOptions
from hbench.experiments.selection import SweepReport
from hbench.experiments.spec import SEARCH_ONLY_KEYS, TRAIN_KEYS, Pruning, SweepSpec, parse_spec
from hbench.experiments.sweep import Summarise, execute_sweep
from hbench.models.registry import get_model_class
from hbench.runs import CONFIG, RecordedRun, RunDirectory
from hbench.ui import QUIET, Feedback

TUNE_LOG = "tune.json"
SEARCH_STAGE, SEEDS_STAGE = "search", "seeds"  # the two sweep directories of a tune output


@dataclass(frozen=True)
class TuneReport:
    out: Path
    search: SweepReport
    seeds: SweepReport
    budget: dict[str, Any]


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


def _winner_settings(search: SweepReport, model: str,
                     runs: dict[str, RecordedRun]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model options, training settings) of the run that won `model`'s search (`runs`: by group hash)."""
    chosen = [s for s in search.selections if s.model == model]
    if not chosen:
        raise HBenchError(f"the search of {model!r} has no finished trial to select")
    run = runs.get(chosen[0].group_hash)
    if run is None:
        raise HBenchError(f"the run directory of {model!r}'s selected trial is missing under {search.out}")
    train = {k: v for k, v in run.train.items() if k in TRAIN_KEYS and k != "lr" and k not in SEARCH_ONLY_KEYS}
    return dict(run.model_options), {**train, "lr": run.lr}


def _runs_by_group(root: Path) -> dict[str, RecordedRun]:
    """The first run directory (in path order) of every configuration below `root`."""
    runs: dict[str, RecordedRun] = {}
    for config_path in sorted(root.rglob(CONFIG)):
        run = RunDirectory(config_path.parent).read_run()
        runs.setdefault(run.group_hash, run)
    return runs


def seeds_spec(dataset: str, search: SweepReport, models: list[str], seeds: list[int], *,
               protocol: str | None = None, metric: str | None = None) -> SweepSpec:
    """Stage 2: each model's winning configuration over every seed."""
    entries = []
    runs = _runs_by_group(search.out)
    for name in models:
        options, train = _winner_settings(search, name, runs)
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
    (`resumed_budget`), both stages cover every model it records, and the seeds stage every recorded seed."""
    if trials < 1:
        raise HBenchError(f"--trials must be at least 1, got {trials}")
    if not models:
        raise HBenchError("--models names no model")
    budget = {"dataset": dataset, "protocol": protocol, "metric": metric, "trials_per_model": trials,
              "trial_seeds": [0], "final_seeds": seeds, "train": dict(train or {}), "search_seed": search_seed,
              "search": "Optuna TPE over each model's declared space, selection on validation only",
              "pruning": pruning_text(Pruning()) if prune else None, "spaces": declared_spaces(models),
              "options": fixed_options(models, dict(options or {}))}
    out.mkdir(parents=True, exist_ok=True)
    budget = resumed_budget(out / TUNE_LOG, budget)
    write_json(out / TUNE_LOG, budget)
    # Every model the output's tune has searched takes part, not only those named now: a rerun that adds a
    # model resumes the others' finished searches (over their recorded spaces) and both stages' summaries
    # keep listing them beside it.
    searched = execute_sweep(search_spec(dataset, budget["spaces"], trials, options=budget.get("options"), train=train,
                                         protocol=protocol, metric=metric, search_seed=search_seed, prune=prune),
                             out / SEARCH_STAGE, summarise=summarise, home=home, executor=executor, feedback=feedback)
    if searched.stopped_by_budget or searched.failed:
        raise HBenchError(f"the search did not finish ({searched.failed} failed cells); rerun to resume")
    final = execute_sweep(seeds_spec(dataset, searched, list(budget["spaces"]), budget["final_seeds"],
                                     protocol=protocol, metric=metric),
                          out / SEEDS_STAGE, summarise=summarise, home=home, executor=executor, feedback=feedback)
    return TuneReport(out, searched, final, budget)


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
    recorded = json.loads(path.read_text())
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
