"""What the hostile-input tests share: a small prepared dataset, a listing of what a command may not touch, and
one CLI call with its exit code and stderr lines."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

from hypothesis import HealthCheck, settings

from hbench.cli import main


def fuzz_settings(examples: int) -> settings:
    """Hypothesis settings for CLI fuzzing: reproducible (derandomised), no deadline (each example starts a
    command), and fixtures shared across examples (every example is checked to leave them unchanged)."""
    return settings(max_examples=examples, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def prepare_tiny(root: Path, **overrides: object) -> Path:
    """Prepare the 150-user hierarchical dataset `tiny` into the cache `root/home` (its file check recorded
    now, not by the commands under test) and return that cache."""
    from hbench.datasets.custom import CustomFiles
    from hbench.datasets.load import load_dataset
    from hbench.datasets.prepare import prepare_dataset
    from hbench.datasets.synthetic import HierarchySpec, generate_interactions

    csv = root / "tiny.csv"
    generate_interactions(HierarchySpec(categories=3, subcategories=3, items_per_subcategory=12, users=150,
                                        seed=7)).to_csv(csv, index=False)
    home = root / "home"
    prepare_dataset("tiny", custom=CustomFiles(name="tiny", interactions=csv), overrides=overrides or None,
                    home=home)
    load_dataset("tiny", home)
    return home


def listing(root: Path) -> dict[str, tuple[int, int]]:
    """Every path below `root` with its size and modification time: what a refused command must leave alone."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def run_cli(args: list[str], home: Path | None) -> tuple[int, str]:
    """`hbench ARGS` with HBENCH_HOME=`home` (as the environment has it when None): (exit code, stderr). stdout
    is discarded."""
    err = io.StringIO()
    old = os.environ.get("HBENCH_HOME")
    if home is not None:
        os.environ["HBENCH_HOME"] = str(home)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                main(args)
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else 0
            else:
                code = 0
    finally:
        if old is None:
            os.environ.pop("HBENCH_HOME", None)
        else:
            os.environ["HBENCH_HOME"] = old
    return code, err.getvalue()


def assert_refused(args: list[str], home: Path | None, untouched: list[Path], code: int = 2) -> None:
    """`hbench ARGS` must end with `code`, exactly one stderr line "error: ..." that is neither a traceback nor an
    "unexpected" error, and leave `home` (when given) and every folder in `untouched` as they were."""
    watched = [*([home] if home is not None else []), *untouched]
    before = [listing(folder) for folder in watched]
    got, err = run_cli(args, home)
    lines = err.strip().splitlines()
    assert got == code, (args, got, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), (args, lines)
    assert "Traceback" not in err and not lines[0].startswith("error: unexpected "), (args, lines)
    for folder, was in zip(watched, before, strict=True):
        assert listing(folder) == was, (args, f"wrote under {folder}")


def is_utf8(data: bytes) -> bool:
    """Whether `data` decodes as UTF-8 (generated binary files must not, to be refused as binary)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
