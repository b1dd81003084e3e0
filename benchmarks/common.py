"""Helpers shared by the benchmark scripts: machine description and result recording."""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()),
        "torch": torch.__version__,
        "python": platform.python_version(),
        # Other work on the machine skews timings: say how busy it was.
        "load_average_1min": f"{os.getloadavg()[0]:.2f}",
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def record(name: str, table_markdown: str, numbers: dict) -> Path:
    """Append the run to benchmarks/results/<name>.md (human) and <name>.jsonl (machine)."""
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    info = machine()
    header = ", ".join(f"{k}: {v}" for k, v in info.items())
    with open(RESULTS / f"{name}.md", "a") as fh:
        fh.write(f"\n## {stamp}\n\n{header}\n\n{table_markdown}\n")
    with open(RESULTS / f"{name}.jsonl", "a") as fh:
        fh.write(json.dumps({"time": stamp, "machine": info, **numbers}) + "\n")
    return RESULTS / f"{name}.md"
