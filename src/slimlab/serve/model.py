"""What the server serves: a model with named, typed inputs, and the checks every request goes through.

A `Servable` knows each input's name, dtype, per-example shape and (for ids) the valid range, so that a
request with a wrong shape, a wrong dtype or an id out of range is refused with a 4xx before it reaches
the model, instead of crashing a batch that other requests share.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from slimlab.errors import DataFileError, SlimlabError

FLOAT_DTYPES = {"float32": np.float32, "float64": np.float64, "float16": np.float16}
INT_DTYPES = {"int64": np.int64, "int32": np.int32}


class RequestError(ValueError):
    """A request the server refuses (answered 422 with this message)."""


@dataclass(frozen=True)
class InputSpec:
    name: str
    dtype: str  # a key of FLOAT_DTYPES or INT_DTYPES
    shape: tuple[int, ...]  # one example's shape
    low: int | None = None  # ids: the smallest valid value (e.g. -1 for padding)
    high: tuple[int, ...] | int | None = None  # ids: one past the largest, overall or per row of axis 0

    def parse(self, value: object, examples: int | None) -> np.ndarray:
        """The examples of this input as an array of shape (n, *shape), or RequestError."""
        try:
            array = np.asarray(value)
        except (ValueError, TypeError):
            raise RequestError(f"input {self.name!r} is not a rectangular array") from None
        if array.dtype == object or array.dtype.kind not in "iuf":
            raise RequestError(
                f"input {self.name!r} must hold numbers ({self.dtype}); got {array.dtype.name}"
            )
        if array.shape[1:] != self.shape or array.ndim != len(self.shape) + 1:
            raise RequestError(
                f"input {self.name!r} must have shape (examples, {', '.join(map(str, self.shape))}); "
                f"got {array.shape}"
            )
        if examples is not None and len(array) != examples:
            raise RequestError(f"input {self.name!r} has {len(array)} examples; the others have {examples}")
        if self.dtype in INT_DTYPES:
            fractional = array.dtype.kind == "f" and (
                not np.all(np.isfinite(array)) or not np.all(array == np.round(array))
            )
            if fractional:
                raise RequestError(f"input {self.name!r} must hold integers (ids); got fractions")
            array = array.astype(INT_DTYPES[self.dtype])
            self._check_range(array)
        else:
            array = array.astype(FLOAT_DTYPES[self.dtype])
            if not np.all(np.isfinite(array)):
                raise RequestError(f"input {self.name!r} has NaN or infinite values")
        return array

    def _check_range(self, array: np.ndarray) -> None:
        if self.low is not None and array.size and array.min() < self.low:
            raise RequestError(
                f"input {self.name!r} has id {int(array.min())}; the smallest valid is {self.low}"
            )
        if self.high is None or not array.size:
            return
        high = (
            np.asarray(self.high).reshape((-1,) + (1,) * (len(self.shape) - 1)) if self.shape else self.high
        )
        over = array >= high
        if np.any(over):
            where = np.argwhere(over)[0]
            limit = int(np.broadcast_to(high, array.shape[1:])[tuple(where[1:])])
            at = tuple(int(i) for i in where[1:])
            raise RequestError(
                f"input {self.name!r} has id {int(array[tuple(where)])} at {at}, "
                f"beyond its table of {limit} rows"
            )

    def describe(self) -> dict:
        out = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}
        if self.high is not None:
            out["high"] = list(self.high) if isinstance(self.high, tuple) else self.high
        return out


@dataclass
class Servable:
    """A model behind the server: `run` maps a dict of batched numpy inputs to a batched numpy output."""

    name: str
    inputs: list[InputSpec]
    run: Callable[[dict[str, np.ndarray]], np.ndarray]
    max_batch: int | None = None  # a model exported with a fixed batch size
    meta: dict = field(default_factory=dict)

    def parse(self, payload: object) -> tuple[dict[str, np.ndarray], int]:
        """A request's `inputs` -> (arrays by input name, number of examples). A single-input model takes
        a list of examples; a model with several inputs takes a dict of named inputs (each a list over
        examples) or a list of examples that are such dicts."""
        if isinstance(payload, dict):
            missing = [s.name for s in self.inputs if s.name not in payload]
            extra = sorted(set(payload) - {s.name for s in self.inputs})
            if missing or extra:
                raise RequestError(
                    f"inputs must be named {', '.join(s.name for s in self.inputs)}"
                    + (f"; missing {', '.join(missing)}" if missing else "")
                    + (f"; unknown {', '.join(extra)}" if extra else "")
                )
            columns = payload
        elif isinstance(payload, list):
            if not payload:
                raise RequestError("inputs is an empty list; send at least one example")
            if len(self.inputs) == 1 and not isinstance(payload[0], dict):
                columns = {self.inputs[0].name: payload}
            elif all(isinstance(e, dict) for e in payload):
                try:
                    columns = {s.name: [e[s.name] for e in payload] for s in self.inputs}
                except KeyError as e:
                    raise RequestError(f"an example lacks input {e.args[0]!r}") from None
            else:
                names = ", ".join(s.name for s in self.inputs)
                raise RequestError(f"this model has several inputs ({names}); send a dict of named inputs")
        else:
            raise RequestError("`inputs` must be a list of examples or a dict of named inputs")
        arrays: dict[str, np.ndarray] = {}
        n: int | None = None
        for spec in self.inputs:
            arrays[spec.name] = spec.parse(columns[spec.name], n)
            n = len(arrays[spec.name])
        if not n:
            raise RequestError("no examples in the request")
        return arrays, n


# --- building servables ------------------------------------------------------------------------------------


def from_module(
    module: nn.Module, inputs: Sequence[InputSpec], name: str = "model", output: Callable | None = None
) -> Servable:
    """A torch module called positionally with its inputs in `inputs` order, in inference mode."""
    module = module.eval()

    @torch.inference_mode()
    def run(arrays: dict[str, np.ndarray]) -> np.ndarray:
        out = module(*(torch.from_numpy(arrays[s.name]) for s in inputs))
        out = output(out) if output else out
        return out.float().cpu().numpy()

    return Servable(
        name, list(inputs), run, meta={"runtime": "torch", "torch_threads": torch.get_num_threads()}
    )


def dlrm_servable(model: nn.Module, name: str = "dlrm") -> Servable:
    """A DLRM (or a packed one) with two named inputs: `dense` float32 (num_dense,) and `sparse` int64
    (tables, bag_size) with -1 as padding and each table's rows as its bound; it answers P(click)."""
    from slimlab.models.dlrm import unpack_dlrm

    dlrm = unpack_dlrm(model)
    if dlrm is None:
        raise SlimlabError(f"{name}: not a DLRM")
    p = dlrm.params
    specs = [
        InputSpec("dense", "float32", (p.num_dense,)),
        InputSpec("sparse", "int64", (len(p.table_rows), p.bag_size), low=-1, high=tuple(p.table_rows)),
    ]
    return from_module(dlrm, specs, name, output=torch.sigmoid)


