"""Progress bars and log lines, always on stderr so that stdout carries only data.

A `Feedback` object is passed down explicitly (no global console); `Feedback(quiet=True)` silences
progress bars and informational lines but never errors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from rich.console import Console
from rich.text import Text
from rich.progress import (
    BarColumn,
    ProgressColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    Task,
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


class CountColumn(ProgressColumn):
    """`done/total unit`, or `done unit` while the total is unknown (a download without a length)."""

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit", "")
        done = f"{task.completed:,.0f}"
        text = done if task.total is None else f"{done}/{task.total:,.0f}"
        return Text(f"{text} {unit}".rstrip(), style="progress.download")


@dataclass
class Feedback:
    """Where a long step reports progress and log lines (stderr), unless `quiet`."""

    quiet: bool = False
    console: Console = field(default_factory=lambda: Console(stderr=True))
    bars: bool = True  # False: log lines only (a log file has no use for redrawn bars)
    # rich allows one live display at a time: a bar opened inside another joins the outer display.
    _active: Progress | None = field(default=None, init=False, repr=False)

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
        if self.quiet or not self.bars:
            yield ProgressTask(None, None)
            return
        if self._active is not None:
            task_id = self._active.add_task(description, total=total, info="", unit=unit)
            try:
                yield ProgressTask(self._active, task_id)
            finally:
                self._active.remove_task(task_id)
            return
        columns = [
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            CountColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
        ]
        with Progress(*columns, console=self.console, transient=transient) as progress:
            task_id = progress.add_task(description, total=total, info="", unit=unit)
            self._active = progress
            try:
                yield ProgressTask(progress, task_id)
            finally:
                self._active = None


QUIET = Feedback(quiet=True)
