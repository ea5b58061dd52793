"""ONNX Runtime's static QDQ quantization of an fp32 ONNX graph, with the choices a search varies: per-tensor
or per-channel weights, the calibration method (ORT's `CalibrationMethod`: min-max, entropy, percentile),
and which nodes stay in float (`nodes_to_exclude`) or are the only ones quantized (`nodes_to_quantize`).

The quantizer itself is ORT's (`onnxruntime.quantization.quantize_static`); this module only feeds it
numpy calibration batches and lists the nodes it would quantize, so that per-node sensitivity and mixed
precision can name them."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

CalibrationName = Literal["minmax", "entropy", "percentile"]
# Op types whose weights ORT's QDQ quantizer turns into int8 kernels (QLinearConv, QGemm, MatMulInteger).
QUANTIZABLE_OPS = ("Conv", "Gemm", "MatMul")


def quantizable_nodes(graph: bytes) -> list[tuple[str, str]]:
    """(node name, op type) of each node the QDQ quantizer would give an int8 kernel, in graph order."""
    import onnx

    nodes = onnx.load_from_string(graph).graph.node
    return [(n.name, n.op_type) for n in nodes if n.op_type in QUANTIZABLE_OPS]


def calibration_method(name: CalibrationName):
    from onnxruntime.quantization import CalibrationMethod

    return {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[name]


def quantize_qdq(
    graph: bytes,
    calibration: np.ndarray,
    *,
    per_channel: bool = True,
    method: CalibrationName = "minmax",
    nodes_to_exclude: Sequence[str] = (),
    nodes_to_quantize: Sequence[str] | None = None,
    input_name: str = "x",
) -> bytes:
    """The QDQ int8 graph (uint8 activations, int8 weights: VNNI's u8 x s8 pairing), calibrated on
    `calibration` (float32, a batch of inputs)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    batches = [
        {input_name: calibration[i : i + 64].astype(np.float32)} for i in range(0, len(calibration), 64)
    ]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    from slimlab.treatments.static_quant import _quiet  # one set of quantizer-noise filters

    with tempfile.TemporaryDirectory(prefix="slimlab-qdq-") as tmp, _quiet():
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(graph)
        quantize_static(
            src,
            dst,
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(nodes_to_exclude),
            nodes_to_quantize=list(nodes_to_quantize) if nodes_to_quantize is not None else None,
            calibrate_method=calibration_method(method),
        )
        return dst.read_bytes()


def run_graph(graph: bytes, x: np.ndarray, threads: int = 1, input_name: str = "x") -> np.ndarray:
    """Outputs of `graph` on `x` in a plain CPU session (batches of 256)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    out = [
        session.run(None, {input_name: x[i : i + 256].astype(np.float32)})[0] for i in range(0, len(x), 256)
    ]
    return np.concatenate(out) if out else np.empty((0,), np.float32)
