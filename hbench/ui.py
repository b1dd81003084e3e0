"""Progress bars and log lines, always on stderr so that stdout carries only data.

A `Feedback` object is passed down explicitly (no global console); `Feedback(quiet=True)` silences
progress bars and informational lines but never errors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class ProgressTask:
    """Handle of one progress bar: `advance(n)` and `update(**fields)`; a no-op when quiet."""

    def __init__(self, progress: Progress | None, task_id: int | None) -> None:
        self._progress = progress
        self._task_id = task_id

    def advance(self, n: float = 1) -> None:
        if self._progress is not None and self._task_id is not None:
            self._progress.advance(self._task_id, n)

    def update(self, **fields: object) -> None:
        if self._progress is not None and self._task_id is not None:
            self._progress.update(self._task_id, **fields)  # type: ignore[arg-type]


@dataclass
class Feedback:
    """Where a long step reports progress and log lines (stderr), unless `quiet`."""

    quiet: bool = False
    console: Console = field(default_factory=lambda: Console(stderr=True))

    def log(self, message: str) -> None:
        if not self.quiet:
            self.console.print(message, highlight=False)

    def warn(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/yellow] {message}", highlight=False)

    @contextlib.contextmanager
    def progress(
        self, description: str, total: float | None, unit: str = "", transient: bool = False
    ) -> Iterator[ProgressTask]:
        """A rich progress bar with ETA for one long step."""
        if self.quiet:
            yield ProgressTask(None, None)
            return
        columns = [
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            MofNCompleteColumn() if not unit else TextColumn("{task.completed:,.0f}/{task.total:,.0f} " + unit),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
        ]
        with Progress(*columns, console=self.console, transient=transient) as progress:
            task_id = progress.add_task(description, total=total, info="")
            yield ProgressTask(progress, task_id)


QUIET = Feedback(quiet=True)
