"""Static int8 post-training quantization: weights and activations in int8, activation ranges calibrated
once on training samples (never on validation or test data).

Which engine: measured on the project CPU (Xeon with AVX-512 VNNI and BF16, no AMX; torch 2.13 CPU,
onnxruntime 1.32; 1 thread; median latency; noisy shared machine, ratios taken in one run; speed-up over
torch fp32 eager, higher is better):

    model               batch  torch.ao static  torchao pt2e+inductor  ORT static QDQ  ORT dynamic int8
    CNN1d (25 ch)          64           1.7-1.8x                  0.8x        3.4-3.5x             0.5x
    CNN1d (25 ch)           1              0.5x                   0.5x        3.9x                 2.1x
    MLP 40-100-100-10      64              0.8x                   0.5x        2.9x                 3.0x
    MLP 40-512-512-10      64              3.9x                   0.9x        6.3x                 6.4x

These models are small, so per-operator overhead dominates, and ONNX Runtime's fused int8 graph (QDQ
folded into QLinearConv / MatMulInteger kernels using VNNI) has the least of it. torch.ao's eager static
quantization (fbgemm/x86 engine, fused conv+ReLU) is second; pt2e's X86InductorQuantizer needs
torch.compile (3-11 s here) and was slower than fp32 at these sizes. So `backend="onnxruntime"` is the
default, and `backend="torch_ao"` is kept for a pure-PyTorch module (e.g. to count its int8 weights).

The ONNX Runtime model is wrapped in `OrtModule`, an nn.Module that takes and returns torch tensors, so
that evaluation and the eager benchmark work unchanged. Its ONNX bytes are a uint8 buffer, so
`state_dict()` and the serialized size are those of the int8 model.
"""

from __future__ import annotations

import fnmatch
import io
import itertools
import logging
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn

from slimlab.data.batches import Inputs, first_tensor, input_names, leaves, n_rows, take, to_numpy, to_torch
from slimlab.errors import ConfigError, SlimlabError
from slimlab.evaluate import count_flops
from slimlab.models.ort import OrtModule  # OrtModule lives with the models (re-exported)
from slimlab.treatments.base import TreatmentConfig, TreatmentContext, register_treatment


class StaticInt8(TreatmentConfig):
    """Static int8 quantization calibrated on `calibration_samples` training samples (drawn with the trial
    seed). `backend="onnxruntime"`: ONNX export, QDQ quantization with per-channel weights and uint8
    activations, run in an ONNX Runtime CPU session; `"torch_ao"`: torch.ao eager static quantization
    (x86 engine) with Conv/Linear+ReLU fused."""

    kind = "static_int8"
    calibration_samples: int = Field(default=512, gt=0, description="training samples used to calibrate")
    backend: Literal["onnxruntime", "torch_ao"] = "onnxruntime"
    per_channel: bool = True
    # Which ONNX nodes are quantized (onnxruntime backend). Op types are ONNX op types ("MatMul", "Conv",
    # "Gemm", ...); node names are fnmatch patterns over the exported graph's node names. MatMul-only
    # (`op_types = ["MatMul"]`) is the usual choice for a transformer: LayerNorm, Softmax and GELU stay float.
    op_types: list[str] | None = Field(default=None, description="quantize only these op types")
    exclude_op_types: list[str] = Field(default_factory=list, description="never quantize these op types")
    nodes: list[str] | None = Field(default=None, description="quantize only nodes matching these patterns")
    exclude_nodes: list[str] = Field(default_factory=list, description="never quantize these nodes")

    calibration_method: Literal["minmax", "entropy", "percentile"] = Field(
        default="minmax", description="ONNX Runtime's CalibrationMethod for the activation ranges"
    )

    def selects_nodes(self) -> bool:
        return any(
            getattr(self, n) != type(self).model_fields[n].get_default(call_default_factory=True)
            for n in _SELECTION_FIELDS
        )


_SELECTION_FIELDS = ("op_types", "exclude_op_types", "nodes", "exclude_nodes")


