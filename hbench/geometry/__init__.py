"""Scoring geometries: how a user and an item representation turn into a relevance score."""

from hbench.geometry.scoring import DotProduct, Geometry, PoincareDistance, SquaredEuclidean

__all__ = ["DotProduct", "Geometry", "PoincareDistance", "SquaredEuclidean"]
