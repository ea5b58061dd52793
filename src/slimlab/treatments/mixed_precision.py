"""Mixed precision: int8 everywhere except the k nodes most sensitive to quantization, which stay fp32.

The ranking is `treatments.sensitivity.layer_sensitivity` on the validation split (each node quantized
alone, paired per sample against fp32, with intervals); the k highest-ranked nodes are passed to ONNX
Runtime's QDQ quantizer as `nodes_to_exclude`. The search varies k (`[search] mixed_precision_keep`), and
each candidate is accepted or not by the same Holm-corrected non-inferiority rule as every other.

The kept nodes stay fp32, not bf16: ONNX Runtime's CPU provider has no bf16 Conv/Gemm kernels, so a bf16
node would run through casts and a float kernel, slower than fp32 on this machine.
"""

from __future__ import annotations

import time

import torch
from pydantic import Field
from torch import nn

from slimlab.errors import SlimlabError
from slimlab.treatments.base import TreatmentConfig, TreatmentContext, register_treatment
from slimlab.treatments.ort_qdq import CalibrationName, quantizable_nodes, quantize_qdq
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
    float_only: bool = Field(
        default=False, description="also measure each node kept alone in float (one more graph per node)"
    )


@register_treatment(MixedInt8)
def mixed_int8(model: nn.Module, config: MixedInt8, context: TreatmentContext) -> nn.Module:
    from slimlab.evaluate import count_flops
    from slimlab.treatments.static_quant import OrtModule, calibration_batch, export_onnx

    if context.data is None:
        raise SlimlabError("treatment 'mixed_int8' needs data (calibration and validation splits)")
    if any(p.dtype != torch.float32 for p in model.parameters()) or not any(True for _ in model.parameters()):
        raise SlimlabError(
            "treatment 'mixed_int8' quantizes a float32 model; put it after pruning and fine-tuning, and "
            "not after another quantization or half_precision"
        )
    start = time.perf_counter()
    model = model.cpu().eval()
    calib = calibration_batch(context, config.calibration_samples, config.kind)
    graph = export_onnx(model, calib[:2])
    val = context.data.val
    sensitivity = layer_sensitivity(
        graph,
        calib.numpy(),
        val.x.astype("float32"),
        val.y,
        per_channel=config.per_channel,
        method=config.calibration_method,
        float_only=config.float_only,
        rank_by=config.rank_by,
    )
    nodes = [name for name, _ in quantizable_nodes(graph)]
    if config.keep_float > len(nodes):
        raise SlimlabError(
            f"treatment 'mixed_int8': keep_float={config.keep_float} but the model has only {len(nodes)} "
            f"quantizable nodes"
        )
    kept = sensitivity["ranking"][: config.keep_float]
    quantized = quantize_qdq(
        graph,
        calib.numpy(),
        per_channel=config.per_channel,
        method=config.calibration_method,
        nodes_to_exclude=kept,
    )
    info = {
        "engine": "onnxruntime",
        "format": "QDQ",
        "kept_float": kept,
        "flops_batch1": count_flops(model, calib[:1]),
    }
    context.artifacts["mixed_int8"] = {
        "kept_float": kept,
        "quantized_nodes": [n for n in nodes if n not in kept],
        "calibration": {
            "samples": len(calib),
            "seed": context.seed,
            "split": "train",
            "method": config.calibration_method,
            "per_channel": config.per_channel,
        },
        "sensitivity": sensitivity,
        "seconds": round(time.perf_counter() - start, 3),
    }
    return OrtModule(quantized, info)
