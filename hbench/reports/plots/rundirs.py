"""Opening run directories named on the command line, and naming runs in legends and titles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hbench.errors import HBenchError
from hbench.runs import CHECKPOINT, CONFIG, HISTORY, RunDirectory


def open_run(path: Path, *, need_checkpoint: bool = False) -> RunDirectory:
    """A run directory that exists and holds config.json (and checkpoint.pt when asked), else a user error."""
    path = Path(path)
    if not path.exists():
        raise HBenchError(f"run directory {path} does not exist")
    if not (path / CONFIG).is_file():
        raise HBenchError(f"{path} is not a run directory (no {CONFIG}; `hbench train` writes one per run)")
    if need_checkpoint and not (path / CHECKPOINT).is_file():
        raise HBenchError(f"{path} has no {CHECKPOINT} (the run stopped before its first validation)")
    return RunDirectory(path)


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


def run_label(config: dict[str, Any], *, seed: bool = True) -> str:
    """`model (settings that differ from the defaults) seed N`, e.g. `hyperml (c=0.5 dim=8) seed 0`."""
    from hbench.reports.collect import run_settings

    settings = " ".join(run_settings(config))
    label = config["model"] + (f" ({settings})" if settings else "")
    return f"{label} seed {config['train']['seed']}" if seed else label
