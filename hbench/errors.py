"""The exception types for failures a user can fix: mistakes (bad flag, missing file, wrong checksum...) and,
as a subtype, a machine that refuses a write (disk full, read-only).

The CLI prints such an error as a single line on stderr and exits non-zero (2 for a mistake, 1 for the
machine); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterable


class HBenchError(Exception):
    """A user-facing error: its message is the whole explanation, printed on one line."""


class EnvironmentFailure(HBenchError):
    """The machine refused a write the user asked for: disk full, quota exceeded, read-only file system, no
    permission. Neither the command's fault nor a bug, so the CLI exits 1 (not 2) with one line that names the
    path the user asked for, never the temporary file behind it (`hbench.atomic`)."""


def closest_names(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """Up to `n` of `choices` that look most like `name` (a typo's likely targets), best first."""
    import difflib

    return difflib.get_close_matches(name, sorted(set(choices)), n=n, cutoff=0.7)
