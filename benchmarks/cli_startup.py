"""How long the command line takes to start: `hbench --help`, two usage errors, `--version`, `hbench datasets`,
and `import hbench` (issue 33: the target is under 0.5 s for `--help` and a usage error on a quiet machine).

Each command runs `--repeats` times as a fresh process (the installed `hbench` script, as a user types it), in
an empty folder with an empty HBENCH_HOME; the table gives the median and the fastest wall-clock time, and the
median CPU time (user + system) of the process. The median wall time is what a user waits; on a machine busy
with other work it measures the neighbours as well, while the CPU time stays close to the wall time a quiet
machine gives (start-up is one thread that waits on nothing but the disk). With `--checkout DIR`, every
command is timed a second time with DIR first on PYTHONPATH (another checkout of hbench, say the code before a
change), so that both columns come from the same machine in the same minutes.

    python benchmarks/cli_startup.py [--repeats 15] [--checkout /tmp/old-hbench] [--record]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

try:
    from common import record
except ImportError:  # run as a module
    from benchmarks.common import record

USAGE_MISSING = ["prepare"]  # a missing argument: typer's own usage error, before any hbench code runs
USAGE_FLAG = ["table", "--nosuchflag"]  # an unknown flag


def commands(hbench: list[str]) -> list[tuple[str, list[str]]]:
    """(label, argv) of every timed command; `hbench` is how the entry point is started."""
    return [
        ("python -c pass (the interpreter alone)", [sys.executable, "-c", "pass"]),
        ('python -c "import hbench"', [sys.executable, "-c", "import hbench"]),
        ("hbench --version", [*hbench, "--version"]),
        ("hbench --help", [*hbench, "--help"]),
        ("hbench " + " ".join(USAGE_FLAG) + " (usage error)", [*hbench, *USAGE_FLAG]),
        ("hbench " + " ".join(USAGE_MISSING) + " (usage error)", [*hbench, *USAGE_MISSING]),
        ("hbench datasets", [*hbench, "datasets"]),
    ]


def entry_point() -> list[str]:
    """The `hbench` script installed beside this interpreter, else `python -m hbench`."""
    script = Path(sys.executable).parent / ("hbench.exe" if os.name == "nt" else "hbench")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "hbench"]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_runs(argv: list[str], repeats: int, env: dict[str, str], cwd: Path) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU seconds of `repeats` runs of `argv` (after one untimed run that warms the file cache)."""
    subprocess.run(argv, env=env, cwd=cwd, capture_output=True, check=False)
    wall, cpu = [], []
    for _ in range(repeats):
        cpu_before, start = _children_cpu(), time.perf_counter()
        subprocess.run(argv, env=env, cwd=cwd, capture_output=True, check=False)
        wall.append(time.perf_counter() - start)
        cpu.append(_children_cpu() - cpu_before)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15, help="timed runs of each command")
    parser.add_argument("--checkout", type=Path, help="also time this checkout of hbench (put first on PYTHONPATH)")
    parser.add_argument("--record", action="store_true", help="append the numbers to benchmarks/results/")
    args = parser.parse_args()

    hbench = entry_point()
    variants = [("this install", None)] + ([(f"checkout {args.checkout}", args.checkout.resolve())]
                                           if args.checkout else [])
    rows, numbers = [], []
    with tempfile.TemporaryDirectory() as scratch:
        cwd = Path(scratch)
        for label, argv in commands(hbench):
            row: list[str] = [label]
            for variant, checkout in variants:
                env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
                env["HBENCH_HOME"] = str(cwd / "home")
                if checkout is not None:
                    env["PYTHONPATH"] = str(checkout)
                wall, cpu = time_runs(argv, args.repeats, env, cwd)
                shutil.rmtree(cwd / "home", ignore_errors=True)
                median, fastest, cpu_median = statistics.median(wall), min(wall), statistics.median(cpu)
                row += [f"{median:.3f}", f"{fastest:.3f}", f"{cpu_median:.3f}"]
                numbers.append({"command": label, "variant": variant, "median_s": median, "min_s": fastest,
                                "cpu_median_s": cpu_median, "runs_s": wall, "cpu_s": cpu})
            rows.append(row)
    headers = ["command"] + [f"{what} ({variant})" for variant, _ in variants
                             for what in ("median s", "min s", "CPU median s")]
    table = tabulate(rows, headers=headers, tablefmt="pipe")
    about = f"{args.repeats} runs each, entry point {' '.join(hbench)}"
    print(about)
    print(table)
    if args.record:
        path = record("cli_startup", f"{about}\n\n{table}", {"repeats": args.repeats, "rows": numbers})
        print(f"recorded in {path}")


if __name__ == "__main__":
    main()
