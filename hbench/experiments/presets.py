"""Sweep presets: specs hbench builds from what models declare (their ablation variants)."""

from __future__ import annotations

from typing import Any

from hbench.errors import HBenchError
from hbench.experiments.spec import SweepSpec, parse_spec
from hbench.models.registry import available_models, get_model_class


def ablation_spec(model: str, datasets: list[str], seeds: list[int], train: dict[str, Any],
                  protocol: str | None = None, metric: str | None = None) -> SweepSpec:
    """The model's ablation preset (its `ablations` variants) as a sweep without selection."""
    cls = get_model_class(model)
    if not cls.ablations:
        raise HBenchError(f"model {model!r} has no ablation preset (models with one: "
                          f"{', '.join(_models_with_ablations())})")
    return parse_spec({"name": f"ablate-{model}", "datasets": datasets, "seeds": seeds, "train": train,
                       "protocol": protocol, "metric": metric, "select": False,
                       "models": [{"name": model, "variants": cls.ablations}]}, f"ablation preset of {model}")


def _models_with_ablations() -> list[str]:
    return sorted(name for name, cls in available_models().items() if cls.ablations)
