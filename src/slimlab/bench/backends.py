"""Backends: one small interface, one class per runtime. A backend turns a LoadedModel into a `Prepared`
model (a callable on a backend-native input, plus what it costs on disk), or raises `BackendSkipped` with a
reason that ends up in the record; the run goes on with the other backends."""

from __future__ import annotations

import logging
import os
import re
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from slimlab.bench.loading import LoadedModel
from slimlab.data.batches import Inputs, call, first_tensor, leaves, to_numpy, to_torch
from slimlab.models.inference import model_device
from slimlab.registry import Registry


class BackendSkipped(Exception):
    """This backend cannot run this model here; the message says why."""


@dataclass
class Prepared:
    backend: str
    device: str
    run: Callable[[Any], Any]  # one inference on an input from `to_input`; this is what is timed
    to_input: Callable[[Any], Any]  # host Inputs (tensor, tuple, dict) -> what `run` takes (not timed)
    to_numpy: Callable[[Any], np.ndarray]
    synchronize: Callable[[], None] | None = None
    size_bytes: int | None = None  # the model in this backend's on-disk format
    info: dict = field(default_factory=dict)

    def __call__(self, x: Inputs) -> np.ndarray:
        return self.to_numpy(self.run(self.to_input(x)))


class Backend(Protocol):
    name: str
    # (rtol, atol) against eager outputs; None where the backend changes numerics on purpose (int8).
    tolerance: tuple[float, float] | None

    def prepare(self, model: LoadedModel, example: Inputs) -> Prepared: ...


def _torch_io(module: torch.nn.Module) -> tuple[str, Callable, Callable | None]:
    device = model_device(module)
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    return str(device), (lambda x: to_torch(x, device)), sync


def _state_dict_size(module: torch.nn.Module) -> int:
    from slimlab.evaluate.model_stats import serialized_size

    return serialized_size(module, compressed=False)[0]


_ANSI_CODES = re.compile(r"\x1b\[[0-9;]*m")


def _first_line(e: BaseException) -> str:
    """One line that says why: exporters open with a generic paragraph ("Failed to export ... Next steps:")
    and give the cause below it or in `__cause__`, so the cause is shown, whole, after the summary."""
    text = _ANSI_CODES.sub("", str(e)).strip()
    if not text:
        return type(e).__name__
    head = text.splitlines()[0].strip()
    cause = e.__cause__ or e.__context__
    detail = None
    if cause is not None and str(cause).strip():
        detail = f"{type(cause).__name__}: {_ANSI_CODES.sub('', str(cause)).strip().splitlines()[0]}"
    elif "## Exception summary" in text:
        after = text.split("## Exception summary", 1)[1].strip().splitlines()
        detail = after[0].strip() if after else None
    if head.endswith(":"):  # an introduction to a list that follows, not a reason
        head = head.split(". ")[0].rstrip(".:") + "."
    line = f"{type(e).__name__}: {head}" + (f" Cause: {detail}" if detail else "")
    return line if len(line) <= 600 else line[:597] + "..."


def torch_precision(module: torch.nn.Module) -> str:
    """ "int8" when any layer runs quantized kernels (torch.ao quantized modules), "bf16"/"fp16" when the
    weights are in that dtype, else "fp32": the roofline compares a result with its own precision's peak."""
    if any(".quantized" in type(m).__module__ for m in module.modules()):
        return "int8"
    graph = getattr(module, "onnx_model", None)  # an ORT-backed module (static int8): its graph decides
    if isinstance(graph, torch.Tensor):
        return onnx_precision_of(graph.numpy().tobytes())
    dtypes = {p.dtype for p in module.parameters()}
    if torch.bfloat16 in dtypes:
        return "bf16"
    return "fp16" if torch.float16 in dtypes else "fp32"


def onnx_precision(path: Path) -> str:
    """ "int8" or "fp32", as `onnx_precision_of` reads the graph."""
    return onnx_precision_of(path.read_bytes())


def _need_module(model: LoadedModel, backend: str) -> torch.nn.Module:
    if model.module is None:
        raise BackendSkipped(f"{backend} needs a PyTorch module; the input is a {model.source} file")
    return model.module


@dataclass(frozen=True)
class EagerBackend:
    name: str = "eager"
    tolerance: tuple[float, float] | None = (0.0, 0.0)

    def prepare(self, model: LoadedModel, example: torch.Tensor) -> Prepared:
        module = _need_module(model, self.name).eval()
        device, to_input, sync = _torch_io(module)

        @torch.inference_mode()
        def run(x: Inputs) -> torch.Tensor:
            return first_tensor(call(module, x))

        return Prepared(
            self.name,
            device,
            run,
            to_input,
            lambda y: y.float().cpu().numpy(),
            sync,
            size_bytes=_state_dict_size(module),
            info={"precision": torch_precision(module)},
        )


