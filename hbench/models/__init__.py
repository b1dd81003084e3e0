"""Models. Importing this package registers the built-in ones."""

import hbench.quiet_geoopt  # noqa: F401 - first, so that the models' `import geoopt` is silent
from hbench.models import acf, bpr, cml, hgcf, hyperml, lightgcn, pop, vbpr  # noqa: F401 - registers the built-ins
from hbench.models.base import LossTerms, ModelContext, Recommender, option
from hbench.models.registry import (
    ModelTraits,
    available_models,
    create_model,
    get_model_class,
    model_traits,
    register_model,
)

__all__ = [
    "LossTerms",
    "ModelContext",
    "ModelTraits",
    "Recommender",
    "available_models",
    "create_model",
    "get_model_class",
    "model_traits",
    "option",
    "register_model",
]
