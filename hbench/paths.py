"""Where hbench keeps its files: `HBENCH_HOME` (default: the user cache dir) and offline mirrors."""

from __future__ import annotations

import os
import re
from pathlib import Path

import platformdirs

from hbench.errors import HBenchError

_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_slug(name: object, what: str) -> str:
    """`name`, which becomes a folder name, if it is a plain one: letters, digits, '.', '_' and '-', starting
    with a letter or digit (so never '..', a path or a hidden name); otherwise an HBenchError about `what`."""
    if not isinstance(name, str) or not _SLUG.match(name):
        raise HBenchError(f"{what} {name!r} must be letters, digits, '.', '_' or '-' (starting with a letter or "
                          "digit, at most 128): it names a folder")
    return name


def hbench_home(home: Path | str | None = None) -> Path:
    """The root of raw downloads and prepared datasets: `home`, else `$HBENCH_HOME`, else the user cache."""
    if home is not None:
        return Path(home).expanduser()
    env = os.environ.get("HBENCH_HOME")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("hbench"))


def raw_dir(dataset: str, home: Path | str | None = None) -> Path:
    return hbench_home(home) / "raw" / dataset


def prepared_dir(dataset: str, home: Path | str | None = None) -> Path:
    return hbench_home(home) / "prepared" / dataset


def mirror_dirs(explicit: list[Path] | None = None) -> list[Path]:
    """Local directories searched for raw files before any download: `--source` first, then `$HBENCH_MIRROR`."""
    dirs = list(explicit or [])
    env = os.environ.get("HBENCH_MIRROR", "")
    dirs += [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return dirs
