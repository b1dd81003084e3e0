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
        test_curve.jsonl   only with `record_test_curve`: the test metrics at every validation point, one JSON
                           object per validation ({"epoch", metric: value}); read by `table --protocol-gap`
                           only, never by selection, early stopping, sweeps or tune

Every file is written atomically; `metrics.json` with status `completed` marks a finished run, and
readers (tables, plots) look only at finished or diverged runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import platform
import subprocess
import warnings
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
    damaged_file,
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

# A protocol measurement kept apart from everything that selects (see the module docstring).
TEST_CURVE = "test_curve.jsonl"

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


def _torch_save(state: dict[str, Any], path: Path) -> None:
    """torch.save through an unbuffered Python file: a full disk then raises OSError(ENOSPC), which
    `atomic_path` reports for the target, instead of torch's own "unexpected pos" RuntimeError."""
    with open(path, "wb", buffering=0) as fh:
        torch.save(state, fh)


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
        for stale in (METRICS, HISTORY, PER_USER, CHECKPOINT, RESUME, TEST_CURVE):
            (self.path / stale).unlink(missing_ok=True)
        write_json(self.path / CONFIG, run.to_dict())
        write_json(self.path / ENVIRONMENT, env)

    def write_history(self, history: list[dict[str, Any]]) -> None:
        # Rewritten whole each epoch (it is small) so that a reader never sees a torn line.
        write_text(self.path / HISTORY, "".join(json.dumps(h, sort_keys=True) + "\n" for h in history))

    def write_test_curve(self, curve: list[dict[str, Any]]) -> None:
        """The test curve so far, rewritten whole (as the history) so that a reader never sees a torn line."""
        write_text(self.path / TEST_CURVE, "".join(json.dumps(c, sort_keys=True) + "\n" for c in curve))

    def read_test_curve(self) -> list[dict[str, Any]] | None:
        """The recorded test curve (one entry per validation point), None when the run recorded none; a
        damaged file is a user error naming it."""
        path = self.path / TEST_CURVE
        if not path.is_file():
            return None
        try:
            curve = [json.loads(line) for line in path.read_bytes().decode("utf-8").splitlines()]
        except (UnicodeDecodeError, ValueError) as exc:
            raise damaged_file(path, f"a line is not JSON ({exc})") from None
        for entry in curve:
            if not isinstance(entry, dict) or not all(
                    isinstance(v, int | float) and not isinstance(v, bool) for v in entry.values()):
                raise damaged_file(path, f"its entry {str(entry)[:60]} is not an object of numbers")
        return curve

    def lacks_test_curve(self, run: ResolvedRun) -> bool:
        """Whether `run` asks for a test curve that this (finished) directory does not hold: then it is
        trained again rather than skipped. A run with a curve serves a request without one."""
        return bool(run.train.get("record_test_curve")) and not (self.path / TEST_CURVE).is_file()

    def write_checkpoint(self, state: dict[str, torch.Tensor]) -> None:
        with atomic_path(self.path / CHECKPOINT) as tmp:
            _torch_save(state, tmp)

    def write_per_user(self, frame: pd.DataFrame) -> None:
        with atomic_path(self.path / PER_USER) as tmp:
            # zstd: lossless and a quarter smaller than parquet's default snappy (0.42 against 0.55 MB for
            # amazon-cd's 22,947 users); reference runs commit these files so that tables keep their tests.
            frame.to_parquet(tmp, index=False, compression="zstd")

    def write_resume_state(self, state: dict[str, Any]) -> None:
        with atomic_path(self.path / RESUME) as tmp:
            _torch_save(state, tmp)

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
        """metrics.json, checked as far as readers rely on it: a status, and metric tables of numbers."""
        path = self.path / METRICS
        metrics = read_json(path, required=("status",))
        if not isinstance(metrics["status"], str):
            raise damaged_file(path, "its status is not a string")
        for stage in ("test", "valid"):
            table = metrics.get(stage)
            if table is None:
                continue
            if not isinstance(table, dict):
                raise damaged_file(path, f"its {stage} entry is not an object of metrics")
            bad = next((name for name, value in table.items() if value is not None
                        and (isinstance(value, bool) or not isinstance(value, int | float))), None)
            if bad is not None:
                raise damaged_file(path, f"its {stage} {bad} is {table[bad]!r}, not a number")
        return metrics

    def read_history(self) -> list[dict[str, Any]]:
        path = self.path / HISTORY
        if not path.is_file():
            return []
        try:
            return [json.loads(line) for line in path.read_bytes().decode("utf-8").splitlines()]
        except (UnicodeDecodeError, ValueError) as exc:
            raise HBenchError(f"{path} is damaged ({exc}); delete it or train the run again") from None

    def load_checkpoint(self) -> dict[str, torch.Tensor]:
        """The best state, read with `weights_only=True` (tensors only: never unpickles anything else), or a
        user error naming the file when it is not a state dict (truncated, empty, another kind of file)."""
        path = self.path / CHECKPOINT
        damaged = HBenchError(f"{path} is damaged (truncated or not a torch checkpoint); train the run again "
                              "(`hbench train ... --force` with the settings in its config.json)")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch's notes on odd pickle protocols: the file is refused anyway
                state = torch.load(path, map_location="cpu", weights_only=True)
        except MemoryError:
            raise
        except OSError as exc:
            raise HBenchError(f"cannot read {path}: {exc.strerror or exc}") from None
        except Exception:  # noqa: BLE001 - torch raises a dozen types for damaged bytes (RuntimeError of its zip
            # reader, EOFError, UnpicklingError, struct.error, IndexError...); restricted loading ran no code.
            raise damaged from None
        if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                  for k, v in state.items()):
            raise damaged
        return state


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
    n_items: int | None = None
    negatives: int | None = None  # sampled negatives per user of the split
    features: dict[str, str] | None = None  # {"encoder", "key"} of the image features a visual model read

    @classmethod
    def from_dict(cls, config: dict[str, Any], path: Path) -> RecordedRun:
        """config.json's entries, typed; a config without one of them is damaged (a user error naming it)."""
        try:
            return cls._from_dict(config, path)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            what = f"lacks {exc}" if isinstance(exc, KeyError) else f"has an entry of the wrong type: {exc}"
            raise HBenchError(f"{Path(path) / CONFIG} is damaged (it {what}); delete the run or train it "
                              "again") from None

    @classmethod
    def _from_dict(cls, config: dict[str, Any], path: Path) -> RecordedRun:
        dataset = config["dataset"]
        int(config["train"]["seed"])  # every reader groups runs by it
        return cls(
            path=Path(path), model=config["model"], model_options=dict(config["model_options"]),
            train=dict(config["train"]), dataset=dataset["name"], split_hash=dataset["split_hash"],
            protocol=config["protocol"], metric=config["metric"], lr=config.get("lr", config["train"].get("lr")),
            group_hash=config["group_hash"], config_hash=config.get("config_hash"),
            dataset_path=dataset.get("path"), n_users=dataset.get("n_users"), n_items=dataset.get("n_items"),
            negatives=dataset.get("negatives"),
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
_UNLABELLED_TRAIN_KEYS = {"dataset", "seed", "protocol", "metric", "ks", "prune_below", "record_test_curve"}


def short_value(value: Any) -> str:
    """A setting's value as labels show it: a float to 4 significant digits (a search draws values such as
    0.007257005721594277, which 0.007257 tells apart), a value that already has no more (0.5, 2.0) as written."""
    if isinstance(value, float) and math.isfinite(value):
        short = f"{value:.4g}"
        return repr(value) if float(short) == value else short
    return str(value)


def run_settings(run: RecordedRun, defaults: ModelDefaults | None) -> list[str]:
    """Whatever differs from the defaults, as sorted `key=value` strings, e.g. `["c=0.5", "gamma=0"]`.

    `defaults`: the model's (None for a model this installation does not know: then only training
    settings are compared).
    """
    parts = []
    if defaults is not None:
        parts += [f"{k}={short_value(v)}" for k, v in sorted(run.model_options.items()) if defaults.options.get(k) != v]
        if run.lr != defaults.lr:
            parts.append(f"lr={short_value(run.lr)}")
    train_defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    if defaults is not None:  # runs record the batch size they resolved; the model's default is not a setting
        train_defaults["batch_size"] = defaults.batch_size
    parts += [
        f"{k}={short_value(v)}" for k, v in sorted(run.train.items())
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
    run = RunDirectory(path)
    checkpoint = path / CHECKPOINT
    if need_checkpoint and checkpoint.is_dir():
        raise HBenchError(f"{checkpoint} is a directory, not a checkpoint; train the run again "
                          "(`hbench train ... --force` with the settings in its config.json)")
    if need_checkpoint and not checkpoint.is_file():
        # metrics.json says why there is none: a run that diverged before its first validation keeps nothing.
        status = run.status()
        if status == "diverged":
            reason = run.read_metrics().get("message") or "non-finite loss or parameters"
            raise HBenchError(f"{path} diverged before it kept a checkpoint ({reason}); there is no model to "
                              "restore: train it again with other settings (a lower --lr, for one)")
        if status is not None:
            raise HBenchError(f"{path} finished but its {CHECKPOINT} is gone; train the run again "
                              "(`hbench train ... --force` with the settings in its config.json)")
        raise HBenchError(f"{path} has no {CHECKPOINT} (the run stopped before its first validation)")
    return run


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
