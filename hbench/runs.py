"""The run directory: the one place that writes training results.

    <out>/<dataset>/<protocol>/<model>/<group hash[:10]>-seed<seed>/
        config.json        resolved configuration (ResolvedRun), with config and group hashes; read back
                           as a `RecordedRun` (the one typed reader: reports, sweeps, plots, restore)
        environment.json   versions, device, platform, git revision
        history.jsonl      one JSON object per epoch (loss parts, validation metrics, seconds)
        metrics.json       written last: status, best epoch, validation and test metrics, timings
        per_user.parquet   per-user test metrics (user = internal id of the prepared dataset)
        checkpoint.pt      best model state (torch.save of a state dict; load with weights_only=True)
        resume.pt          while training: the state after the last finished epoch (removed when it ends)
        train.log          the run's log lines: start, one per epoch and evaluation, end (appended by each attempt)

Every file is written atomically; `metrics.json` with status `completed` marks a finished run, and
readers (tables, plots) look only at finished or diverged runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import platform
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pandas as pd
import torch

from hbench.atomic import (
    atomic_path,
    read_json,
    remove_stale_temporaries,
    write_json,
    write_text,
)
from hbench.config import ResolvedRun, TrainConfig
from hbench.errors import HBenchError
from hbench.locks import hold

CONFIG, ENVIRONMENT, HISTORY, METRICS, PER_USER, CHECKPOINT, RESUME, LOG = (
    "config.json",
    "environment.json",
    "history.jsonl",
    "metrics.json",
    "per_user.parquet",
    "checkpoint.pt",
    "resume.pt",
    "train.log",
)

# Written by a sweep in its directory: the configurations it selected on validation (`hbench table` shows
# only those below that directory unless asked for all).
SELECTION = "selection.json"
# Written by a sweep in its directory: its spec and every cell (run path relative to it, variant name).
SWEEP_PLAN = "sweep.json"


class _HasRunDirectory(Protocol):
    run_dir: RunDirectory


_Result = TypeVar("_Result")


def one_process_per_run(train: Callable[..., _Result]) -> Callable[..., _Result]:
    """Decorate a function of a planned run (first argument, with a `run_dir`) to hold that run's directory."""

    @functools.wraps(train)
    def holding(planned: _HasRunDirectory, *args: Any, **kwargs: Any) -> _Result:
        with planned.run_dir.exclusive():
            return train(planned, *args, **kwargs)

    return holding


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


@functools.cache
def git_revision() -> str:
    """Commit of the hbench checkout this process imported, with `-dirty` when the package's files differ
    from it, or 'unknown' outside git.

    Read once, when `hbench.runs` is imported (below), not when a run starts: a sweep's runs execute the
    code loaded at its start, and a checkout moved on hours later must not be recorded as theirs. Only the
    package's own files count as dirty: results written into the checkout change no code.
    """
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no", "--", "."],
                               capture_output=True, text=True, timeout=10)
        return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


git_revision()  # at import: the revision of the code this process runs (see the docstring)


def environment(device: torch.device) -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "git_revision": git_revision(),
        "versions": {p: package_version(p) for p in ("hbench", "torch", "geoopt", "numpy", "pandas", "scipy")},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if device.type == "cuda":
        env["cuda"] = {"name": torch.cuda.get_device_name(device), "version": torch.version.cuda}
    return env


