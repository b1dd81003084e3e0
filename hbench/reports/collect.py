"""Read run directories into one flat frame: a row per finished run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from rich.markup import escape

from hbench.atomic import read_json
from hbench.errors import HBenchError
from hbench.experiments.tune import SEARCH_STAGE, TUNE_LOG, model_budget_text, read_budget
from hbench.models.registry import available_models, non_default_settings
from hbench.runs import SELECTION, SWEEP_PLAN, RunDirectory, find_runs, run_variants
from hbench.ui import QUIET, Feedback

# From this many runs on, reading them reports progress (bars, or log lines without a terminal).
PROGRESS_FROM_RUNS = 200


def collect_runs(root: Path, *, selected_only: bool = False, feedback: Feedback = QUIET) -> pd.DataFrame:
    """One row per finished (completed or diverged) run below `root`, metrics flattened as `valid/…`, `test/…`;
    runs of a sweep's named variants (ablations) carry the variant's name, and every run its `study`: the
    folder it was trained into (see `study_folder`), relative to `root`.

    `selected_only`: below a sweep directory, only the configurations the sweep selected on validation;
    below an `hbench tune` output, only its seeds stage (the search's trials are the record of how the
    winners were found, not results) unless `root` is the search stage itself.

    A tree of many studies may hold a damaged file: a run folder whose config.json or metrics.json does not
    read, or a sweep's selection.json or a tune.json that does not, skips the runs it concerns with one
    warning line per cause on `feedback` (always shown), instead of failing the whole table; nothing
    readable at all is an error.
    """
    root = Path(root)
    if not root.exists():
        raise HBenchError(f"results directory {root} does not exist")
    skipped = _Skipped()
    selections = _selections(root) if selected_only else {}
    variants = _variants(root, feedback)
    models = available_models()  # once: scanning the installed plugins costs ~40 ms, per run it dominated
    budgets: dict[Path, dict[str, Any] | None] = {}
    here = root.resolve()
    rows = []
    run_dirs = list(find_runs(root))
    # Progress only where reading takes a while (a second from about a thousand runs): a small table's
    # stderr stays empty, or holds its one error line.
    progress = feedback if len(run_dirs) >= PROGRESS_FROM_RUNS else QUIET
    progress.line(f"reading {len(run_dirs)} finished runs under {root}")
    with progress.progress("reading runs", total=len(run_dirs), unit="runs") as bar:
        for n, run_dir in enumerate(run_dirs, 1):
            bar.advance()
            if n % 500 == 0:
                progress.line(f"read {n}/{len(run_dirs)} runs")
            sweep = next((folder for folder in selections if folder in run_dir.path.parents), None)
            if sweep is not None and selections[sweep] is None:
                skipped.add(f"{sweep / SELECTION} is damaged", run_dir.path, "--all-configs shows the sweep's every run")
                continue
            try:
                row = _row(run_dir, root, here, variants, budgets, models, selected_only,
                           selections[sweep] if sweep is not None else None)
            except HBenchError as error:
                skipped.add_error(error, run_dir.path)
                continue
            if row is not None:
                rows.append(row)
    left_out = len(run_dirs) - len(rows) - skipped.total
    if left_out:
        progress.line(f"{left_out} of them left out: search trials and configurations sweeps did not select "
                      "(--all-configs shows them)")
    if not rows and skipped.total:  # nothing readable: the one error line is why
        raise skipped.error(root)
    skipped.report(feedback)
    if not rows:
        raise HBenchError(f"no finished runs under {root} (a run directory holds metrics.json and config.json)")
    return pd.DataFrame(rows)


def _row(run_dir: RunDirectory, root: Path, here: Path, variants: dict[Path, Any],
         budgets: dict[Path, dict[str, Any] | None], models: dict[str, Any], selected_only: bool,
         selected: set[str] | None) -> dict[str, Any] | None:
    """The frame row of one run, or None where `selected_only` leaves it out; HBenchError for a damaged file."""
    run, metrics = run_dir.read_run(), run_dir.read_metrics()
    if selected is not None and run.group_hash not in selected:
        return None
    resolved = run_dir.path.resolve()
    tuned = _tune_folder(run_dir.path, budgets)
    if selected_only and tuned is not None:
        search = tuned / SEARCH_STAGE
        if search in resolved.parents and search not in (here, *here.parents):
            return None
    variant = variants.get(resolved)
    row = {
        "path": str(run_dir.path),
        "study": study_folder(run_dir.path, root, (run.dataset, run.protocol, run.model)),
        "dataset": run.dataset,
        "protocol": run.protocol,
        "split_hash": run.split_hash,
        "n_users": run.n_users,
        "negatives": run.negatives,  # sampled per user; absent from older runs
        "dim": run.train.get("dim"),  # embedding dimension (papers' numbers hold for theirs only)
        "model": run.model,
        "group_hash": run.group_hash,
        "settings": " ".join(non_default_settings(run, models=models)),
        # an ablation variant's name, and the options it sets (its label says them in words)
        "variant": variant.name if variant else "",
        "variant_options": " ".join(variant.options) if variant else "",
        "seed": run.seed,
        "status": metrics["status"],
        "selection_metric": metrics.get("selection_metric", run.metric),
        "train_seconds": metrics.get("train_seconds"),
        "eval_seconds": metrics.get("eval_seconds"),
        "time_to_quality_seconds": metrics.get("time_to_quality_seconds"),  # absent from older runs
        "tuning": model_budget_text(budgets[tuned] if tuned is not None else None, run.model),
    }
    row.update({f"valid/{k}": v for k, v in (metrics.get("valid") or {}).items()})
    row.update({f"test/{k}": v for k, v in (metrics.get("test") or {}).items()})
    return row


def study_folder(run_path: Path, root: Path, layout: tuple[str, str, str]) -> str:
    """The folder a run was trained into (`train --out`, a sweep's or a tune stage's folder), relative to
    `root` ("." for `root` itself): `<study>/<dataset>/<protocol>/<model>/<run>` in hbench's layout, else
    the run's parent folder. Runs of one configuration and seed in two studies are two measurements (a
    repeat, another machine, another code version), which a table keeps apart rather than averaging."""
    parents = run_path.parents
    in_layout = len(parents) > 3 and tuple(p.name for p in (parents[2], parents[1], parents[0])) == layout
    folder = parents[3] if in_layout else parents[0]
    try:
        return folder.relative_to(root).as_posix() or "."
    except ValueError:  # `root` is the run itself or lies inside the layout: one study
        return "."


class _Skipped:
    """Runs left out because a file they need is damaged, grouped by cause: one warning line per cause."""

    def __init__(self) -> None:
        self._by_cause: dict[str, tuple[list[Path], str]] = {}

    @property
    def total(self) -> int:
        return sum(len(paths) for paths, _ in self._by_cause.values())

    def add(self, cause: str, run: Path, hint: str) -> None:
        self._by_cause.setdefault(cause, ([], hint))[0].append(run)

    def add_error(self, error: HBenchError, run: Path) -> None:
        """A run whose own file (or its tune folder's tune.json) is damaged: grouped by the kind of file."""
        message = str(error)
        damaged = message.split(" is damaged", 1)[0]
        if Path(damaged).name == TUNE_LOG:
            self.add(message, run, "")  # one tune.json: its own line, naming it
        else:
            name = Path(damaged).name if " is damaged" in message else "file"
            key = f"run folders with a damaged {name}"
            self._by_cause.setdefault(key, ([], message))[0].append(run)

    def error(self, root: Path) -> HBenchError:
        """The error when every run was skipped: the damaged file itself where there is one run."""
        (cause, (runs, detail)), *_ = self._by_cause.items()
        first = detail if cause.startswith("run folders") else f"{cause}; {detail}".rstrip("; ")
        if self.total == 1:
            return HBenchError(first)
        return HBenchError(f"no readable finished runs under {root}: {self.total} skipped, e.g. {first}")

    def report(self, feedback: Feedback) -> None:
        for cause, (runs, detail) in self._by_cause.items():
            if cause.startswith("run folders"):
                folders = cause if len(runs) > 1 else cause.replace("run folders", "run folder", 1)
                feedback.warn(escape(f"skipped {len(runs)} {folders}: {detail}"))
            else:
                count = f"{len(runs)} run" + ("s" if len(runs) > 1 else "")
                feedback.warn(escape(f"skipped {count}: {cause}" + (f"; {detail}" if detail else "")))


def _selections(root: Path) -> dict[Path, set[str] | None]:
    """For every sweep directory below `root` (or `root` itself), the group hashes it selected; None for a
    sweep whose selection.json is damaged (its runs are skipped: which of them were selected is unknown)."""
    found: dict[Path, set[str] | None] = {}
    for path in sorted(root.rglob(SELECTION)):
        try:
            groups = read_json(path, required=("selected_groups",))["selected_groups"]
            found[path.parent] = {str(g) for g in groups}
        except (HBenchError, TypeError):
            found[path.parent] = None
    return found


def _variants(root: Path, feedback: Feedback) -> dict[Path, Any]:
    """`run_variants` of `root`; a damaged sweep.json loses only its own variant names (its rows are then
    labelled by the options they set), with a warning."""
    try:
        return run_variants(root)
    except (HBenchError, ValueError, KeyError, TypeError, AttributeError):
        pass
    found: dict[Path, Any] = {}
    for plan in sorted(root.rglob(SWEEP_PLAN)):
        try:
            found.update(run_variants(plan.parent))
        except (HBenchError, ValueError, KeyError, TypeError, AttributeError):
            feedback.warn(escape(f"{plan} is damaged: the rows of its variants are labelled by their options, "
                                 "not their names"))
    return found


def _tune_folder(run_path: Path, cache: dict[Path, dict[str, Any] | None]) -> Path | None:
    """The `hbench tune` output a run lies in (its nearest ancestor holding a tune.json), or None; `cache`
    gets each folder's parsed tune.json (None where there is none)."""
    for folder in run_path.resolve().parents:
        if folder not in cache:
            log = folder / TUNE_LOG
            cache[folder] = read_budget(log) if log.is_file() else None
        if cache[folder] is not None:
            return folder
    return None