@contextmanager
def _quiet() -> Iterator[None]:
    """The exporters and quantizers warn about their own deprecations and preprocessing advice; we call
    them knowingly, and pytest runs with warnings as errors."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
            warnings.filterwarnings("ignore", message=".*torch.quantize_per_tensor.*")
            warnings.filterwarnings("ignore", message=".*reduce_range will be deprecated.*")
            # Tracing a Hugging Face model: its Python-side shape checks and advanced indexing are traced
            # as constants (fixed sequence length, which is what we export), and the exporter says so.
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message=".*Exporting aten::index operator.*")
            yield
    finally:
        root.setLevel(level)


def require_float32(model: nn.Module, treatment: str) -> None:
    """The quantizers take a float32 module with weights: one that another quantization or half_precision
    has treated is refused in one line, naming `treatment`."""
    params = list(model.parameters())
    if not params or any(p.dtype != torch.float32 for p in params):
        raise SlimlabError(
            f"treatment {treatment} quantizes a float32 model; put it after pruning and fine-tuning, and "
            "not after another quantization or half_precision"
        )


def calibration_batch(context: TreatmentContext, samples: int, kind: str) -> Inputs:
    """`samples` training rows drawn with the trial's seed: an array, or a tuple/dict of arrays for a model
    with several inputs; every input keeps its dtype (token ids stay int64)."""
    if context.data is None:
        raise SlimlabError(f"treatment {kind!r} needs calibration data; pass a TreatmentContext with data")
    x = context.data.train.x
    n = n_rows(x)
    rng = np.random.default_rng(context.seed)
    index = np.sort(rng.choice(n, size=min(samples, n), replace=False))
    return to_torch(take(x, index))


def export_onnx(model: nn.Module, example: Inputs) -> bytes:
    """The model as ONNX with a dynamic batch axis on every input and output. Inputs are named after the
    example's dict keys (or x / x0, x1, ...). The TorchScript exporter is used: it is deprecated, but it is
    fast (under a second here), needs no torch.export-compatible model, and exports Hugging Face encoders."""
    buffer = io.BytesIO()
    names = input_names(example)
    args = (
        tuple(example.values())
        if isinstance(example, dict)
        else (tuple(example) if isinstance(example, (tuple, list)) else (example,))
    )
    dynamic = {name: {0: "batch"} for name in names}
    dynamic["logits"] = {0: "batch"}
    # The exporter puts the module it is given back in that module's own train/eval mode, recursively. The
    # keyword wrapper is a new module, in training mode unless told otherwise: it used to leave a Hugging
    # Face encoder in training mode after its export, dropout on, its eager outputs changed (by up to 0.7
    # on a tiny BERT). The wrapper is exported in eval mode, and the caller's mode is restored.
    was_training = model.training
    try:
        with _quiet(), torch.no_grad():
            torch.onnx.export(
                _Positional(model.eval(), names).eval() if isinstance(example, dict) else model.eval(),
                args,
                buffer,
                input_names=names,
                output_names=["logits"],
                dynamic_axes=dynamic,
                dynamo=False,
            )
    finally:
        model.train(was_training)
    return buffer.getvalue()


class _Positional(nn.Module):
    """Calls a keyword-input model with positional tensors (the TorchScript exporter passes positionals)."""

    def __init__(self, inner: nn.Module, names: list[str]):
        super().__init__()
        self.inner = inner
        self.names = names

    def forward(self, *args: Tensor) -> Tensor:
        return first_tensor(self.inner(**dict(zip(self.names, args, strict=True))))


def _feeds(names: list[str], batch: Inputs) -> dict[str, np.ndarray]:
    arrays = [np.ascontiguousarray(a) for a in leaves(to_numpy(batch))]
    return dict(zip(names, arrays, strict=True))


def select_nodes(onnx_bytes: bytes, config: StaticInt8) -> dict[str, Any]:
    """ORT quantize_static's node selection (op_types_to_quantize, nodes_to_quantize, nodes_to_exclude)
    from the config's op types and node-name patterns, resolved against the graph. Also returns which
    nodes were chosen, for the trial record."""
    import onnx

    graph = onnx.load_from_string(onnx_bytes).graph
    present = sorted({n.op_type for n in graph.node})
    op_types = set(config.op_types) if config.op_types is not None else set(present)
    op_types -= set(config.exclude_op_types)
    nodes = [n for n in graph.node if n.op_type in op_types]
    if config.nodes is not None:
        nodes = [n for n in nodes if any(fnmatch.fnmatchcase(n.name, p) for p in config.nodes)]
    excluded = [
        n.name for n in graph.node if any(fnmatch.fnmatchcase(n.name, p) for p in config.exclude_nodes)
    ]
    nodes = [n for n in nodes if n.name not in excluded]
    if not nodes:
        raise SlimlabError(
            f"static_int8: the node selection (op_types={config.op_types}, nodes={config.nodes}, excludes) "
            f"matches no node of the graph; its op types are: {', '.join(present)}"
        )
    return {
        "op_types_to_quantize": sorted(op_types & set(present)),
        "nodes_to_quantize": [n.name for n in nodes],
        "nodes_to_exclude": excluded,
    }


# Per-channel QDQ (DequantizeLinear's `axis`) needs opset 13; opset 13 needs IR version 7.
QDQ_OPSET, QDQ_IR = 13, 7


def at_least_opset(graph: bytes, opset: int) -> bytes:
    """A foreign graph at an older default-domain opset (the onnx package's IR-3 test models are at opset
    6-9), converted up by onnx.version_converter so that ORT's QDQ nodes are valid in it; unchanged
    otherwise. A graph that cannot be converted is a one-line error that says so."""
    import onnx
    from onnx import version_converter

    proto = onnx.load_from_string(graph)
    current = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), opset)
    if current >= opset:
        return graph
    try:
        converted = version_converter.convert_version(proto, opset)
    except Exception as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise SlimlabError(
            f"the ONNX graph is at opset {current}; static int8 (QDQ) needs opset {opset}, and "
            f"onnx.version_converter could not convert it ({first})"
        ) from None
    converted.ir_version = max(converted.ir_version, QDQ_IR)
    return converted.SerializeToString()


def _ort_static(model: nn.Module, calib: Inputs, config: StaticInt8) -> OrtModule:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    if isinstance(model, OrtModule):  # an ONNX file the user brought: its graph is quantized directly
        fp32 = at_least_opset(model.onnx_model.numpy().tobytes(), QDQ_OPSET)
        names = model.input_names
    else:
        fp32 = export_onnx(model, take(calib, slice(0, 2)))
        names = input_names(calib)
    batches = [_feeds(names, take(calib, slice(i, i + 64))) for i in range(0, n_rows(calib), 64)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    selection = select_nodes(fp32, config) if config.selects_nodes() else {}
    with tempfile.TemporaryDirectory() as tmp, _quiet():
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(fp32)
        quantize_static(
            src,
            dst,
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=config.per_channel,
            activation_type=QuantType.QUInt8,  # u8 x s8 is the VNNI instruction's native pairing
            weight_type=QuantType.QInt8,
            **selection,
            calibrate_method=_calibration_method(config.calibration_method),
        )
        data = dst.read_bytes()
    # FLOPs cannot be counted inside ONNX Runtime; those of the float model it was made from are kept.
    flops = None if isinstance(model, OrtModule) else _flops_or_none(model, take(calib, slice(0, 1)))
    info = {"engine": "onnxruntime", "format": "QDQ", "flops_batch1": flops, "quantized": True}
    if selection:
        info["quantized_nodes"] = len(selection["nodes_to_quantize"])
        info["op_types"] = selection["op_types_to_quantize"]
    return OrtModule(data, info)


def _flops_or_none(model: nn.Module, example: Inputs) -> int | None:
    if not isinstance(example, torch.Tensor):
        return None  # count_flops traces one tensor input
    try:
        return count_flops(model, example)
    except Exception:  # a model flop_counter cannot trace; FLOPs are informative only
        return None


def _calibration_method(name: str) -> Any:
    from slimlab.treatments.ort_qdq import calibration_method

    return calibration_method(name)  # type: ignore[arg-type]


def _fusable_pairs(model: nn.Module) -> list[list[str]]:
    pairs = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Sequential):
            children = list(module.named_children())
            for (a, first), (b, second) in itertools.pairwise(children):
                if isinstance(first, (nn.Conv1d, nn.Conv2d, nn.Linear)) and isinstance(second, nn.ReLU):
                    prefix = f"{name}." if name else ""
                    pairs.append([prefix + a, prefix + b])
    return pairs


def _torch_ao_static(model: nn.Module, calib: Inputs) -> nn.Module:
    from torch.ao import quantization as tq

    if not isinstance(calib, Tensor):
        raise SlimlabError(
            "static_int8 with backend 'torch_ao' quantizes models with one float tensor input; use "
            "backend = 'onnxruntime' for a model with several or integer inputs"
        )
    with _quiet():
        pairs = _fusable_pairs(model)
        # fuse_modules(model, []) fails inside torch.ao, and a model with nothing to fuse is common.
        model = tq.fuse_modules(model.cpu().eval(), pairs) if pairs else model.cpu().eval()
        wrapped = tq.QuantWrapper(model)  # quantize the input, dequantize the logits
        # torch's default engine on x86 CPUs is "x86" (fbgemm + onednn); we read it and leave it as it is
        wrapped.qconfig = tq.get_default_qconfig(torch.backends.quantized.engine)
        tq.prepare(wrapped, inplace=True)
        with torch.no_grad():
            wrapped(calib)
        tq.convert(wrapped, inplace=True)
    return wrapped.eval()


@register_treatment(StaticInt8)
def static_int8(model: nn.Module, config: StaticInt8, context: TreatmentContext) -> nn.Module:
    calib = calibration_batch(context, config.calibration_samples, config.kind)
    foreign_onnx = isinstance(model, OrtModule) and not model.info.get("quantized")
    if not foreign_onnx:
        require_float32(model, "'static_int8'")
    if config.backend == "torch_ao" and (config.selects_nodes() or foreign_onnx):
        raise ConfigError(
            "static_int8: op_types, nodes and their excludes, and ONNX models, need backend = 'onnxruntime'"
        )
    model = model.cpu().eval()  # both engines are CPU engines
    if config.backend == "onnxruntime":
        quantized: nn.Module = _ort_static(model, calib, config)
    else:
        quantized = _torch_ao_static(model, calib)
    context.artifacts["static_int8"] = {
        "backend": config.backend,
        "calibration_samples": n_rows(calib),
        "calibration_split": "train",
        # Which samples: drawn without replacement from the training split by this seed.
        "calibration_seed": context.seed,
        "calibration_method": (
            config.calibration_method
            if config.backend == "onnxruntime"
            else "torch.ao default qconfig observers"
        ),
        "per_channel": config.per_channel,
        "device": "cpu",
        **{k: v for k, v in getattr(quantized, "info", {}).items() if k in ("quantized_nodes", "op_types")},
    }
    return quantized
