"""Optional experiment trackers: MLflow and TensorBoard receive what a run directory records.

For every training run (a `hbench train` seed or a sweep cell) a tracker gets the resolved configuration
when the run starts, each epoch's history entry (loss parts, validation metrics) as it ends, and the
final validation and test metrics when the run ends; MLflow also keeps the run's files as artefacts
(config.json, environment.json, history.jsonl, metrics.json, train.log, per_user.parquet, checkpoint.pt).

    mlflow        `pip install 'hbench[mlflow]'`; the tracking URI is `uri`, else $MLFLOW_TRACKING_URI, else
                  MLflow's default. One MLflow experiment per `experiment` name (a sweep's name, or "hbench").
                  MLflow refuses `@` in metric names: `valid/ndcg@10` is logged as `valid/ndcg_at_10`.
    tensorboard   `pip install 'hbench[tensorboard]'`; event files in `uri/<run path>` when `uri` is given,
                  else in each run directory's `tensorboard/` folder (`tensorboard --logdir results/`).

A tracker is plain data (kind, uri, experiment), so a sweep hands it to worker processes; `open_run`
imports the tracker's library, which is then required.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hbench.config import flat_items
from hbench.errors import HBenchError
from hbench.runs import RESUME

TRACKERS = ("mlflow", "tensorboard")


class TrackedRun(Protocol):
    def epoch(self, entry: dict[str, Any]) -> None:
        """One history entry (as history.jsonl stores it)."""

    def finish(self, summary: dict[str, Any]) -> None:
        """The run's metrics.json content; the run directory is complete."""


@dataclass(frozen=True)
class Tracker:
    """An experiment tracker every run also reports to: `Tracker("mlflow", uri)` or
    `Tracker("tensorboard", log_dir)` (`uri` None: MLflow's default, or each run's `tensorboard/` folder)."""

    kind: str  # mlflow | tensorboard
    uri: str | None = None
    experiment: str = "hbench"

    def __post_init__(self) -> None:
        if self.kind not in TRACKERS:
            raise HBenchError(f"--tracker must be one of {', '.join(TRACKERS)}, not {self.kind!r}")

    def check(self) -> None:
        """Before any run starts: an error naming the extra to install, or MLflow's objection to the URI."""
        try:
            __import__(self.kind)
        except ImportError:
            raise HBenchError(f"--tracker {self.kind} needs {self.kind}: pip install 'hbench[{self.kind}]'") from None
        if self.kind == "mlflow":
            from mlflow.exceptions import MlflowException

            try:
                _mlflow_client(self).get_experiment_by_name(self.experiment)
            except MlflowException as error:  # e.g. MLflow 3 refuses a file store unless MLFLOW_ALLOW_FILE_STORE=true
                raise HBenchError(f"MLflow cannot use tracking URI {self.uri or '(default)'}: "
                                  f"{str(error).splitlines()[0]}") from None

    def open_run(self, config: dict[str, Any], run_path: Path) -> TrackedRun:
        """Start tracking one run (its resolved config as parameters); the trainer calls it."""
        if self.kind == "mlflow":
            return _MlflowRun(self, config, run_path)
        return _TensorBoardRun(self, config, run_path)


def _entry_scalars(entry: dict[str, Any]) -> dict[str, float]:
    """A history entry's numbers: `train/<loss part>`, `valid/<metric>`, `seconds/<train|eval>`."""
    scalars = {f"valid/{k}": float(v) for k, v in entry.get("valid", {}).items()}
    for key, value in entry.items():
        if key in ("train_seconds", "eval_seconds"):
            scalars[f"seconds/{key.removesuffix('_seconds')}"] = float(value)
        elif key != "epoch" and isinstance(value, int | float):
            scalars[f"train/{key}"] = float(value)
    return scalars


def _final_scalars(summary: dict[str, Any]) -> dict[str, float]:
    return {f"{stage}/{k}": float(v) for stage in ("valid", "test") for k, v in summary.get(stage, {}).items()}


def _run_name(config: dict[str, Any]) -> str:
    return f"{config['model']} {config['dataset']['name']} {config['group_hash'][:10]} seed {config['train']['seed']}"


def _mlflow_client(tracker: Tracker) -> Any:
    from mlflow.tracking import MlflowClient

    # The client, not mlflow's module-level "active run", so that nothing global is left behind.
    return MlflowClient(tracking_uri=tracker.uri) if tracker.uri else MlflowClient()


class _MlflowRun:
    def __init__(self, tracker: Tracker, config: dict[str, Any], run_path: Path) -> None:
        from mlflow.entities import Param

        self.client = _mlflow_client(tracker)
        experiment = self.client.get_experiment_by_name(tracker.experiment)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(tracker.experiment)
        tags = {"hbench.run_dir": str(run_path), "hbench.config_hash": config["config_hash"],
                "hbench.group_hash": config["group_hash"], "hbench.model": config["model"]}
        self.run_id = self.client.create_run(experiment_id, run_name=_run_name(config), tags=tags).info.run_id
        self.run_path = run_path
        params = [Param(key, json.dumps(value) if isinstance(value, list | tuple) else str(value))
                  for key, value in flat_items({k: v for k, v in config.items() if k != "extra"})]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 parameters per call
            self.client.log_batch(self.run_id, params=params[start:start + 100])

    def _log(self, scalars: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(name.replace("@", "_at_"), value, now, step) for name, value in scalars.items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def epoch(self, entry: dict[str, Any]) -> None:
        self._log(_entry_scalars(entry), int(entry["epoch"]))

    def finish(self, summary: dict[str, Any]) -> None:
        self._log(_final_scalars(summary), int(summary.get("best_epoch", 0)))
        for path in sorted(self.run_path.iterdir()):
            if path.is_file() and path.name != RESUME:
                self.client.log_artifact(self.run_id, str(path))
        self.client.set_tag(self.run_id, "hbench.status", summary["status"])
        self.client.set_terminated(self.run_id, "FINISHED" if summary["status"] == "completed" else "FAILED")


class _TensorBoardRun:
    def __init__(self, tracker: Tracker, config: dict[str, Any], run_path: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        log_dir = Path(tracker.uri) / run_path.relative_to(run_path.parents[3]) if tracker.uri else run_path / "tensorboard"
        self.writer = SummaryWriter(log_dir=str(log_dir))
        self.writer.add_text("config", "```\n" + json.dumps(config, indent=2, sort_keys=True) + "\n```")

    def epoch(self, entry: dict[str, Any]) -> None:
        for name, value in _entry_scalars(entry).items():
            self.writer.add_scalar(name, value, int(entry["epoch"]))
        self.writer.flush()

    def finish(self, summary: dict[str, Any]) -> None:
        step = int(summary.get("best_epoch", 0))
        for name, value in _final_scalars(summary).items():
            self.writer.add_scalar(f"final/{name}", value, step)
        self.writer.add_text("status", f"{summary['status']} {summary.get('message', '')}".strip())
        self.writer.close()
