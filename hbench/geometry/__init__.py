"""Scoring geometries: how a user and an item representation turn into a relevance score."""

from hbench.geometry.representations import Representations
from hbench.geometry.scoring import (
    GEOMETRY_FAMILIES,
    DotProduct,
    Geometry,
    GeometryFamily,
    PoincareDistance,
    SquaredEuclidean,
)

__all__ = [
    "GEOMETRY_FAMILIES",
    "DotProduct",
    "Geometry",
    "GeometryFamily",
    "PoincareDistance",
    "Representations",
    "SquaredEuclidean",
]
