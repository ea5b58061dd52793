"""Where a DLRM's time goes: the embedding lookups, the bottom MLP, and the interaction + top MLP, timed
apart on the same batch (each stage is called on its own, with its real inputs, in eval mode).

The three stages are what Facebook's deployment papers separate (lookups are memory-bound, MLPs are
compute-bound), and what the embedding and MLP treatments act on; the sum is close to, but not exactly,
the whole forward (one call has less Python overhead than three).
"""

from __future__ import annotations

import torch
from torch import nn

from slimlab.bench.latency import measure


@torch.inference_mode()
def dlrm_stage_times(
    model: nn.Module,
    dense: torch.Tensor,
    sparse: torch.Tensor,
    *,
    min_time_s: float = 0.05,
    min_iters: int = 10,
    warmup_iters: int = 3,
) -> dict[str, float] | None:
    """p50 milliseconds of each stage and of the whole forward for one batch, or None if `model` holds
    no DLRM (e.g. after a treatment that replaced it by an ONNX Runtime session)."""
    from slimlab.models.dlrm import unpack_dlrm

    dlrm = unpack_dlrm(model)
    if dlrm is None:
        return None
    was_training = dlrm.training
    dlrm.eval()
    try:
        bottom = dlrm.bottom(dense)
        embedded = dlrm.embed(sparse)
        kwargs = {"min_time_s": min_time_s, "min_iters": min_iters, "warmup_iters": warmup_iters}
        times = {
            "embedding_ms": measure(lambda: dlrm.embed(sparse), **kwargs),
            "bottom_mlp_ms": measure(lambda: dlrm.bottom(dense), **kwargs),
            "interaction_top_mlp_ms": measure(lambda: dlrm.top(dlrm.interact(bottom, embedded)), **kwargs),
            "forward_ms": measure(lambda: dlrm(dense, sparse), **kwargs),
        }
    finally:
        dlrm.train(was_training)
    out = {name: round(latency.percentile_ms(50), 4) for name, latency in times.items()}
    out["batch_size"] = len(dense)
    stages = out["embedding_ms"] + out["bottom_mlp_ms"] + out["interaction_top_mlp_ms"]
    out["embedding_share"] = round(out["embedding_ms"] / stages, 4) if stages > 0 else None
    return out
