"""The Switch feed-forward layer (Fedus, Zoph & Shazeer, JMLR 2022): top-1 routing to one of N experts.

Each token goes to the expert with the highest router probability p_i and comes out as p_i · E_i(x).
An expert takes at most `capacity = ceil(tokens / N × capacity_factor)` tokens of a batch; a token past
its expert's capacity is *dropped*: this layer returns zero for it, so the residual connection around the
layer carries it through unchanged. What the paper prescribes, and where it is here:

- the router runs in float32 even under autocast (an all-bf16 router diverged in the paper): `_route`;
- the auxiliary load-balancing loss α · N · Σ_i f_i · P_i (f_i: the fraction of tokens whose top-1 choice
  is expert i, before capacity; P_i: the mean router probability of expert i), α = 0.01, and ST-MoE's
  router z-loss (the mean squared log-sum-exp of the router logits): `load_balancing_loss`, `router_z_loss`;
- the reduced initialization scale: truncated normal with σ = sqrt(s / fan_in), s = 0.1;
- dropout inside the experts (`expert_dropout`; the paper fine-tunes with 0.4 inside and 0.1 outside);
- multiplicative router jitter, uniform in [1 − ε, 1 + ε] on the router's input, in training only;
- batched experts: tokens are dispatched into a padded (N, capacity, d) buffer and every expert runs in
  one batched matmul (`torch.baddbmm`); there is no Python loop over tokens or experts.

The auxiliary losses reach the optimizer without the trainer knowing about them: the layer's output passes
through `_AddAuxLoss`, which is the identity forward and gives the auxiliary loss a gradient of 1 backward,
exactly as if it had been added to the training loss. So slimlab's `Trainer`, a treatment's fine-tuning or
a user's own loop all train the router with its losses. Outside of training (no grad) nothing is added.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def reduced_init_(tensor: Tensor, fan_in: int, scale: float) -> Tensor:
    """Truncated normal (at ±2σ) with σ = sqrt(scale / fan_in): the paper's reduced initialization."""
    std = math.sqrt(scale / fan_in)
    with torch.no_grad():
        return nn.init.trunc_normal_(tensor, std=std, a=-2 * std, b=2 * std)


def expert_capacity(num_tokens: int, num_experts: int, capacity_factor: float) -> int:
    """Tokens each expert may take from a batch: ceil(tokens / experts × capacity factor), at least 1."""
    return max(1, math.ceil(num_tokens / num_experts * capacity_factor))


def load_balancing_loss(probs: Tensor, expert_index: Tensor, num_experts: int) -> Tensor:
    """N · Σ_i f_i · P_i (without α). With a uniform assignment and uniform probabilities it is exactly 1.
    When the router is confident (p close to one-hot) it is N · Σ f_i², which is at least 1 with equality
    only for a uniform assignment. (With soft probabilities the minimum over all routers can dip below 1,
    e.g. N = 2, f = (0.9, 0.1) with p = (0.5, 0.5) on the 90% gives 0.92; the paper's gradient still pushes
    f towards uniform, which a test checks.)"""
    f = F.one_hot(expert_index, num_experts).float().mean(0)
    p = probs.float().mean(0)
    return num_experts * torch.sum(f * p)


def router_z_loss(logits: Tensor) -> Tensor:
    """ST-MoE's z-loss: the mean of logsumexp(logits)², which keeps router logits small."""
    return torch.logsumexp(logits.float(), dim=-1).square().mean()


class _AddAuxLoss(torch.autograd.Function):
    """Identity on `x` forward; backward, the scalar `aux` receives a gradient of 1, as if it were added
    to whatever loss the caller minimizes."""

    @staticmethod
    def forward(ctx, x: Tensor, aux: Tensor) -> Tensor:  # type: ignore[override]
        ctx.aux_meta = (aux.dtype, aux.device, aux.shape)
        return x.clone()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        dtype, device, shape = ctx.aux_meta
        return grad, torch.ones(shape, dtype=dtype, device=device)


