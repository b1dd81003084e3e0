"""Opening run directories named on the command line, and naming runs in legends and titles."""

from __future__ import annotations

from pathlib import Path

from hbench.errors import HBenchError
from hbench.models.registry import non_default_settings
from hbench.runs import CONFIG, HISTORY, RecordedRun, RunDirectory, open_run


def runs_below(paths: list[Path]) -> list[RunDirectory]:
    """Each path as a run directory, or every run directory below it (finished or not, so that a run in
    progress can be watched): one that holds config.json and history.jsonl."""
    found: list[RunDirectory] = []
    for path in paths:
        path = Path(path)
        if (path / CONFIG).is_file() or not path.is_dir():
            found.append(open_run(path))
            continue
        below = sorted({h.parent for h in path.rglob(HISTORY) if (h.parent / CONFIG).is_file()})
        if not below:
            raise HBenchError(f"{path} is not a run directory and holds none (no {CONFIG} with {HISTORY} below it)")
        found += [RunDirectory(p) for p in below]
    unique = {run.path.resolve(): run for run in reversed(found)}  # a run named twice is drawn once
    return [run for run in found if unique.get(run.path.resolve()) is run]


def run_label(run: RecordedRun, *, seed: bool = True) -> str:
    """`model (settings that differ from the defaults) seed N`, e.g. `hyperml (c=0.5 dim=8) seed 0`."""
    settings = " ".join(non_default_settings(run))
    label = run.model + (f" ({settings})" if settings else "")
    return f"{label} seed {run.seed}" if seed else label
