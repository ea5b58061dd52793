"""A small 1D CNN. The defaults are the MNIST-1D paper's reference CNN: three Conv1d layers of 25 channels
with stride 2 (kernel 5, then 3), ReLU, and a linear classifier on the flattened features."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor, nn

from slimlab.models.registry import MODELS, ModelParams, ModelSpec


class CNN1dParams(ModelParams):
    channels: int = Field(default=25, gt=0)
    num_layers: int = Field(default=3, gt=0)
    first_kernel_size: int = Field(default=5, gt=0)
    kernel_size: int = Field(default=3, gt=0)
    stride: int = Field(default=2, gt=0)


class CNN1d(nn.Module):
    def __init__(self, in_channels: int, length: int, num_classes: int, params: CNN1dParams):
        super().__init__()
        convs: list[nn.Module] = []
        width = in_channels
        for i in range(params.num_layers):
            k = params.first_kernel_size if i == 0 else params.kernel_size
            convs += [nn.Conv1d(width, params.channels, k, stride=params.stride, padding=1), nn.ReLU()]
            width = params.channels
        self.features = nn.Sequential(*convs)
        with torch.no_grad():
            flat = self.features(torch.zeros(1, in_channels, length)).numel()
        self.classifier = nn.Linear(flat, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:  # (batch, length) signals get a channel axis
            x = x.unsqueeze(1)
        return self.classifier(self.features(x).flatten(1))


def _build(params: CNN1dParams, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    in_channels, length = (1, input_shape[0]) if len(input_shape) == 1 else input_shape
    return CNN1d(in_channels, length, num_classes, params)


MODELS.register("cnn1d")(ModelSpec(CNN1dParams, _build))
