"""Mixed precision: int8 everywhere except the k nodes most sensitive to quantization, which stay fp32.

The ranking is `treatments.sensitivity.layer_sensitivity` on the validation split (each node quantized
alone, paired per sample against fp32, with intervals); the k highest-ranked nodes are passed to ONNX
Runtime's QDQ quantizer as `nodes_to_exclude`. The nodes are scored on the run's metric (accuracy with
McNemar's test for a classifier; for a pretrained encoder without labels, the per-sentence cosine of the
embedding to the fp32 one). `op_types` limits the ranked and quantized nodes to those op types, as for
`static_int8` (MiniLM: `op_types = ["MatMul"]`). A model with several inputs (token ids and an attention
mask) is exported and calibrated with all of them, as `static_int8` does. The search varies k
(`[search] mixed_precision_keep`), and each candidate is accepted or not by the same Holm-corrected
non-inferiority rule as every other.

`scheme = "dynamic"` quantizes the other nodes with ONNX Runtime's dynamic int8 instead (activations
quantized per batch, no calibrated ranges): on MiniLM, ORT's dynamic int8 is the fastest one-step cell, and
its cosine drop comes from the same few MatMuls. The ranking is still the static (QDQ) one: each node
quantized alone with calibrated ranges, which measures how much that node's weights and inputs lose to int8.

The kept nodes stay fp32, not bf16: ONNX Runtime's CPU provider has no bf16 Conv/Gemm kernels, so a bf16
node would run through casts and a float kernel, slower than fp32 on this machine.
"""

from __future__ import annotations

import time
from typing import Literal

import numpy as np
from pydantic import Field
from torch import nn

from slimlab.data.batches import as_float32, n_rows, take, to_numpy
from slimlab.errors import SlimlabError
from slimlab.treatments.base import TreatmentConfig, TreatmentContext, register_treatment
from slimlab.treatments.ort_qdq import (
    QUANTIZABLE_OPS,
    CalibrationName,
    quantizable_nodes,
    quantize_dynamic_graph,
    quantize_qdq,
)
from slimlab.treatments.sensitivity import RankBy, layer_sensitivity


class MixedInt8(TreatmentConfig):
    """Static QDQ int8 with the `keep_float` most quantization-sensitive nodes left in fp32, calibrated on
    `calibration_samples` training samples drawn with the trial seed."""

    kind = "mixed_int8"
    keep_float: int = Field(default=1, ge=0, description="how many of the most sensitive nodes stay fp32")
    calibration_samples: int = Field(default=512, gt=0, description="training samples used to calibrate")
    per_channel: bool = True
    calibration_method: CalibrationName = "minmax"
    rank_by: RankBy = "sqnr"
    # ONNX op types that are ranked and quantized ("MatMul", "Conv", "Gemm", ...); default: Conv, Gemm and
    # MatMul are ranked, and every op type ONNX Runtime quantizes is quantized.
    op_types: list[str] | None = Field(default=None, min_length=1, description="quantize only these op types")
    float_only: bool = Field(
        default=False, description="also measure each node kept alone in float (one more graph per node)"
    )
    scheme: Literal["static", "dynamic"] = Field(
        default="static",
        description="how the other nodes are quantized: static QDQ (calibrated) or ORT's dynamic int8",
    )


@register_treatment(MixedInt8)
def mixed_int8(model: nn.Module, config: MixedInt8, context: TreatmentContext) -> nn.Module:
    from slimlab.treatments.static_quant import (
        OrtModule,
        _flops_or_none,
        calibration_batch,
        export_onnx,
        require_float32,
    )

    if context.data is None:
        raise SlimlabError("treatment 'mixed_int8' needs data (calibration and validation splits)")
    require_float32(model, "'mixed_int8'")
    start = time.perf_counter()
    model = model.cpu().eval()
    calib = calibration_batch(context, config.calibration_samples, config.kind)
    graph = export_onnx(model, take(calib, slice(0, 2)))
    nodes = [name for name, _ in quantizable_nodes(graph, config.op_types)]
    if config.keep_float > len(nodes):
        raise SlimlabError(
            f"treatment 'mixed_int8': keep_float={config.keep_float} but the model has only {len(nodes)} "
            "quantizable nodes" + (f" of op types {config.op_types}" if config.op_types else "")
        )
    val = context.data.val
    # Labels to score on: a classifier's classes or a regression's targets; a pretrained encoder's data
    # carries placeholder integer targets and no classes, and is scored on fidelity to fp32.
    labelled = context.data.num_classes > 0 or not np.issubdtype(np.asarray(val.y).dtype, np.integer)
    calibration = to_numpy(calib)
    sensitivity = layer_sensitivity(
        graph,
        calibration,
        as_float32(val.x),
        val.y if labelled else None,
        metric=context.metric,
        op_types=config.op_types,
        per_channel=config.per_channel,
        method=config.calibration_method,
        float_only=config.float_only,
        rank_by=config.rank_by,
    )
    kept = sensitivity["ranking"][: config.keep_float]
    if config.scheme == "dynamic":
        quantized = quantize_dynamic_graph(graph, config.op_types or QUANTIZABLE_OPS, nodes_to_exclude=kept)
    else:
        quantized = quantize_qdq(
            graph,
            calibration,
            per_channel=config.per_channel,
            method=config.calibration_method,
            nodes_to_exclude=kept,
            op_types=config.op_types,
        )
    info = {
        "engine": "onnxruntime",
        "format": "QDQ" if config.scheme == "static" else "dynamic int8",
        "quantized": True,
        "kept_float": kept,
        "flops_batch1": _flops_or_none(model, take(calib, slice(0, 1))),
    }
    context.artifacts["mixed_int8"] = {
        "kept_float": kept,
        "quantized_nodes": [n for n in nodes if n not in kept],
        "scheme": config.scheme,
        # The calibration sample ranks the nodes; with the static scheme it also sets the int8 ranges.
        "calibration": {
            "samples": n_rows(calib),
            "seed": context.seed,
            "split": "train",
            "method": config.calibration_method,
            "per_channel": config.per_channel,
        },
        "sensitivity": sensitivity,
        "seconds": round(time.perf_counter() - start, 3),
    }
    return OrtModule(quantized, info)
