"""Per-layer quantization sensitivity, with intervals: which node's int8 kernel costs the accuracy.

For each node that ONNX Runtime's QDQ quantizer would quantize (Conv, Gemm, MatMul), two graphs are built
from the fp32 graph, with the same calibration batch and settings:

- `alone`: only this node quantized, everything else fp32 (AIMET QuantAnalyzer's per-layer view);
- `float_only` (optional): every node quantized except this one (NNCF's accuracy control reverts layers to
  float in this way).

Each graph is scored on the validation split, paired per sample with the fp32 graph: the accuracy change,
McNemar's exact test and a BCa bootstrap interval over the validation samples (`slimlab.stats.mcnemar_exact`),
and the output error against fp32 on the logits (SQNR in dB, and MSE). Validation, never test: the ranking
chooses which layers stay in float, so it is a selection (Lones 3.7).

The ranking is by `alone` SQNR, lowest (most error) first, unless `rank_by="metric"` (the accuracy change,
most harmful first, SQNR breaking ties). SQNR is the default because on a few hundred validation samples
one node's accuracy change is usually within a sample or two of zero, while its output error is measured
on every logit; the intervals of the accuracy changes are recorded beside it so that a reader sees when a
ranking rests on noise.
"""

from __future__ import annotations

import hashlib
import math
from typing import Literal

import numpy as np

from slimlab.treatments.ort_qdq import CalibrationName, quantizable_nodes, quantize_qdq, run_graph

RankBy = Literal["sqnr", "metric"]
_CACHE: dict[str, dict] = {}  # candidates of one seed share the fp32 graph: analyse it once per process
_CACHE_SIZE = 16


def output_error(reference: np.ndarray, approx: np.ndarray) -> dict[str, float | None]:
    """SQNR (dB; None when the outputs are identical) and MSE of `approx` against `reference`."""
    noise = float(np.sum((reference.astype(np.float64) - approx) ** 2))
    signal = float(np.sum(reference.astype(np.float64) ** 2))
    sqnr = 10 * math.log10(signal / noise) if noise > 0 and signal > 0 else None
    return {"sqnr_db": sqnr, "mse": noise / reference.size if reference.size else None}


def _score(logits: np.ndarray, reference: np.ndarray, y: np.ndarray, correct_fp32: np.ndarray, alpha: float):
    from slimlab.stats import mcnemar_exact

    correct = logits.argmax(1) == y
    test = mcnemar_exact(correct, correct_fp32, alpha=alpha)
    return {
        "accuracy": float(correct.mean()),
        "delta": test.delta,
        "ci": [test.ci[0], test.ci[1]],
        "p_value": test.p_value,
        "test": test.test,
        **output_error(reference, logits),
    }


def layer_sensitivity(
    graph: bytes,
    calibration: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    per_channel: bool = True,
    method: CalibrationName = "minmax",
    float_only: bool = False,
    rank_by: RankBy = "sqnr",
    alpha: float = 0.05,
) -> dict:
    """Each quantizable node's effect on validation accuracy and on the logits, ranked (see module doc)."""
    key = hashlib.sha256(
        graph
        + calibration.tobytes()
        + x_val.tobytes()
        + y_val.tobytes()
        + repr((per_channel, method, float_only, rank_by, alpha)).encode()
    ).hexdigest()
    if key in _CACHE:
        return _CACHE[key]
    reference = run_graph(graph, x_val)
    correct_fp32 = reference.argmax(1) == y_val
    settings = {"per_channel": per_channel, "method": method}
    full = run_graph(quantize_qdq(graph, calibration, **settings), x_val)
    layers = []
    for name, op in quantizable_nodes(graph):
        row = {"node": name, "op_type": op}
        alone = quantize_qdq(graph, calibration, nodes_to_quantize=[name], **settings)
        row["alone"] = _score(run_graph(alone, x_val), reference, y_val, correct_fp32, alpha)
        if float_only:
            rest = quantize_qdq(graph, calibration, nodes_to_exclude=[name], **settings)
            row["float_only"] = _score(run_graph(rest, x_val), reference, y_val, correct_fp32, alpha)
        layers.append(row)

    def sqnr(row: dict) -> float:
        value = row["alone"]["sqnr_db"]
        return math.inf if value is None else value

    if rank_by == "metric":
        layers.sort(key=lambda r: (r["alone"]["delta"], sqnr(r)))
    else:
        layers.sort(key=sqnr)
    for rank, row in enumerate(layers, 1):
        row["rank"] = rank
    result = {
        "method": "per-node QDQ int8 on validation: accuracy change paired per sample (McNemar exact, BCa "
        f"bootstrap CI at {1 - alpha:.0%}), output error against fp32 (SQNR, MSE); ranked by "
        + ("accuracy change" if rank_by == "metric" else "SQNR of the node quantized alone"),
        "split": "validation",
        "n": len(y_val),
        "per_channel": per_channel,
        "calibration_method": method,
        "calibration_samples": len(calibration),
        "fp32_accuracy": float(correct_fp32.mean()),
        "all_int8": _score(full, reference, y_val, correct_fp32, alpha),
        "layers": layers,
        "ranking": [row["node"] for row in layers],
        "rank_by": rank_by,
    }
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = result
    return result