@dataclass(frozen=True)
class CompileBackend:
    """torch.compile with its defaults (inductor; shapes become dynamic after the first recompile, as for a
    user who calls torch.compile). Compilation is lazy, so `prepare` runs the example once to surface
    failures here rather than in the timed loop."""

    name: str = "compile"
    mode: str | None = None
    tolerance: tuple[float, float] | None = (1e-4, 1e-5)

    def prepare(self, model: LoadedModel, example: torch.Tensor) -> Prepared:
        module = _need_module(model, self.name).eval()
        device, to_input, sync = _torch_io(module)
        try:
            with warnings.catch_warnings():
                # Inductor's first compile touches torch.jit.script_method internally (a DeprecationWarning
                # on torch 2.13) that no caller can act on.
                warnings.filterwarnings("ignore", category=DeprecationWarning)
                compiled = torch.compile(module, mode=self.mode)
                with torch.inference_mode():
                    call(compiled, to_input(example))
        except Exception as e:
            raise BackendSkipped(f"torch.compile failed: {_first_line(e)}") from None

        @torch.inference_mode()
        def run(x: Inputs) -> torch.Tensor:
            return first_tensor(call(compiled, x))

        return Prepared(
            self.name,
            device,
            run,
            to_input,
            lambda y: y.float().cpu().numpy(),
            sync,
            # Compiling changes the code, not the weights: what ships is the same state_dict.
            size_bytes=_state_dict_size(module),
            info={"mode": self.mode or "default", "precision": torch_precision(module)},
        )


# Preferred first. TensorRT and CUDA are used where onnxruntime was built with them and a GPU is visible.
PROVIDER_PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def choose_providers(available: list[str] | None = None) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers() if available is None else available
    # CUDA_VISIBLE_DEVICES="" hides the GPU from ORT's CUDA provider too; then only the CPU is honest.
    gpu_hidden = os.environ.get("CUDA_VISIBLE_DEVICES") == ""
    chosen = [
        p for p in PROVIDER_PREFERENCE if p in available and not (gpu_hidden and p != PROVIDER_PREFERENCE[-1])
    ]
    if not chosen:
        raise BackendSkipped(f"no usable execution provider among {available}")
    return chosen


def _torchscript_export(module: torch.nn.Module, example: torch.Tensor) -> bytes:
    """The TorchScript exporter (`dynamo=False`): deprecated, but about 0.02 s per small model here against
    1.3 s for the dynamo exporter, and the graph ORT builds from either is the same for these models."""
    import io

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        torch.onnx.export(
            module,
            (example,),
            buffer,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
            dynamo=False,
        )
    return buffer.getvalue()


