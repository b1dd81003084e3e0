"""Where cells run: in this process, in local worker processes, or as Ray tasks.

Every executor calls the same `execute_cell` on plain-data `CellTask`s and reports `CellOutcome`s as
cells end, so results do not depend on the executor: a seed gives the same numbers in any process.
"""

from __future__ import annotations

import base64
import multiprocessing
import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from hbench.atomic import atomic_path
from hbench.errors import HBenchError
from hbench.experiments.orphans import die_with_parent
from hbench.experiments.plan import SweepRun
from hbench.runs import METRICS
from hbench.training.trainer import plan_run, train_planned
from hbench.ui import Feedback

EXECUTORS = ("sequential", "processes", "ray")


@dataclass(frozen=True)
class CellTask:
    cell: SweepRun
    out: str
    home: str | None
    device: str = "auto"
    threads: int | None = None  # torch intra-op threads; None leaves torch's default
    ship: bool = False  # train in a scratch directory and return the files (no shared storage)
    shipped_run: dict[str, str] | None = None  # with ship: an interrupted run's files, for the worker to resume
    log_every: int = 1  # an epoch line in the run's train.log every N epochs
    trackers: tuple[Any, ...] = ()  # hbench.trackers.Tracker (plain data) the run reports to


@dataclass(frozen=True)
class CellOutcome:
    cell: SweepRun
    status: str  # completed | diverged | failed
    path: str | None
    message: str = ""
    seconds: float = 0.0
    files: dict[str, str] | None = None  # relative path -> base64 content, when shipped back


def execute_cell(task: CellTask) -> CellOutcome:
    """Train one cell (resuming it if it was interrupted); never raises, a failure is an outcome."""
    started = time.perf_counter()
    if task.threads is not None:
        torch.set_num_threads(task.threads)
    scratch = tempfile.mkdtemp(prefix="hbench-cell-") if task.ship else None
    out = Path(scratch or task.out)
    home = Path(task.home) if task.home else None
    run_path: Path | None = None
    try:
        if scratch is not None and task.shipped_run:
            unpack_files(task.shipped_run, out)  # resume.pt and all: the worker resumes, as on shared storage
        planned = plan_run(task.cell.model, task.cell.config(task.device), task.cell.options, out=out, home=home)
        run_path = planned.run_dir.path
        # The run's lines go to its train.log (the trainer writes it); the sweep's own log says when cells end.
        feedback = Feedback(quiet=True, bars=False, log_every=task.log_every, trackers=task.trackers)
        result = train_planned(planned, feedback=feedback)
        files = pack_run_files(result.path, out) if task.ship else None
        path = str(Path(task.out) / result.path.relative_to(out)) if task.ship else str(result.path)
        message = result.metrics.get("message", "")
        return CellOutcome(task.cell, result.status, path, message, time.perf_counter() - started, files)
    except Exception as error:  # noqa: BLE001 - one broken cell must not end the sweep
        message = str(error) if isinstance(error, HBenchError) else traceback.format_exc(limit=5)
        # Shipped back, a failed run's last resume state lets the next sweep resume it (shared storage has it).
        files = pack_run_files(run_path, out) if task.ship and run_path is not None and run_path.is_dir() else None
        return CellOutcome(task.cell, "failed", None, message, time.perf_counter() - started, files)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def pack_run_files(run_path: Path, root: Path) -> dict[str, str]:
    """The files of a run directory keyed by their path below `root`, as base64 (to ship between machines)."""
    return {str(p.relative_to(root)): base64.b64encode(p.read_bytes()).decode()
            for p in sorted(run_path.iterdir()) if p.is_file() and not p.name.startswith(".")}


def unpack_files(files: dict[str, str], out: Path) -> None:
    """Write shipped run files under `out` (atomically each; metrics.json, the finished marker, last)."""
    for name in sorted(files, key=lambda n: Path(n).name == METRICS):
        with atomic_path(out / name) as tmp:
            tmp.write_bytes(base64.b64decode(files[name]))


def run_sequential(tasks: Sequence[CellTask], on_start: Callable[[SweepRun], None]) -> Iterator[CellOutcome]:
    for task in tasks:
        on_start(task.cell)
        yield execute_cell(task)


def _gpu_ids() -> list[int]:
    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []


def run_processes(tasks: Sequence[CellTask], jobs: int, on_start: Callable[[SweepRun], None]) -> Iterator[CellOutcome]:
    """`jobs` worker processes; each running cell gets one GPU of its own when there are GPUs, and the CPU
    threads are divided between the workers.

    A worker that dies (killed for memory, a segfault) breaks the whole pool, and the pool cannot say
    which cell killed it: every cell running then is reported failed (each resumes from its last epoch
    on a rerun) and a fresh pool takes the rest of the queue.
    """
    gpus = _gpu_ids()
    threads = max(1, (os.cpu_count() or 1) // jobs)
    queue = list(tasks)
    while queue:
        free_gpus = list(gpus)
        running: dict[Future[CellOutcome], tuple[SweepRun, int | None]] = {}
        # spawn: a fresh interpreter per worker (fork would copy torch's thread pools and CUDA state).
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
            broken = False
            while (queue and not broken) or running:
                while queue and not broken and len(running) < jobs:
                    queued = queue.pop(0)
                    gpu = free_gpus.pop(0) if free_gpus and queued.device in ("auto", "cuda") else None  # cuda:N pins
                    task = replace(queued, threads=threads, device=f"cuda:{gpu}" if gpu is not None else queued.device)
                    try:
                        future = pool.submit(execute_cell, task)
                    except BrokenProcessPool:  # a worker died since the last wait: the next pool runs it
                        queue.insert(0, queued)
                        broken = True
                        break
                    on_start(task.cell)
                    running[future] = (task.cell, gpu)
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    cell, gpu = running.pop(future)
                    if gpu is not None:
                        free_gpus.append(gpu)
                    try:
                        yield future.result()
                    except BrokenProcessPool:
                        broken = True
                        yield CellOutcome(cell, "failed", None, "its worker process died (killed, out of memory "
                                          "or crashed) while this cell ran; a rerun resumes it")


def run_ray(tasks: Sequence[CellTask], address: str | None, cpus_per_cell: float, gpus_per_cell: float,
            on_start: Callable[[SweepRun], None]) -> Iterator[CellOutcome]:
    """Each cell a Ray task with the CPUs/GPUs it needs; Ray schedules them over the cluster."""
    try:
        import ray  # optional and heavy: only the Ray executor needs it
    except ImportError:
        raise HBenchError("the Ray executor needs Ray: pip install 'hbench[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise HBenchError(f"cannot start or reach Ray at {address or 'a new local instance'}: "
                              f"{str(error).splitlines()[0]}") from None
    try:
        remote = ray.remote(num_cpus=cpus_per_cell, num_gpus=gpus_per_cell, max_retries=0)(execute_cell)
        threads = max(1, int(cpus_per_cell))
        pending: dict[Any, SweepRun] = {}
        for task in tasks:
            on_start(task.cell)
            # Ray sets CUDA_VISIBLE_DEVICES per task, so "cuda" is the task's own GPU; an explicit --device wins.
            device = task.device if task.device != "auto" else "cuda" if gpus_per_cell > 0 else "cpu"
            pending[remote.remote(replace(task, threads=threads, device=device))] = task.cell
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                cell = pending.pop(ref)
                try:
                    yield ray.get(ref)
                except Exception as error:  # noqa: BLE001 - a lost worker fails its cell only
                    yield CellOutcome(cell, "failed", None, f"ray task failed: {str(error).splitlines()[0]}")
    finally:
        if started_here:
            ray.shutdown()
