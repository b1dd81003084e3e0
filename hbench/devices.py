"""Choosing the torch device: `auto` is CUDA when present, else the CPU."""

from __future__ import annotations

import torch

from hbench.errors import HBenchError


def resolve_device(device: str | None) -> torch.device:
    """`auto` (or None): CUDA when present, else CPU. An explicit device must exist here.

    Apple's `mps` is used only when asked for: the Poincaré kernels keep norms in float64, which MPS lacks.
    """
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = parse_device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise HBenchError(f"device {device} requested but CUDA is not available here (use --device cpu or auto)")
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise HBenchError(f"device {device} requested but there are {torch.cuda.device_count()} CUDA devices")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise HBenchError(f"device {device} requested but MPS is not available here")
    return resolved


def parse_device(device: str) -> torch.device:
    """The device `device` names, whether or not this machine has it (a Ray worker elsewhere may)."""
    try:
        return torch.device(device)
    except (RuntimeError, ValueError):
        raise HBenchError(f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps") from None


def reproducible_torchscript() -> None:
    """Run TorchScript functions (geoopt's manifold maths) without the profiling optimiser.

    The optimiser rewrites (fuses) a scripted function after its first few calls, which changes float
    rounding: the first run in a process would then differ in the last bits from every later one, and a
    sweep cell run in a fresh worker from the same cell run after others in-process. With the optimiser
    off, a seed gives the same numbers in every process, at no measurable cost for these small functions.
    """
    torch._C._set_graph_executor_optimize(False)