class SwitchFFN(nn.Module):
    """A drop-in replacement for a transformer's dense FFN (d_model → d_ff → d_model) with `num_experts`
    experts of the same shape. FLOPs per token equal the dense FFN's (plus the d_model × N router).

    After every forward pass, `last_stats` holds the routing of that batch (tokens, dropped, per-expert
    counts), and while `track_load` is on the counts are also summed into `load_counts` / `load_dropped`.
    """

    def __init__(
        self,
        d_model: int,
        d_ff: int,
        num_experts: int,
        *,
        capacity_factor: float = 1.25,
        eval_capacity_factor: float | None = None,
        alpha: float = 0.01,
        z_loss: float = 1e-3,
        jitter: float = 0.0,
        expert_dropout: float = 0.0,
        init_scale: float = 0.1,
        gate_scale: float = 1.0,
    ):
        super().__init__()
        if num_experts < 1:
            raise ValueError(f"num_experts must be at least 1; got {num_experts}")
        if capacity_factor <= 0 or (eval_capacity_factor is not None and eval_capacity_factor <= 0):
            raise ValueError("capacity factors must be positive")
        self.d_model, self.d_ff, self.num_experts = d_model, d_ff, num_experts
        self.capacity_factor = capacity_factor
        self.eval_capacity_factor = eval_capacity_factor
        self.alpha, self.z_loss, self.jitter = alpha, z_loss, jitter
        # Upcycling (treatments/moe.py) copies a dense FFN into every expert and sets gate_scale = N, so
        # that p_i · N ≈ 1 while the fresh router is still near-uniform: the layer starts as the dense one.
        self.gate_scale = gate_scale
        self.router = nn.Linear(d_model, num_experts, bias=False)
        self.w1 = nn.Parameter(torch.empty(num_experts, d_model, d_ff))
        self.b1 = nn.Parameter(torch.zeros(num_experts, d_ff))
        self.w2 = nn.Parameter(torch.empty(num_experts, d_ff, d_model))
        self.b2 = nn.Parameter(torch.zeros(num_experts, d_model))
        self.dropout = nn.Dropout(expert_dropout)
        reduced_init_(self.router.weight, d_model, init_scale)
        reduced_init_(self.w1, d_model, init_scale)
        reduced_init_(self.w2, d_ff, init_scale)
        self.track_load = False
        self.reset_load()
        self.last_stats: dict[str, object] = {}
        self.aux_loss: Tensor | None = None

    def extra_repr(self) -> str:
        return (
            f"d_model={self.d_model}, d_ff={self.d_ff}, experts={self.num_experts}, "
            f"capacity_factor={self.capacity_factor}, alpha={self.alpha}, z_loss={self.z_loss}"
        )

    def reset_load(self) -> None:
        self.load_counts = torch.zeros(self.num_experts, dtype=torch.long)
        self.load_dropped = 0
        self.load_tokens = 0

    def _route(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """Router logits and probabilities in float32, whatever autocast is doing around us."""
        with torch.autocast(device_type=tokens.device.type, enabled=False):
            x = tokens.float()
            if self.training and self.jitter > 0:
                x = x * torch.empty_like(x).uniform_(1 - self.jitter, 1 + self.jitter)
            logits = F.linear(x, self.router.weight.float())
            return logits, torch.softmax(logits, dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        tokens = x.reshape(-1, self.d_model)
        n, experts = tokens.shape[0], self.num_experts
        logits, probs = self._route(tokens)
        gate, expert = probs.max(dim=-1)
        factor = self.capacity_factor
        if not self.training and self.eval_capacity_factor is not None:
            factor = self.eval_capacity_factor
        capacity = expert_capacity(n, experts, factor)

        # Each token's place in its expert's queue (0-based, in token order): a cumulative count.
        one_hot = F.one_hot(expert, experts)
        position = ((one_hot.cumsum(0) - 1) * one_hot).sum(-1)
        kept = position < capacity
        slot = (expert * capacity + position)[kept]

        # Dispatch into a padded (experts, capacity, d) buffer; run all experts in two batched matmuls.
        buffer = tokens.new_zeros(experts * capacity, self.d_model)
        buffer = buffer.index_copy(0, slot, tokens[kept])
        buffer = buffer.view(experts, capacity, self.d_model)
        hidden = F.gelu(
            torch.baddbmm(self.b1.unsqueeze(1).to(buffer.dtype), buffer, self.w1.to(buffer.dtype))
        )
        hidden = self.dropout(hidden)
        expert_out = torch.baddbmm(self.b2.unsqueeze(1).to(hidden.dtype), hidden, self.w2.to(hidden.dtype))
        combined = expert_out.reshape(experts * capacity, self.d_model).index_select(0, slot)
        weight = (gate[kept] * self.gate_scale).to(combined.dtype).unsqueeze(-1)
        # Dropped tokens stay zero here: the residual connection around this layer carries them.
        out = tokens.new_zeros(n, self.d_model, dtype=combined.dtype).index_copy(
            0, kept.nonzero()[:, 0], combined * weight
        )

        with torch.no_grad():
            counts = torch.bincount(expert[kept], minlength=experts).cpu()
            dropped = int(n - kept.sum())
        self.last_stats = {"tokens": n, "dropped": dropped, "capacity": capacity, "counts": counts.tolist()}
        if self.track_load:
            self.load_counts += counts
            self.load_dropped += dropped
            self.load_tokens += n

        aux = self.alpha * load_balancing_loss(probs, expert, experts) + self.z_loss * router_z_loss(logits)
        self.aux_loss = aux.detach()
        if torch.is_grad_enabled() and self.training and aux.requires_grad:
            out = _AddAuxLoss.apply(out, aux)
        return out.view(*shape[:-1], out.shape[-1])

    @classmethod
    def from_dense(
        cls, fc1: nn.Linear, fc2: nn.Linear, num_experts: int, *, router_init_scale: float = 0.1, **kwargs
    ) -> SwitchFFN:
        """Upcycle a dense FFN (fc1 → GELU → fc2): every expert a copy of its weights, a fresh router with
        the reduced init, and gate_scale = N so that the layer starts close to the dense one."""
        d_model, d_ff = fc1.in_features, fc1.out_features
        layer = cls(
            d_model, d_ff, num_experts, init_scale=router_init_scale, gate_scale=float(num_experts), **kwargs
        )
        with torch.no_grad():
            layer.w1.copy_(fc1.weight.T.unsqueeze(0).expand(num_experts, -1, -1))
            layer.w2.copy_(fc2.weight.T.unsqueeze(0).expand(num_experts, -1, -1))
            layer.b1.copy_((fc1.bias if fc1.bias is not None else torch.zeros(d_ff)).expand(num_experts, -1))
            layer.b2.copy_(
                (fc2.bias if fc2.bias is not None else torch.zeros(d_model)).expand(num_experts, -1)
            )
        return layer.to(fc1.weight.device)


def switch_layers(model: nn.Module) -> list[SwitchFFN]:
    return [m for m in model.modules() if isinstance(m, SwitchFFN)]


def expert_load(model: nn.Module) -> dict[str, object]:
    """The load summed over every Switch layer while `track_load` was on: the fraction of routed tokens per
    expert (per layer) and the share of tokens dropped."""
    layers = switch_layers(model)
    tokens = sum(m.load_tokens for m in layers)
    dropped = sum(m.load_dropped for m in layers)
    fractions = []
    for m in layers:
        routed = int(m.load_counts.sum())
        fractions.append([c / routed if routed else 0.0 for c in m.load_counts.tolist()])
    return {
        "tokens": tokens,
        "dropped": dropped,
        "dropped_fraction": dropped / tokens if tokens else 0.0,
        "fraction_per_expert": fractions,
    }
