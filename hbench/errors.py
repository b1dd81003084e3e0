"""The one exception type for mistakes a user can fix (bad flag, missing file, wrong checksum...).

The CLI prints such an error as a single line on stderr and exits non-zero; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterable


class HBenchError(Exception):
    """A user-facing error: its message is the whole explanation, printed on one line."""


def closest_names(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """Up to `n` of `choices` that look most like `name` (a typo's likely targets), best first."""
    import difflib

    return difflib.get_close_matches(name, sorted(set(choices)), n=n, cutoff=0.7)