@dataclass(frozen=True)
class RunDirectory:
    path: Path

    @classmethod
    def for_run(cls, out: Path, run: ResolvedRun) -> RunDirectory:
        seed = run.train["seed"]
        return cls(out / run.dataset["name"] / run.protocol / run.model / f"{run.group_hash[:10]}-seed{seed}")

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold this run directory for one process: a second `train` of the same run refuses instead of
        resuming a live one. Leftover temporary files of a dead writer are removed once it is held."""
        busy = f"{self.path} is being trained by another hbench process; wait for it to finish"
        # Inside the run directory (hidden, never shipped or listed), so that model folders hold only runs.
        with hold(self.path / ".train.lock", busy=busy, wait=False) as locked_at:
            remove_stale_temporaries(self.path, locked_at)
            yield

    def status(self) -> str | None:
        """`completed`/`diverged` for a finished run, None when absent or unfinished."""
        metrics = self.path / METRICS
        return str(read_json(metrics, required=("status",))["status"]) if metrics.is_file() else None

    def start(self, run: ResolvedRun, env: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        for stale in (METRICS, HISTORY, PER_USER, CHECKPOINT, RESUME):
            (self.path / stale).unlink(missing_ok=True)
        write_json(self.path / CONFIG, run.to_dict())
        write_json(self.path / ENVIRONMENT, env)

    def write_history(self, history: list[dict[str, Any]]) -> None:
        # Rewritten whole each epoch (it is small) so that a reader never sees a torn line.
        write_text(self.path / HISTORY, "".join(json.dumps(h, sort_keys=True) + "\n" for h in history))

    def write_checkpoint(self, state: dict[str, torch.Tensor]) -> None:
        with atomic_path(self.path / CHECKPOINT) as tmp:
            torch.save(state, tmp)

    def write_per_user(self, frame: pd.DataFrame) -> None:
        with atomic_path(self.path / PER_USER) as tmp:
            # zstd: lossless and a quarter smaller than parquet's default snappy (0.42 against 0.55 MB for
            # amazon-cd's 22,947 users); reference runs commit these files so that tables keep their tests.
            frame.to_parquet(tmp, index=False, compression="zstd")

    def write_resume_state(self, state: dict[str, Any]) -> None:
        with atomic_path(self.path / RESUME) as tmp:
            torch.save(state, tmp)

    def load_resume_state(self, config_hash: str) -> dict[str, Any] | None:
        """The state of an interrupted run of exactly this configuration, or None (also for a torn file)."""
        path = self.path / RESUME
        if not path.is_file() or not (self.path / CONFIG).is_file():
            return None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - an unreadable resume file only means starting over
            return None
        return state if state.get("config_hash") == config_hash == self.read_config().get("config_hash") else None

    def resumable_epoch(self) -> int | None:
        """The last finished epoch of an interrupted run (from its history), or None."""
        if self.status() is not None or not (self.path / RESUME).is_file():
            return None
        history = self.read_history()
        return int(history[-1]["epoch"]) if history else None

    def note_resumed(self, epoch: int, device: str) -> None:
        env = read_json(self.path / ENVIRONMENT)
        env.setdefault("resumed", []).append({
            "after_epoch": epoch, "device": device, "git_revision": git_revision(),
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        write_json(self.path / ENVIRONMENT, env)

    def finish(self, metrics: dict[str, Any]) -> None:
        write_json(self.path / METRICS, metrics)
        (self.path / RESUME).unlink(missing_ok=True)

    def read_config(self) -> dict[str, Any]:
        """config.json as written (`read_run` gives it typed)."""
        return read_json(self.path / CONFIG)

    def read_run(self) -> RecordedRun:
        """config.json as a `RecordedRun`."""
        return RecordedRun.from_dict(self.read_config(), self.path)

    def read_metrics(self) -> dict[str, Any]:
        return read_json(self.path / METRICS, required=("status",))

    def read_history(self) -> list[dict[str, Any]]:
        path = self.path / HISTORY
        if not path.is_file():
            return []
        try:
            return [json.loads(line) for line in path.read_bytes().decode("utf-8").splitlines()]
        except (UnicodeDecodeError, ValueError) as exc:
            raise HBenchError(f"{path} is damaged ({exc}); delete it or train the run again") from None

    def load_checkpoint(self) -> dict[str, torch.Tensor]:
        return torch.load(self.path / CHECKPOINT, map_location="cpu", weights_only=True)


@dataclass(frozen=True)
class RecordedRun:
    """A run directory's config.json read back, typed: what reports, sweeps, plots and restore know of a run.

    The hashes are the recorded ones, not recomputed: they name the run directory and the table row even
    when the identity of a newer hbench version would hash differently. Optional entries are absent from
    runs of older versions.
    """

    path: Path
    model: str
    model_options: dict[str, Any]
    train: dict[str, Any]  # the training settings as recorded (TrainConfig identity: seed, dim, ks, ...)
    dataset: str  # the prepared dataset's name
    split_hash: str
    protocol: str
    metric: str  # the validation metric that selected the best epoch
    lr: float | None  # the resolved learning rate
    group_hash: str
    config_hash: str | None
    dataset_path: str | None = None  # where the dataset was prepared when the run trained
    n_users: int | None = None
    negatives: int | None = None  # sampled negatives per user of the split
    features: dict[str, str] | None = None  # {"encoder", "key"} of the image features a visual model read

    @classmethod
    def from_dict(cls, config: dict[str, Any], path: Path) -> RecordedRun:
        dataset = config["dataset"]
        return cls(
            path=Path(path), model=config["model"], model_options=dict(config["model_options"]),
            train=dict(config["train"]), dataset=dataset["name"], split_hash=dataset["split_hash"],
            protocol=config["protocol"], metric=config["metric"], lr=config.get("lr", config["train"].get("lr")),
            group_hash=config["group_hash"], config_hash=config.get("config_hash"),
            dataset_path=dataset.get("path"), n_users=dataset.get("n_users"), negatives=dataset.get("negatives"),
            features=dataset.get("features"),
        )

    @property
    def seed(self) -> int:
        return self.train["seed"]

    @property
    def directory(self) -> RunDirectory:
        """The run directory: status, metrics, history and checkpoint."""
        return RunDirectory(self.path)


@dataclass(frozen=True)
class ModelDefaults:
    """What a model trains with when a run sets nothing (its options' defaults, rate and batch size).

    Passed in by the caller (models/registry.py's `model_defaults`): run directories know no models.
    """

    options: dict[str, Any]
    lr: float
    batch_size: int


# Training settings that never change what a run means, so they are left out of its label.
_UNLABELLED_TRAIN_KEYS = {"dataset", "seed", "protocol", "metric", "ks", "prune_below"}


def run_settings(run: RecordedRun, defaults: ModelDefaults | None) -> list[str]:
    """Whatever differs from the defaults, as sorted `key=value` strings, e.g. `["c=0.5", "gamma=0"]`.

    `defaults`: the model's (None for a model this installation does not know: then only training
    settings are compared).
    """
    parts = []
    if defaults is not None:
        parts += [f"{k}={v}" for k, v in sorted(run.model_options.items()) if defaults.options.get(k) != v]
        if run.lr != defaults.lr:
            parts.append(f"lr={run.lr:g}")
    train_defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    if defaults is not None:  # runs record the batch size they resolved; the model's default is not a setting
        train_defaults["batch_size"] = defaults.batch_size
    parts += [
        f"{k}={v}" for k, v in sorted(run.train.items())
        if k not in _UNLABELLED_TRAIN_KEYS and k != "lr" and train_defaults.get(k) != v
    ]
    return sorted(parts)


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


def selected_groups(root: Path) -> dict[Path, set[str]]:
    """For every sweep directory below `root` (or `root` itself), the group hashes it selected."""
    found = {}
    for path in sorted(Path(root).rglob(SELECTION)):
        found[path.parent] = set(read_json(path, required=("selected_groups",))["selected_groups"])
    return found


@dataclass(frozen=True)
class Variant:
    """A named variant of a sweep entry (an ablation): its name and the options it sets."""

    name: str
    options: tuple[str, ...]


def run_variants(root: Path) -> dict[Path, Variant]:
    """The variant of every run of a sweep below `root` (or of `root` itself) that a spec's `variants`
    named, by the run's resolved path; grid points and search trials are no variants."""
    found: dict[Path, Variant] = {}
    for plan_path in sorted(Path(root).rglob(SWEEP_PLAN)):
        plan = json.loads(plan_path.read_text())
        named = {entry["name"]: entry.get("variants") or {} for entry in plan.get("spec", {}).get("models", [])}
        for cell in plan.get("cells", []):
            options = named.get(cell.get("model"), {}).get(cell.get("variant") or "")
            if options is not None:
                found[(plan_path.parent / cell["path"]).resolve()] = Variant(cell["variant"], tuple(sorted(options)))
    return found


def find_runs(root: Path) -> Iterator[RunDirectory]:
    """Every finished run directory below `root` (or `root` itself)."""
    for metrics in sorted(Path(root).rglob(METRICS)):
        if (metrics.parent / CONFIG).is_file():
            yield RunDirectory(metrics.parent)
