"""Per-layer quantization sensitivity, with intervals: which node's int8 kernel costs the accuracy.

For each node that ONNX Runtime's QDQ quantizer would quantize (Conv, Gemm, MatMul), two graphs are built
from the fp32 graph, with the same calibration batch and settings:

- `alone`: only this node quantized, everything else fp32 (AIMET QuantAnalyzer's per-layer view). ORT
  inserts one QDQ pair per activation tensor, so the other readers of this node's input and output
  tensors (a sibling Q/K/V projection, a residual Add) read them quantized too;
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

A model without labels (a pretrained encoder scored by fidelity, `evaluate.metric = "cosine"`) and a
model with several inputs (token ids and an attention mask) are scored the same way on the run's own
metric: per validation sample, the metric of the node-quantized output and of the fp32 output (against
the labels, or against the fp32 outputs for a fidelity metric, where fp32 scores 1), paired per sample:
the mean change with a seeded BCa bootstrap interval (`slimlab.stats.bootstrap_ci`) and a sign-flip
permutation p-value (`slimlab.stats.paired_permutation`). Accuracy with labels keeps McNemar's exact test.
Every change is oriented so that a negative delta is a loss.

`op_types` limits the ranked nodes, and every graph built here, to those op types (a transformer is
usually quantized MatMul-only: LayerNorm, Softmax and GELU stay float). All graphs share one calibration
(ORT's calibration cache): the ranges do not depend on which nodes are then quantized.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from slimlab.data.batches import Inputs, leaves
from slimlab.evaluate.metrics import ACCURACY, METRICS, Metric
from slimlab.treatments.ort_qdq import (
    CalibrationName,
    graph_inputs,
    quantizable_nodes,
    quantize_qdq,
    run_graph,
)

RankBy = Literal["sqnr", "metric"]
_CACHE: dict[str, dict] = {}  # candidates of one seed share the fp32 graph: analyse it once per process
_CACHE_SIZE = 16


def output_error(reference: np.ndarray, approx: np.ndarray) -> dict[str, float | None]:
    """SQNR (dB; None when the outputs are identical) and MSE of `approx` against `reference`."""
    noise = float(np.sum((reference.astype(np.float64) - approx) ** 2))
    signal = float(np.sum(reference.astype(np.float64) ** 2))
    sqnr = 10 * math.log10(signal / noise) if noise > 0 and signal > 0 else None
    return {"sqnr_db": sqnr, "mse": noise / reference.size if reference.size else None}


def scoring_metric(metric: Metric | str | None, labelled: bool) -> Metric:
    """The metric the nodes are scored on: the run's, when it is a mean of per-sample scores that can be
    computed here (a label metric needs labels); otherwise accuracy with labels, cosine to fp32 without."""
    chosen = METRICS.get(metric) if isinstance(metric, str) else metric
    if chosen is not None and chosen.is_mean and (labelled or chosen.targets == "dense"):
        return chosen
    return ACCURACY if labelled else METRICS.get("cosine")


class _Scorer:
    """Scores one graph's validation outputs against the fp32 graph's, paired per sample."""

    def __init__(self, metric: Metric, reference: np.ndarray, y: np.ndarray | None, alpha: float):
        self.metric, self.reference, self.alpha = metric, reference, alpha
        self.targets = reference if metric.targets == "dense" else y
        self.sign = 1.0 if metric.higher_is_better else -1.0
        # Accuracy on labels: per-sample correctness and McNemar's exact test, as for every classifier.
        self.mcnemar = metric.name == ACCURACY.name and metric.targets == "labels"
        self.fp32 = self.per_sample(reference)

    def per_sample(self, outputs: np.ndarray) -> np.ndarray:
        if self.mcnemar:
            return outputs.argmax(1) == self.targets
        return np.asarray(self.metric.fn(outputs, self.targets), dtype=np.float64)

    def __call__(self, outputs: np.ndarray) -> dict:
        from slimlab.stats import bootstrap_ci, mcnemar_exact, paired_permutation

        scores = self.per_sample(outputs)
        if self.mcnemar:
            test = mcnemar_exact(scores, self.fp32, alpha=self.alpha)
            return {
                "accuracy": float(scores.mean()),
                "delta": test.delta,
                "ci": [test.ci[0], test.ci[1]],
                "p_value": test.p_value,
                "test": test.test,
                **output_error(self.reference, outputs),
            }
        a, b = self.sign * scores, self.sign * self.fp32
        delta, ci = bootstrap_ci(a, b, confidence=1 - self.alpha)
        p = paired_permutation(a, b, alpha=self.alpha).p_value
        return {
            "score": float(scores.mean()),
            "delta": delta,
            "ci": [ci[0], ci[1]],
            "p_value": p,
            "test": "paired BCa bootstrap + sign-flip permutation over validation samples",
            **output_error(self.reference, outputs),
        }


def _digest(graph: bytes, *parts: Inputs | None, settings: tuple) -> str:
    h = hashlib.sha256(graph)
    for part in parts:
        for a in leaves(part) if part is not None else []:
            h.update(np.ascontiguousarray(a).tobytes())
    h.update(repr(settings).encode())
    return h.hexdigest()


def layer_sensitivity(
    graph: bytes,
    calibration: Inputs,
    x_val: Inputs,
    y_val: np.ndarray | None = None,
    *,
    metric: Metric | str | None = None,
    op_types: Sequence[str] | None = None,
    per_channel: bool = True,
    method: CalibrationName = "minmax",
    float_only: bool = False,
    rank_by: RankBy = "sqnr",
    alpha: float = 0.05,
) -> dict:
    """Each quantizable node's effect on the validation metric and on the outputs, ranked (see module
    doc). `calibration` and `x_val`: one array, or a tuple/dict of arrays in the graph's input order;
    `y_val`: the labels, or None for a model without (scored on fidelity to fp32)."""
    scored_on = scoring_metric(metric, y_val is not None)
    op_list = sorted(op_types) if op_types is not None else None
    settings = (per_channel, method, float_only, rank_by, alpha, scored_on.name, op_list)
    key = _digest(graph, calibration, x_val, y_val, settings=settings)
    if key in _CACHE:
        return _CACHE[key]
    nodes = quantizable_nodes(graph, op_list)
    reference = run_graph(graph, x_val)
    score = _Scorer(scored_on, reference, y_val, alpha)
    with tempfile.TemporaryDirectory(prefix="slimlab-sens-") as tmp:
        options = {
            "per_channel": per_channel,
            "method": method,
            "op_types": op_list,
            "names": graph_inputs(graph),
            "calibration_cache": Path(tmp) / "ranges.json",  # calibrated once, read by every graph
        }
        full = run_graph(quantize_qdq(graph, calibration, **options), x_val)
        layers = []
        for name, op in nodes:
            row = {"node": name, "op_type": op}
            alone = quantize_qdq(graph, calibration, nodes_to_quantize=[name], **options)
            row["alone"] = score(run_graph(alone, x_val))
            if float_only:
                rest = quantize_qdq(graph, calibration, nodes_to_exclude=[name], **options)
                row["float_only"] = score(run_graph(rest, x_val))
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
    test = "McNemar exact" if score.mcnemar else "sign-flip permutation"
    test += f", BCa bootstrap CI at {1 - alpha:.0%}"
    change = f"{scored_on.name} change"
    result = {
        "method": f"per-node QDQ int8 on validation: {change} paired per sample ({test}), output error "
        "against fp32 (SQNR, MSE); ranked by "
        + (change if rank_by == "metric" else "SQNR of the node quantized alone"),
        "split": "validation",
        "n": len(reference),
        "metric": scored_on.name,
        "oriented": "delta < 0 is a loss",
        "op_types": op_list,
        "per_channel": per_channel,
        "calibration_method": method,
        "calibration_samples": len(leaves(calibration)[0]),
        "fp32_score": float(np.mean(score.fp32)),
        "all_int8": score(full),
        "layers": layers,
        "ranking": [row["node"] for row in layers],
        "rank_by": rank_by,
    }
    if score.mcnemar:
        result["fp32_accuracy"] = result["fp32_score"]
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = result
    return result
