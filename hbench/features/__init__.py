"""Image features of items: pretrained encoders (`encoders`) and cached, resumable extraction (`extract`).

    from hbench.features import dataset_features, load_features
    artifact = dataset_features(dataset, "efficientnet_lite0")   # <dataset>/features/<encoder>-<key>/
    features = load_features(dataset)                              # float32 [n_items, dim]

Heavy imports (torch, torchvision, timm) happen on first use, not on `import hbench.features`.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "DEFAULT_ENCODER",
    "ENCODERS",
    "Encoder",
    "FeatureArtifact",
    "dataset_features",
    "extract_features",
    "find_features",
    "get_encoder",
    "image_items",
    "list_encoders",
    "load_features",
]

_ENCODERS = {"DEFAULT_ENCODER", "ENCODERS", "Encoder", "get_encoder", "list_encoders"}


def __getattr__(name: str) -> Any:
    if name in _ENCODERS:
        from hbench.features import encoders

        return getattr(encoders, name)
    if name in __all__:
        from hbench.features import extract

        return getattr(extract, name)
    raise AttributeError(f"module 'hbench.features' has no attribute {name!r}")
