"""ONNX Runtime's static QDQ quantization of an fp32 ONNX graph, with the choices a search varies: per-tensor
or per-channel weights, the calibration method (ORT's `CalibrationMethod`: min-max, entropy, percentile),
and which nodes stay in float (`nodes_to_exclude`) or are the only ones quantized (`nodes_to_quantize`).

The quantizer itself is ORT's (`onnxruntime.quantization.quantize_static`); this module only feeds it
numpy calibration batches (one array, or a tuple/dict of arrays for a model with several inputs, e.g. token
ids and an attention mask) and lists the nodes it would quantize, so that per-node sensitivity and mixed
precision can name them. A calibration cache file (ORT's `calibration_cache_path`) lets many graphs built
from one fp32 graph share one calibration: the ranges depend only on the graph, the data, the method and
the op types, not on which nodes are then quantized."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from slimlab.data.batches import Inputs, as_float32, leaves, n_rows, take

CalibrationName = Literal["minmax", "entropy", "percentile"]
# Op types whose weights ORT's QDQ quantizer turns into int8 kernels (QLinearConv, QGemm, MatMulInteger).
QUANTIZABLE_OPS = ("Conv", "Gemm", "MatMul")


def quantizable_nodes(graph: bytes, op_types: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """(node name, op type) of each node the QDQ quantizer would give an int8 kernel, in graph order; with
    `op_types`, the nodes of those op types instead (e.g. only MatMul in a transformer)."""
    import onnx

    wanted = QUANTIZABLE_OPS if op_types is None else tuple(op_types)
    nodes = onnx.load_from_string(graph).graph.node
    return [(n.name, n.op_type) for n in nodes if n.op_type in wanted]


def graph_inputs(graph: bytes) -> list[str]:
    """The names of the graph's inputs that are fed (not initializers), in order."""
    import onnx

    proto = onnx.load_from_string(graph).graph
    constants = {i.name for i in proto.initializer}
    return [i.name for i in proto.input if i.name not in constants]


def feeds(names: Sequence[str], batch: Inputs) -> dict[str, np.ndarray]:
    """A session feed: the batch's arrays by input name, floats as float32, integers (token ids) as they
    are."""
    arrays = [np.ascontiguousarray(a) for a in leaves(as_float32(batch))]
    if len(arrays) != len(names):
        raise ValueError(f"the graph has {len(names)} inputs ({', '.join(names)}); got {len(arrays)} arrays")
    return dict(zip(names, arrays, strict=True))


def calibration_method(name: CalibrationName):
    from onnxruntime.quantization import CalibrationMethod

    return {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[name]


def quantize_qdq(
    graph: bytes,
    calibration: Inputs,
    *,
    per_channel: bool = True,
    method: CalibrationName = "minmax",
    nodes_to_exclude: Sequence[str] = (),
    nodes_to_quantize: Sequence[str] | None = None,
    op_types: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    calibration_cache: Path | None = None,
) -> bytes:
    """The QDQ int8 graph (uint8 activations, int8 weights: VNNI's u8 x s8 pairing), calibrated on
    `calibration` (a batch of inputs). `op_types`: quantize only nodes of these op types (ORT's
    `op_types_to_quantize`; default: every op type ORT quantizes). `names`: the graph's input names (read
    from the graph when not given). `calibration_cache`: a file where the ranges are saved on the first
    call and read on the next ones (same graph, data, method and op types)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    names = list(names) if names is not None else graph_inputs(graph)
    batches = [feeds(names, take(calibration, slice(i, i + 64))) for i in range(0, n_rows(calibration), 64)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    def quantize(src: Path, dst: Path) -> None:
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
            op_types_to_quantize=list(op_types) if op_types is not None else None,
            calibrate_method=calibration_method(method),
            calibration_cache_path=calibration_cache,
        )

    return _through_files(graph, quantize)


def _through_files(graph: bytes, quantize: Callable[[Path, Path], None]) -> bytes:
    """ORT's quantizers read and write files: `graph` written to a temporary folder, `quantize(src, dst)`
    run there with the quantizer noise filtered, the result's bytes read back."""
    from slimlab.treatments.static_quant import _quiet  # one set of quantizer-noise filters

    with tempfile.TemporaryDirectory(prefix="slimlab-quant-") as tmp, _quiet():
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(graph)
        quantize(src, dst)
        return dst.read_bytes()


def quantize_dynamic_graph(
    graph: bytes, op_types: Sequence[str] | None, nodes_to_exclude: Sequence[str] = ()
) -> bytes:
    """ONNX Runtime's dynamic int8 of a graph (`onnxruntime.quantization.quantize_dynamic`): int8 weights,
    activations quantized per batch (DynamicQuantizeLinear + MatMulInteger), on nodes of `op_types` (None:
    every op type ORT quantizes, its one-line default) except `nodes_to_exclude`, which stay fp32.

    ORT's dynamic quantizer splits a Gemm into `<name>_MatMul` and `<name>_Add` before it reads the
    exclusions, so an excluded Gemm used to be quantized anyway (its MatMul became MatMulInteger): the split
    name is excluded too, and the result is checked: no excluded node may feed an integer kernel."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from slimlab.errors import SlimlabError

    excluded = [*nodes_to_exclude, *(f"{name}_MatMul" for name in nodes_to_exclude)]
    out = _through_files(
        graph,
        lambda src, dst: quantize_dynamic(
            src,
            dst,
            op_types_to_quantize=None if op_types is None else list(op_types),
            nodes_to_exclude=excluded,
            weight_type=QuantType.QInt8,
        ),
    )
    integer = {n.name for n in onnx.load_from_string(out).graph.node if n.op_type.endswith("Integer")}
    leaked = [n for n in nodes_to_exclude if f"{n}_quant" in integer or f"{n}_MatMul_quant" in integer]
    if leaked:
        raise SlimlabError(f"ONNX Runtime's dynamic quantizer quantized nodes kept in float: {leaked}")
    return out


def run_graph(graph: bytes, x: Inputs, threads: int = 1) -> np.ndarray:
    """Outputs of `graph` on `x` (one array, or a tuple/dict of arrays in the graph's input order) in a
    plain CPU session (batches of 256)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    out = [session.run(None, feeds(names, take(x, slice(i, i + 256))))[0] for i in range(0, n_rows(x), 256)]
    return np.concatenate(out) if out else np.empty((0,), np.float32)