def _dynamo_export(module: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    # The exporter logs one warning per torchvision op it cannot register when torchvision is absent.
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            # The exporter's own use of a deprecated pytree API warns on torch 2.13; nothing for us to fix.
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            torch.onnx.export(
                module,
                (example,),
                str(path),
                dynamo=True,
                verbose=False,
                input_names=["x"],
                output_names=["y"],
                dynamic_shapes=({0: batch},),
                external_data=False,
            )
    finally:
        registration.setLevel(level)


TORCH_AO_INT8_SKIP = (
    "ONNX export skipped: torch.ao quantized modules cannot be expressed in ONNX "
    "(use static_int8 with backend='onnxruntime' for an ONNX int8 model)"
)


def export_onnx_bytes(module: torch.nn.Module, example: torch.Tensor) -> tuple[bytes, str]:
    """The module as ONNX with a dynamic batch axis, and which exporter made it. The TorchScript exporter
    first (cheap); torch.export's (dynamo) exporter where it fails. A torch.ao quantized module is refused
    without trying: neither exporter can express its packed int8 ops, and the attempt cost about 1 s."""
    module = module.eval()
    if torch_precision(module) == "int8":
        raise BackendSkipped(TORCH_AO_INT8_SKIP)
    try:
        with torch.no_grad():
            return _torchscript_export(module, example), "torch.onnx (torchscript)"
    except Exception as first:
        with tempfile.TemporaryDirectory(prefix="slimlab-onnx-") as tmp:
            path = Path(tmp) / "model.onnx"
            try:
                _dynamo_export(module, example, path)
            except Exception as e:
                raise BackendSkipped(
                    f"ONNX export failed: {_first_line(e)} (TorchScript exporter: {_first_line(first)})"
                ) from None
            return path.read_bytes(), "torch.onnx (dynamo)"


def export_onnx(module: torch.nn.Module, example: torch.Tensor, path: Path) -> str:
    """Write the module as ONNX to `path` (see `export_onnx_bytes`); returns the exporter used."""
    data, exporter = export_onnx_bytes(module, example)
    path.write_bytes(data)
    return exporter


def onnx_precision_of(graph: bytes) -> str:
    """ "int8" when the graph holds integer matmul/conv ops (ORT's operator-format and dynamic quantizers)
    or QuantizeLinear/DequantizeLinear pairs (the QDQ format, which ORT folds into int8 kernels), else
    "fp32". Which peak the roofline compares a result with follows from this."""
    import onnx

    ops = {node.op_type for node in onnx.load_from_string(graph).graph.node}
    int8_ops = {
        "MatMulInteger",
        "ConvInteger",
        "QLinearMatMul",
        "QLinearConv",
        "DynamicQuantizeLinear",
        "QuantizeLinear",
        "DequantizeLinear",
    }
    return "int8" if ops & int8_ops else "fp32"


def export_inputs_onnx(module: torch.nn.Module, example: Inputs) -> tuple[bytes, str]:
    """The module as ONNX for any example input: one float tensor through `export_onnx_bytes`; several
    inputs, dicts or integer ids through the TorchScript exporter, which names every input and handles
    keyword-input models (Hugging Face encoders) that torch.export often cannot. torch.ao's int8 modules
    are refused before the attempt, as for one float input (the exporter fails on them after printing the
    whole TorchScript graph)."""
    if isinstance(example, torch.Tensor) and example.is_floating_point():
        return export_onnx_bytes(module, example.cpu())
    if torch_precision(module) == "int8":
        raise BackendSkipped(TORCH_AO_INT8_SKIP)
    from slimlab.treatments.static_quant import export_onnx as export_torchscript

    try:
        return export_torchscript(module, to_torch(example)), "torch.onnx (torchscript)"
    except Exception as e:
        raise BackendSkipped(f"ONNX export failed: {_first_line(e)}") from None


def session_feeds(session: Any) -> Callable[[Inputs], dict[str, np.ndarray]]:
    """Host inputs (a tensor, a tuple, or a dict by input name) -> the session's feeds, each array in the
    dtype its graph input declares (token ids int64, a float16 graph's inputs float16)."""
    from slimlab.models.ort import _ORT_DTYPES

    graph_inputs = [(i.name, _ORT_DTYPES.get(i.type, np.float32)) for i in session.get_inputs()]

    def to_feeds(x: Inputs) -> dict[str, np.ndarray]:
        arrays = to_numpy(x)
        if isinstance(arrays, dict):
            missing = [n for n, _ in graph_inputs if n not in arrays]
            if missing:
                names = ", ".join(n for n, _ in graph_inputs)
                raise BackendSkipped(f"the inputs have no {missing[0]!r} (graph inputs: {names})")
            values = [arrays[n] for n, _ in graph_inputs]
        else:
            values = leaves(arrays)
            if len(values) != len(graph_inputs):
                raise BackendSkipped(f"the graph takes {len(graph_inputs)} inputs; got {len(values)}")
        return {
            n: np.ascontiguousarray(v).astype(d, copy=False)
            for (n, d), v in zip(graph_inputs, values, strict=True)
        }

    return to_feeds


@dataclass(frozen=True)
class OnnxRuntimeBackend:
    """ONNX Runtime on the best available provider. `quantize="dynamic_int8"` runs ORT's own dynamic int8
    quantization on the exported graph (a variant of this backend, not a separate one)."""

    name: str = "onnxruntime"
    quantize: str | None = None  # None | "dynamic_int8"
    providers: tuple[str, ...] | None = None  # None: chosen from onnxruntime.get_available_providers()
    workdir: Path | None = None  # where exported files go; a temporary directory by default
    tolerance: tuple[float, float] | None = (1e-3, 1e-4)

    def prepare(self, model: LoadedModel, example: Inputs) -> Prepared:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise BackendSkipped(f"onnxruntime is not installed ({e})") from None
        if self.workdir is not None:
            workdir = Path(self.workdir)
            workdir.mkdir(parents=True, exist_ok=True)
            return self._prepare(ort, model, example, workdir, keep=True)
        # The session holds the model in memory once built, so exported files need not outlive `prepare`.
        with tempfile.TemporaryDirectory(prefix="slimlab-onnx-") as tmp:
            return self._prepare(ort, model, example, Path(tmp), keep=False)

    def _prepare(self, ort, model: LoadedModel, example: Inputs, workdir: Path, keep: bool) -> Prepared:
        path, exporter = model.onnx_path, "input file"
        graph = getattr(model.module, "onnx_model", None)
        if path is None and isinstance(graph, torch.Tensor):
            # An ORT-backed module (static int8 QDQ, an ONNX file loaded as a model): its own graph. Tracing
            # it would record the session's outputs as constants, a graph that computes nothing.
            path = workdir / "model.onnx"
            path.write_bytes(graph.numpy().tobytes())
            exporter = "treatment graph"
        elif path is None:
            module = _need_module(model, self.name)
            # Never a path from the model's name, which is user text (a variant name): a fixed file name.
            path = workdir / "model.onnx"
            data, exporter = export_inputs_onnx(module, example)
            path.write_bytes(data)
        if self.quantize == "dynamic_int8":
            path = self._quantize(path, workdir / f"{path.stem}.int8.onnx")
        elif self.quantize is not None:
            raise ValueError(f"unknown ORT quantization {self.quantize!r}")
        providers = list(self.providers) if self.providers else choose_providers()
        options = ort.SessionOptions()
        # Pin ORT's threads to torch's, so that backends are compared on the same cores.
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as e:
            reason = _first_line(e)
            if not keep:  # a temporary file's path differs per trial: name the file only, so reasons group
                reason = reason.replace(str(path), path.name)
            raise BackendSkipped(f"onnxruntime could not load the model: {reason}") from None
        to_feeds = session_feeds(session)

        def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
            return session.run(None, feeds)[0]

        used = session.get_providers()[0]
        return Prepared(
            self.name,
            "cuda" if used in PROVIDER_PREFERENCE[:2] else "cpu",
            run,
            to_feeds,
            lambda y: np.asarray(y, dtype=np.float32),
            None,  # session.run returns after the outputs are on the host
            size_bytes=path.stat().st_size,
            info={
                "provider": used,
                "exporter": exporter,
                "quantize": self.quantize,
                "precision": onnx_precision(path),
                "file": str(path) if keep or path == model.onnx_path else None,  # temporary files are gone
            },
        )

    @staticmethod
    def _quantize(src: Path, dst: Path) -> Path:
        try:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            # quantize_dynamic logs a "consider pre-processing" hint on the root logger on every call.
            logging.disable(logging.WARNING)
            quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
        except Exception as e:
            raise BackendSkipped(f"ORT dynamic int8 quantization failed: {_first_line(e)}") from None
        finally:
            logging.disable(logging.NOTSET)
        return dst


# name -> a factory of the backend. `BenchConfig.backends` accepts exactly these names.
BACKENDS: Registry[Callable[[], Backend]] = Registry("backend")
BACKENDS.register("eager", EagerBackend, description="PyTorch eager, inference mode")
BACKENDS.register("compile", CompileBackend, description="torch.compile (inductor)")
BACKENDS.register("onnxruntime", OnnxRuntimeBackend, description="ONNX Runtime on the exported fp32 graph")
BACKENDS.register(
    "onnxruntime-int8",
    lambda: OnnxRuntimeBackend(name="onnxruntime-int8", quantize="dynamic_int8", tolerance=None),
    description="ONNX Runtime on the graph after ORT's dynamic int8 quantization",
)
BACKENDS.register(
    "onnxruntime-session",
    lambda: _session_backend(),
    description="ONNX Runtime as deployed: a bare session with its own threads (bench.session_threads)",
)


def _session_backend(threads: int | None = None) -> Backend:
    from slimlab.bench.deploy import OrtSessionBackend  # deploy builds on this module

    return OrtSessionBackend(threads=threads)


def backends_for(names: list[str], session_threads: list[int] | None = None) -> list[Backend]:
    """The backends of a bench config; `onnxruntime-session` once per thread count in `session_threads`."""
    out: list[Backend] = []
    for name in names:
        if name == "onnxruntime-session" and session_threads:
            out += [_session_backend(t) for t in session_threads]
        else:
            out.append(get_backend(name))
    return out


def get_backend(name: str) -> Backend:
    return BACKENDS.get(name)()


def check_outputs(prepared: Prepared, reference: np.ndarray, example: Inputs, tol) -> float:
    """The largest |difference| from the reference (eager) outputs; raises BackendSkipped beyond `tol`."""
    out = prepared(example)
    if out.shape != reference.shape:
        raise BackendSkipped(f"output shape {out.shape} differs from eager's {reference.shape}")
    diff = float(np.max(np.abs(out - reference))) if out.size else 0.0
    if tol is not None:
        rtol, atol = tol
        if not np.allclose(out, reference, rtol=rtol, atol=atol):
            raise BackendSkipped(
                f"outputs differ from eager: max |Δ| = {diff:.3g} (rtol={rtol}, atol={atol})"
            )
    return diff
