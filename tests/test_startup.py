"""What starting hbench loads and sets: the command line imports no numerical library until a command runs
(issue 33: every command took 1.1-1.7 s to start, even to reject a mistyped flag; timings are in
benchmarks/cli_startup.py), and `import hbench` points Numba's kernel cache at the user cache directory
(audit R1: the caches written into an installed package broke a later editable install)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import platformdirs
import pytest

HEAVY = ("torch", "numpy", "pandas", "scipy", "numba", "sklearn", "matplotlib", "rich")


def _python(code: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env=env or dict(os.environ))
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_importing_the_cli_loads_no_numerical_library() -> None:
    loaded = json.loads(_python(
        "import sys, json, hbench.cli\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))"))
    assert loaded == []


def test_a_usage_error_loads_no_numerical_library() -> None:
    code = ("import sys, json, hbench.cli\n"
            "try:\n    hbench.cli.main(['table', '--nosuchflag'])\n"
            "except SystemExit as e:\n    code = e.code\n"
            f"print(json.dumps([code, sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))]))")
    assert json.loads(_python(code)) == [2, []]


def _environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), HOME=str(tmp_path / "home"), **extra)
    return env


def test_numba_caches_kernels_in_the_user_cache_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    expected = str(Path(platformdirs.user_cache_dir("hbench")) / "numba")
    env = _environment(tmp_path)
    assert _python("import hbench, numba.core.config as c; print(c.CACHE_DIR)", env) == expected
    # Numba imported first reads its environment again when hbench sets it.
    assert _python("import numba.core.config as c, hbench; print(c.CACHE_DIR)", env) == expected
    # A directory the user chose is kept; an empty value is unset for Numba, so hbench's applies.
    chosen = str(tmp_path / "mine")
    read = "import hbench, numba.core.config as c; print(c.CACHE_DIR)"
    assert _python(read, {**env, "NUMBA_CACHE_DIR": chosen}) == chosen
    assert _python(read, {**env, "NUMBA_CACHE_DIR": ""}) == expected


def test_info_help_shows_the_library_defaults_of_the_hyperbolicity_estimate() -> None:
    """`hbench info` declares copies of the defaults (importing them would load scipy at start-up)."""
    from hbench.cli import datasets as cli
    from hbench.datasets import hyperbolicity

    assert (cli.DEFAULT_SAMPLES, cli.DEFAULT_NODES) == (hyperbolicity.DEFAULT_SAMPLES, hyperbolicity.DEFAULT_NODES)


def test_feedback_opens_its_console_when_it_first_prints(capsys: pytest.CaptureFixture[str]) -> None:
    from hbench.ui import QUIET, Feedback

    Feedback().log("a line")
    QUIET.log("not shown")
    QUIET.warn("shown even when quiet")
    err = capsys.readouterr().err
    assert "a line" in err and "not shown" not in err and "warning: shown even when quiet" in err
