"""The README's set-up, in order, in one venv: a regular install that compiles a cached kernel, then an editable
install, then `hbench datasets` from another directory (audit R1).

Numba used to write its kernel caches (.nbi/.nbc) into `site-packages/hbench/`; pip cannot remove files it did
not install, so the left-over folder shadowed the editable install and every command failed with
"No module named 'hbench.datasets.catalog'". The venv borrows this interpreter's site-packages through a .pth
file, so nothing is downloaded; hbench itself is installed from a copy of the checkout's files, so the build
writes nothing into the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Compiles `_contains` (hbench/datasets/graph.py, `cache=True`): graph rows 0 -> {1}; (0, 1) is a pair, (0, 0) not.
COMPILE_A_CACHED_KERNEL = """
import numpy as np
import hbench.datasets.graph as graph
found = graph.UserItemGraph(1, 2, np.array([0, 1]), np.array([1])).contains(np.array([0, 0]), np.array([1, 0]))
assert found.tolist() == [True, False], found
print(graph.__file__)
"""


def _checkout_copy(destination: Path) -> Path:
    """The files of the checkout that a build reads (the package and its metadata), copied to `destination`:
    those git tracks or would add (new, not ignored: no caches, no build folders), as they are now."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout to copy the package from")
    command = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--",
               "pyproject.toml", "README.md", "hbench"]
    listed = subprocess.run(command, cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(lambda name: name and (REPO / name).is_file(), listed):  # tracked, maybe deleted
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    return destination


def _environment(tmp_path: Path) -> dict[str, str]:
    """This environment without anything that would let the venv see the checkout or a chosen Numba cache."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "NUMBA_CACHE_DIR", "PYTHONHOME") and not k.startswith("PIP_")}
    env.update(HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "cache"), PIP_DISABLE_PIP_VERSION_CHECK="1",
               PIP_NO_INDEX="1")
    return env


def _run(command: list[str | Path], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(c) for c in command], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


def test_regular_then_editable_install_in_one_venv_keeps_hbench_working(tmp_path: Path) -> None:
    source = _checkout_copy(tmp_path / "checkout")
    env = _environment(tmp_path)
    venv = tmp_path / "venv"
    # No pip of its own (faster): the borrowed site-packages provides pip, setuptools and every dependency.
    _run([sys.executable, "-m", "venv", "--without-pip", venv], env, tmp_path)
    python = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    site_packages = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], env,
                              tmp_path).stdout.strip())
    # Plain path lines: the .pth files of the borrowed folder (this checkout's editable hbench) are not processed.
    (site_packages / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--quiet"]

    _run([*pip, source], env, tmp_path)  # README command 1: a regular install...
    module = Path(_run([python, "-c", COMPILE_A_CACHED_KERNEL], env, tmp_path).stdout.strip().splitlines()[-1])
    installed = site_packages / "hbench"
    assert module.is_relative_to(installed), f"the kernel was not run from the installed package: {module}"
    # ... whose compiled kernels are cached in the user cache directory, not in the package.
    in_package = sorted(str(p.relative_to(installed)) for p in installed.rglob("*") if p.suffix in (".nbi", ".nbc"))
    assert in_package == [], f"Numba cache files written into the installed package: {in_package}"
    user_cache = tmp_path / "cache" / "hbench" / "numba"
    assert list(user_cache.rglob("graph._contains-*.nbi")), f"no kernel cache in {user_cache}"

    _run([*pip, "-e", source], env, tmp_path)  # README command 2 in the same venv: an editable install
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    hbench = venv / ("Scripts" if os.name == "nt" else "bin") / "hbench"
    listed = _run([hbench, "datasets"], env, elsewhere)
    assert "movielens-100k" in listed.stdout
