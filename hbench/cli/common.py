"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hbench.ui import Feedback

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or log lines (errors still print).")]
Home = Annotated[
    Path | None,
    typer.Option("--home", envvar="HBENCH_HOME", help="Where raw and prepared data live (default: user cache dir).",
                 show_default=False),
]


def feedback(quiet: bool) -> Feedback:
    return Feedback(quiet=quiet)
