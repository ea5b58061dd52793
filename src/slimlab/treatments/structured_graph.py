"""Structured pruning of any architecture through Torch-Pruning's DependencyGraph: it traces the model on
real example inputs and finds every layer that a removed channel touches (the next Conv2d's inputs, the
BatchNorm after it, both sides of a residual addition, concatenations, an embedding's width, attention
heads), so that the pruned model stays consistent. slimlab's own chain rebuild (structured.py) handles
its reference models; this handles everything else.

`scope="channels"`: the `sparsity` share of output channels of every Conv/Linear group is removed, by
the group's L1/L2 norm, except those of the layer that produces the model's output (its classes or
embedding width are kept). `scope="heads"`: the `sparsity` share of heads of every multi-head attention
(Hugging Face BERT-style `query`/`key`/`value`, or torch's nn.MultiheadAttention) is removed, with the
head size and the model's width kept.
"""

from __future__ import annotations

import fnmatch
from typing import Any

import torch
from torch import nn

from slimlab.data.batches import Inputs, call, first_tensor, to_torch
from slimlab.errors import SlimlabError


def _attention_blocks(model: nn.Module) -> list[nn.Module]:
    """Hugging Face self-attention modules: they hold query, key and value Linear layers and a head count."""
    return [
        m
        for m in model.modules()
        if all(isinstance(getattr(m, a, None), nn.Linear) for a in ("query", "key", "value"))
        and hasattr(m, "num_attention_heads")
    ]


def _output_layers(model: nn.Module, example: Inputs) -> list[nn.Module]:
    """The Linear/Conv layers whose output reaches the model's output without another weight layer: their
    output channels are the classes (or the embedding width) and are never pruned. Found by the last
    weight layer to run in a forward pass."""
    order: list[nn.Module] = []
    hooks = [
        m.register_forward_hook(lambda mod, _i, _o: order.append(mod))
        for m in model.modules()
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding))
    ]
    try:
        with torch.no_grad():
            call(model, example)
    finally:
        for h in hooks:
            h.remove()
    return order[-1:] if order else []


def prune_graph(
    model: nn.Module,
    example: Inputs,
    sparsity: float,
    criterion: str,
    scope: str,
    exclude: list[str],
) -> dict[str, Any]:
    """Prune `model` in place; return what was removed."""
    import torch_pruning as tp

    example = to_torch(example)
    model.eval()
    with torch.no_grad():
        before_out = first_tensor(call(model, example)).shape
    before = sum(p.numel() for p in model.parameters())
    importance = tp.importance.GroupMagnitudeImportance(p=1 if criterion == "l1" else 2)
    excluded = [
        m for name, m in model.named_modules() if name and any(fnmatch.fnmatchcase(name, p) for p in exclude)
    ]
    kwargs: dict[str, Any] = {}
    blocks = _attention_blocks(model)
    if scope == "heads":
        mha = [m for m in model.modules() if isinstance(m, nn.MultiheadAttention)]
        if not blocks and not mha:
            raise SlimlabError("structured_prune scope 'heads': the model has no multi-head attention")
        num_heads: dict[nn.Module, int] = {}
        for block in blocks:
            for layer in (block.query, block.key, block.value):
                num_heads[layer] = block.num_attention_heads
        for m in mha:
            num_heads[m] = m.num_heads
        heads = set(num_heads)
        ignored = [
            m
            for m in model.modules()
            if isinstance(m, (nn.Linear, nn.Conv2d, nn.Conv1d, nn.Embedding)) and m not in heads
        ] + excluded
        kwargs = {
            "num_heads": num_heads,
            "prune_num_heads": True,
            "prune_head_dims": False,
            "head_pruning_ratio": sparsity,
            "pruning_ratio": sparsity,
        }
    else:
        ignored = [*_output_layers(model, example), *excluded]
        kwargs = {"pruning_ratio": sparsity}
    pruner = tp.pruner.MetaPruner(
        model,
        example,
        importance=importance,
        ignored_layers=ignored,
        forward_fn=lambda m, x: call(m, x),
        output_transform=lambda out: first_tensor(out).sum(),
        **kwargs,
    )
    pruner.step()
    heads_after = []
    for block in blocks:
        # Torch-Pruning shrinks the Linear layers; the attention module's own head count must follow.
        block.num_attention_heads = block.query.out_features // block.attention_head_size
        block.all_head_size = block.query.out_features
        heads_after.append(block.num_attention_heads)
    for m in model.modules():
        if isinstance(m, nn.MultiheadAttention) and m in pruner.num_heads:
            m.num_heads = pruner.num_heads[m]
            m.head_dim = m.embed_dim // m.num_heads
    with torch.no_grad():
        after_out = first_tensor(call(model, example)).shape
    if after_out != before_out:
        raise SlimlabError(
            f"structured_prune changed the model's output shape from {tuple(before_out)} to "
            f"{tuple(after_out)}; exclude the layers that produce it (structured_prune.exclude)"
        )
    out: dict[str, Any] = {
        "engine": "torch_pruning.DependencyGraph",
        "scope": scope,
        "params_before": before,
        "params_after": sum(p.numel() for p in model.parameters()),
    }
    if heads_after:
        out["heads_per_attention"] = heads_after
    return out
