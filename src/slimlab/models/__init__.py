"""Reference models. Users may also bring their own nn.Module to every layer below `experiment`."""

from slimlab.models import cnn1d, dlrm, mlp, transformer  # noqa: F401  (register the reference models)
from slimlab.models.registry import MODELS, ModelParams, ModelSpec, build_model

__all__ = ["MODELS", "ModelParams", "ModelSpec", "build_model"]