def _onnx_dtype(elem_type: int) -> str:
    import onnx

    names = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.DOUBLE: "float64",
             onnx.TensorProto.FLOAT16: "float16", onnx.TensorProto.INT64: "int64",
             onnx.TensorProto.INT32: "int32"}  # fmt: skip
    if elem_type not in names:
        raise DataFileError(f"ONNX input type {elem_type} is not served; known: {', '.join(names.values())}")
    return names[elem_type]


def onnx_servable(path: Path, threads: int | None = None) -> Servable:
    """An ONNX file (checked by `slimlab.bench.loading.load_onnx`'s checker) with any number of inputs."""
    import onnx
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: not found")
    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataFileError(f"{path}: not a valid ONNX model ({first})") from None
    initializers = {i.name for i in proto.graph.initializer}
    specs, fixed_batch = [], None
    for graph_input in proto.graph.input:
        if graph_input.name in initializers:
            continue
        tensor = graph_input.type.tensor_type
        dims = tensor.shape.dim
        sample = tuple(d.dim_value for d in dims[1:])
        if not dims or any(v <= 0 for v in sample):
            raise DataFileError(
                f"{path}: input {graph_input.name!r} needs a static shape after the batch axis"
            )
        if dims[0].dim_value > 0:
            fixed_batch = dims[0].dim_value
        specs.append(InputSpec(graph_input.name, _onnx_dtype(tensor.elem_type), sample))
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(arrays: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(session.run(None, arrays)[0], dtype=np.float32)

    return Servable(
        path.stem, specs, run, max_batch=fixed_batch, meta={"runtime": "onnxruntime", "file": str(path)}
    )


def import_factory(spec: str) -> Callable[..., nn.Module]:
    """`package.module:function`, imported (the user's own code, named by the user)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise SlimlabError(f"--factory must look like 'my_models:build'; got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise SlimlabError(f"--factory {spec!r}: cannot import {module_name!r} ({e})") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise SlimlabError(f"--factory {spec!r}: {module_name!r} has no callable {attr!r}")
    return factory


def load_weights(module: nn.Module, path: Path) -> nn.Module:
    """A state dict (safetensors, or torch.load with weights_only=True) into `module`; a DLRM also takes
    the packed model's keys (`dlrm.` prefix)."""
    from slimlab.bench.loading import safe_torch_load

    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = safe_torch_load(path, str(path))
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataFileError(f"{path}: expected a state_dict (a mapping of names to tensors)")
    own = module.state_dict()
    if not set(state) & set(own) and all(k.startswith("dlrm.") for k in state):
        state = {k.removeprefix("dlrm."): v for k, v in state.items()}
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        raise DataFileError(f"{path}: does not fit the model: {str(e).splitlines()[0]}") from None
    return module


def load_servable(
    model: str,
    *,
    trial: str | None = None,
    arch: str | None = None,
    factory: str | None = None,
    params: dict | None = None,
    input_shape: tuple[int, ...] | None = None,
    num_classes: int = 10,
) -> Servable:
    """What `slimlab serve MODEL` serves: an ONNX file, a `.pt2` program, a state dict with its
    architecture (`arch`, a reference model, or `factory`, the user's own), a saved trial of a run
    (`RUN --trial VARIANT/SEED`), or a reference model by name (random weights: for load tests only)."""
    from slimlab.bench.loading import load_exported_program
    from slimlab.models import MODELS

    path = Path(model)
    if trial:
        return _saved_trial(path, trial)
    if path.suffix.lower() == ".onnx":
        return onnx_servable(path)
    if path.suffix.lower() == ".pt2":
        loaded = load_exported_program(path)
        spec = InputSpec("input", "float32", loaded.input_shape)
        return from_module(loaded.module, [spec], path.stem)
    if path.suffix.lower() in (".pt", ".pth", ".safetensors"):
        if factory:
            module = import_factory(factory)(**(params or {}))
        elif arch:
            module = _reference(arch, params, input_shape, num_classes)
        else:
            raise SlimlabError(
                f"{path}: a state dict needs its architecture: --arch NAME or --factory MOD:FN"
            )
        module = load_weights(_unpacked(module), path)
        return _wrap(module, path.stem, input_shape)
    if model in MODELS:
        module = _reference(model, params, input_shape, num_classes)
        return _wrap(module, model, input_shape)
    if not path.exists():
        raise DataFileError(f"{model}: no such file, and not a reference model ({', '.join(MODELS.names())})")
    raise DataFileError(
        f"{path}: unknown model file type; known: .onnx, .pt2, .pt/.pth/.safetensors, a run dir"
    )


def _reference(arch: str, params: dict | None, input_shape, num_classes: int) -> nn.Module:
    from slimlab.models import MODELS, build_model

    spec = MODELS.get(arch, where="--arch")
    if arch == "dlrm":
        from slimlab.models.dlrm import DLRM

        return DLRM(spec.params(**(params or {})))
    if input_shape is None:
        raise SlimlabError(f"model {arch!r} needs --input-shape (one example's shape, e.g. 40)")
    return build_model(arch, params or {}, tuple(input_shape), num_classes)


def _unpacked(module: nn.Module) -> nn.Module:
    from slimlab.models.dlrm import unpack_dlrm

    return unpack_dlrm(module) or module


def _wrap(module: nn.Module, name: str, input_shape) -> Servable:
    from slimlab.models.dlrm import unpack_dlrm

    if unpack_dlrm(module) is not None:
        return dlrm_servable(module, name)
    if input_shape is None:
        raise SlimlabError(f"{name}: needs --input-shape (one example's shape, e.g. 40)")
    return from_module(module, [InputSpec("input", "float32", tuple(input_shape))], name)


def _saved_trial(run_dir: Path, trial: str) -> Servable:
    """A trial's saved ONNX model (`[bench] save_models = true`)."""
    from slimlab.experiment.saved import find_saved_trial

    found = find_saved_trial(run_dir, trial)
    servable = onnx_servable(run_dir / found["model_file"])
    servable.name = f"{found['variant']}/{found['seed']}"
    return servable
