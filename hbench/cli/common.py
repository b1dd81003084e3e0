"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from hbench.errors import HBenchError
from hbench.ui import Feedback

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or log lines (errors still print).")]
Home = Annotated[
    Path | None,
    typer.Option("--home", envvar="HBENCH_HOME", help="Where raw and prepared data live (default: user cache dir).",
                 show_default=False),
]


LogEvery = Annotated[int, typer.Option("--log-every", help="Without a terminal: a log line every N epochs (and the last).",
                                        min=1)]


def feedback(quiet: bool, **settings: Any) -> Feedback:
    return Feedback.for_stderr(quiet, **settings)

TrackerKind = Annotated[str | None, typer.Option("--tracker", help="Also log every run to mlflow | tensorboard.",
                                                 show_default=False)]
TrackerUri = Annotated[str | None, typer.Option(
    "--tracker-uri", show_default=False,
    help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI), or the TensorBoard log directory (default: each run's "
         "tensorboard/ folder).")]


def trackers(kind: str | None, uri: str | None, experiment: str) -> tuple[Any, ...]:
    """The `--tracker` as a tuple for Feedback.trackers (empty without one); its library must be installed."""
    if kind is None:
        if uri is not None:
            raise HBenchError("--tracker-uri needs --tracker mlflow|tensorboard")
        return ()
    from hbench.trackers import Tracker

    tracker = Tracker(kind, uri, experiment)
    tracker.check()
    return (tracker,)
