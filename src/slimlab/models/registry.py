"""Reference models by name: each has a pydantic model of its hyperparameters and a builder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict
from torch import nn

from slimlab.registry import Registry


class ModelParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass(frozen=True)
class ModelSpec:
    params: type[ModelParams]
    build: Callable[[ModelParams, tuple[int, ...], int], nn.Module]


MODELS: Registry[ModelSpec] = Registry("model")


def build_model(name: str, params: dict, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """A fresh, randomly initialised model. Seed torch before calling it for a reproducible init."""
    spec = MODELS.get(name, where="model.name")
    return spec.build(spec.params(**params), input_shape, num_classes)
