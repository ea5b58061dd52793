"""A multilayer perceptron. With hidden=[100, 100] it is the MNIST-1D paper's MLP baseline."""

from __future__ import annotations

import math

from pydantic import Field
from torch import Tensor, nn

from slimlab.models.registry import MODELS, ModelParams, ModelSpec


class MLPParams(ModelParams):
    hidden: list[int] = Field(default=[100, 100], description="width of each hidden layer")
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)


class MLP(nn.Module):
    def __init__(self, in_features: int, hidden: list[int], num_classes: int, dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1))


def _build(params: MLPParams, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return MLP(math.prod(input_shape), list(params.hidden), num_classes, params.dropout)


MODELS.register("mlp")(ModelSpec(MLPParams, _build))
