"""Progress bars and log lines, always on stderr so that stdout carries only data.

A `Feedback` object is passed down explicitly (no global console); `Feedback(quiet=True)` silences
progress bars and informational lines but never errors. On a terminal long steps draw bars; elsewhere
(`bars=False`: a log file, a cluster job's output) they print plain lines instead, which `line()` writes.
A feedback with a `log_file` (a run's train.log) appends every line there too, also when quiet.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # rich is imported where it is used: `hbench --help` and a mistyped flag should not pay for it
    from rich.console import Console
    from rich.progress import Progress, ProgressColumn


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


def _count_column() -> ProgressColumn:
    """A column showing `done/total unit`, or `done unit` while the total is unknown (a download without a
    length). Its class is made here, where a bar is drawn, because its base class is rich's."""
    from rich.progress import ProgressColumn, Task
    from rich.text import Text

    class CountColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            unit = task.fields.get("unit", "")
            done = f"{task.completed:,.0f}"
            text = done if task.total is None else f"{done}/{task.total:,.0f}"
            return Text(f"{text} {unit}".rstrip(), style="progress.download")

    return CountColumn()


def _plain(message: str) -> str:
    """A message without its rich markup, as a text file shows it."""
    from rich.text import Text

    try:
        return Text.from_markup(message).plain
    except Exception:  # noqa: BLE001 - text that only looks like markup (brackets) is kept as it is
        return message


@dataclass
class Feedback:
    """Where a long step reports progress and log lines (stderr), unless `quiet`."""

    quiet: bool = False
    console: Console | None = None  # None: stderr, opened on first use (so that rich loads only when it prints)
    bars: bool = True  # False: plain log lines instead of bars (a log file has no use for redrawn bars)
    log_every: int = 1  # training prints a plain line every N-th epoch (and the last)
    log_file: Path | None = None  # every line is appended here too (a run's train.log), even when quiet
    trackers: tuple[Any, ...] = ()  # experiment trackers each training run reports to (hbench.trackers)
    # rich allows one live display at a time: a bar opened inside another joins the outer display.
    _active: Progress | None = field(default=None, init=False, repr=False)

    @classmethod
    def for_stderr(cls, quiet: bool = False, **settings: Any) -> Feedback:
        """Bars on a terminal, plain lines when stderr goes to a file or a pipe."""
        from rich.console import Console

        console = Console(stderr=True)
        return cls(quiet=quiet, console=console, bars=console.is_terminal, **settings)

    def _console(self) -> Console:
        """`console`, or a console on stderr made for this line when none was given (never stored: feedback
        objects are shared, `QUIET` among them, and hold no state of their own)."""
        if self.console is not None:
            return self.console
        from rich.console import Console

        return Console(stderr=True)

    def logging_to(self, log_file: Path) -> Feedback:
        """The same feedback, also appending every line to `log_file`."""
        copy = dataclasses.replace(self, log_file=log_file)
        copy._active = self._active
        return copy

    def _append(self, message: str) -> None:
        if self.log_file is not None:
            with open(self.log_file, "a", encoding="utf-8") as log:
                log.write(_plain(message) + "\n")

    def log(self, message: str) -> None:
        self._append(message)
        if not self.quiet:
            self._console().print(message, highlight=False, soft_wrap=True)

    def line(self, message: str) -> None:
        """A plain progress line (no markup): on stderr where there are no bars, and in the log file."""
        self._append(message)
        if not self.quiet and not self.bars:
            self._console().print(message, highlight=False, soft_wrap=True, markup=False)

    def warn(self, message: str) -> None:
        self._append(f"warning: {message}")
        self._console().print(f"[yellow]warning:[/yellow] {message}", highlight=False, soft_wrap=True)

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
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        columns = [
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            _count_column(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
        ]
        with Progress(*columns, console=self._console(), transient=transient) as progress:
            task_id = progress.add_task(description, total=total, info="", unit=unit)
            self._active = progress
            try:
                yield ProgressTask(progress, task_id)
            finally:
                self._active = None


QUIET = Feedback(quiet=True)

ProgressStyle = Literal["rich", "log"]


def as_feedback(progress: ProgressStyle | Feedback | None) -> Feedback:
    """The Python API's `progress=`: "rich" bars, "log" plain lines (on stderr), None silence, or a Feedback."""
    if isinstance(progress, Feedback):
        return progress
    if progress is None:
        return QUIET
    if progress not in ("rich", "log"):
        raise ValueError(f"progress must be 'rich', 'log', None or a Feedback, not {progress!r}")
    return Feedback(bars=progress == "rich")

