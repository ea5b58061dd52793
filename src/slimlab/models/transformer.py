"""A tiny transformer encoder for signals such as MNIST-1D, with dense or Switch FFNs.

A (batch, length) or (batch, channels, length) input is cut into patches of `patch` points, each patch a
token (length 40, patch 4: ten tokens). Tokens are embedded, given a learned position, and pass through
pre-LayerNorm blocks (attention, then FFN, each around a residual connection); the mean token goes to a
linear classifier. With `ffn = "switch"`, every `switch_every`-th block's FFN is a `SwitchFFN` whose
experts have the dense FFN's shape, so the FLOPs per token are the dense model's (plus the router).
Attention is written out (q·kᵀ, softmax, ·v) rather than through a fused kernel, so that
torch's FLOP counter sees it, and the whole model reads in one sitting.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor, nn

from slimlab.models.registry import MODELS, ModelParams, ModelSpec
from slimlab.models.switch import SwitchFFN, reduced_init_


class TransformerParams(ModelParams):
    d_model: int = Field(default=32, gt=0)
    num_heads: int = Field(default=4, gt=0)
    num_layers: int = Field(default=2, gt=0)
    d_ff: int = Field(default=64, gt=0, description="FFN width; each expert has the same")
    patch: int = Field(default=4, gt=0, description="points per token")
    dropout: float = Field(default=0.0, ge=0, lt=1, description="outside the experts")
    init_scale: float = Field(default=0.1, gt=0, description="σ = sqrt(s / fan_in), for every layer")
    ffn: Literal["dense", "switch"] = "dense"
    num_experts: int = Field(default=8, ge=1)
    switch_every: int = Field(default=1, ge=1, description="1: every FFN is Switch; 2: every other one")
    capacity_factor: float = Field(default=1.25, gt=0)
    eval_capacity_factor: float | None = Field(default=None, gt=0, description="default: capacity_factor")
    alpha: float = Field(default=0.01, ge=0, description="load-balancing loss weight")
    z_loss: float = Field(default=1e-3, ge=0, description="router z-loss weight")
    jitter: float = Field(default=0.0, ge=0, lt=1, description="multiplicative router jitter")
    expert_dropout: float = Field(default=0.0, ge=0, lt=1)

    @model_validator(mode="after")
    def _heads_divide(self) -> TransformerParams:
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})")
        return self

    def switch_kwargs(self) -> dict:
        return {
            "capacity_factor": self.capacity_factor,
            "eval_capacity_factor": self.eval_capacity_factor,
            "alpha": self.alpha,
            "z_loss": self.z_loss,
            "jitter": self.jitter,
            "expert_dropout": self.expert_dropout,
            "init_scale": self.init_scale,
        }


class DenseFFN(nn.Module):
    def __init__(self, d_model: int, d_ff: int, init_scale: float):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)
        for layer in (self.fc1, self.fc2):
            reduced_init_(layer.weight, layer.in_features, init_scale)
            nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SelfAttention(nn.Module):
    def __init__(self, d_model: int, num_heads: int, init_scale: float):
        super().__init__()
        self.num_heads = num_heads
        self.qkv, self.proj = nn.Linear(d_model, 3 * d_model), nn.Linear(d_model, d_model)
        for layer in (self.qkv, self.proj):
            reduced_init_(layer.weight, layer.in_features, init_scale)
            nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor) -> Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.num_heads)
        out = attn.softmax(-1) @ v
        return self.proj(out.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, params: TransformerParams, ffn: nn.Module):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(params.d_model), nn.LayerNorm(params.d_model)
        self.attn = SelfAttention(params.d_model, params.num_heads, params.init_scale)
        self.ffn = ffn
        self.drop = nn.Dropout(params.dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop(self.attn(self.ln1(x)))
        return x + self.drop(self.ffn(self.ln2(x)))  # a token the Switch layer dropped passes unchanged


class TinyTransformer(nn.Module):
    def __init__(self, in_channels: int, length: int, num_classes: int, params: TransformerParams):
        super().__init__()
        if length % params.patch:
            raise ValueError(f"input length {length} is not a multiple of `model.patch` ({params.patch})")
        self.patch, self.in_channels = params.patch, in_channels
        tokens = length // params.patch
        self.embed = nn.Linear(in_channels * params.patch, params.d_model)
        self.position = nn.Parameter(torch.zeros(tokens, params.d_model))
        nn.init.normal_(self.position, std=0.02)
        blocks = []
        for i in range(params.num_layers):
            switch = params.ffn == "switch" and i % params.switch_every == params.switch_every - 1
            ffn: nn.Module = (
                SwitchFFN(params.d_model, params.d_ff, params.num_experts, **params.switch_kwargs())
                if switch
                else DenseFFN(params.d_model, params.d_ff, params.init_scale)
            )
            blocks.append(Block(params, ffn))
        self.blocks = nn.Sequential(*blocks)
        self.ln = nn.LayerNorm(params.d_model)
        self.head = nn.Linear(params.d_model, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(1)
        b, c, length = x.shape
        tokens = (
            x.view(b, c, length // self.patch, self.patch).permute(0, 2, 1, 3).reshape(b, -1, c * self.patch)
        )
        h = self.blocks(self.embed(tokens) + self.position)
        return self.head(self.ln(h).mean(1))


def _build(params: TransformerParams, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    in_channels, length = (1, input_shape[0]) if len(input_shape) == 1 else input_shape
    return TinyTransformer(in_channels, length, num_classes, params)


MODELS.register("transformer", description="a tiny transformer encoder with dense or Switch FFNs")(
    ModelSpec(TransformerParams, _build)
)
