"""The one exception type for mistakes a user can fix (bad flag, missing file, wrong checksum...).

The CLI prints such an error as a single line on stderr and exits non-zero; anything else is a bug
and keeps its traceback.
"""


class HBenchError(Exception):
    """A user-facing error: its message is the whole explanation, printed on one line."""
