"""What `slimlab bench` can benchmark, loaded without ever unpickling arbitrary code.

- a reference model by name (`slimlab.models.build_model`), or any nn.Module passed in from Python;
- an ONNX file, validated with `onnx.checker` before a session is built;
- a `torch.export` program (`.pt2`). `torch.export.load` unpickles some payloads with
  `weights_only=False` and `pickle.loads` (custom and opaque objects), so the archive is inspected first and
  refused unless every pickled payload in it loads with `weights_only=True`;
- a state-dict file (`.pt`, `.pth`) read with `torch.load(weights_only=True)` into a named architecture.

A saved slimlab trial is not an input yet: trials are not stored as files until the experiment store lands.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from slimlab.bench.inputs import InputSpec
from slimlab.data.batches import Inputs
from slimlab.errors import DataFileError
from slimlab.models.loading import safe_torch_load

ONNX_SUFFIXES = (".onnx",)
EXPORT_SUFFIXES = (".pt2",)
STATE_DICT_SUFFIXES = (".pt", ".pth")


@dataclass
class LoadedModel:
    """A model ready for the backends: a PyTorch module, an ONNX file, or both (an exported module keeps its
    module, and the ONNX backend exports it itself)."""

    name: str
    input_shape: tuple[int, ...]  # one sample's shape (of the first input), without the batch axis
    module: nn.Module | None = None
    onnx_path: Path | None = None
    source: str = "module"  # "module" | "reference" | "onnx" | "pt2" | "state_dict"
    meta: dict = field(default_factory=dict)
    # Every input (name, sample shape, dtype); default: one float32 input of `input_shape`.
    inputs: list[InputSpec] = field(default_factory=list)
    # Real example inputs (e.g. validation rows): the bench feeds these, cycled to each batch size.
    examples: Inputs | None = None
    fixed_batch: int | None = None  # a graph whose batch axis is a constant runs only at that size

    def __post_init__(self) -> None:
        if not self.inputs:
            self.inputs = [InputSpec("x", tuple(self.input_shape))]


def from_module(
    module: nn.Module, input_shape: tuple[int, ...], name: str = "model", examples: Inputs | None = None
) -> LoadedModel:
    """`module` ready for the bench; `examples` (real inputs: an array, a tuple or a dict of arrays of any
    dtype) are what it is fed, cycled up to each batch size. Without them it gets random float32 tensors of
    `input_shape`."""
    return LoadedModel(
        name=name, input_shape=tuple(input_shape), module=module.eval(), source="module", examples=examples
    )


def from_reference(
    name: str, input_shape: tuple[int, ...], num_classes: int, params: dict | None = None, seed: int = 0
) -> LoadedModel:
    """A reference model, randomly initialised under `seed` (timing does not depend on weight values)."""
    from slimlab.models import build_model

    torch.manual_seed(seed)
    module = build_model(name, params or {}, tuple(input_shape), num_classes)
    return LoadedModel(name=name, input_shape=tuple(input_shape), module=module.eval(), source="reference")


def load_onnx(path: Path, examples: Inputs | None = None) -> LoadedModel:
    """An ONNX file. Its inputs (names, sample shapes, dtypes) and a constant batch axis are read from the
    graph. onnx.checker runs first; a file it rejects (e.g. an old IR version) is still accepted when ONNX
    Runtime loads it, with the checker's complaint kept in `meta`."""
    try:
        import onnx
    except ImportError:
        raise DataFileError(
            f"{path}: reading ONNX files needs the onnx package (pip install 'slimlab[onnx]')"
        ) from None

    path = Path(path)
    _must_exist(path)
    meta: dict = {"file": str(path)}
    try:
        proto = onnx.load(str(path))
    except Exception as e:  # onnx raises DecodeError and others for a corrupt file
        raise DataFileError(f"{path}: not a valid ONNX model ({_first(e)})") from None
    try:
        onnx.checker.check_model(proto)
    except Exception as e:
        # The checker is stricter than the runtime (IR-3 files of the onnx test suite fail it and run): the
        # runtime has the last word.
        try:
            import onnxruntime as ort

            ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as ort_error:
            raise DataFileError(
                f"{path}: not a valid ONNX model ({_first(e)}; ONNX Runtime: {_first(ort_error)})"
            ) from None
        meta["checker"] = f"onnx.checker rejected it ({_first(e)}); ONNX Runtime runs it"
    initializers = {i.name for i in proto.graph.initializer}
    graph_inputs = [i for i in proto.graph.input if i.name not in initializers]
    if not graph_inputs:
        raise DataFileError(f"{path}: the graph has no inputs")
    specs, batches = [], set()
    for inp in graph_inputs:
        tensor = inp.type.tensor_type
        dims = tensor.shape.dim
        if not dims:
            raise DataFileError(f"{path}: input {inp.name!r} has no shape; slimlab needs a batch axis")
        first = dims[0].dim_value if dims[0].HasField("dim_value") else None
        if first:
            batches.add(first)
        sample = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims[1:])
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name if tensor.elem_type else "float32"
        specs.append(InputSpec(inp.name, sample, dtype))
    if examples is None and any(d is None for s in specs for d in s.shape):
        raise DataFileError(
            f"{path}: input {next(s.name for s in specs if None in s.shape)!r} has a symbolic sample axis "
            f"({_dims(next(i for i in graph_inputs).type.tensor_type.shape.dim)}); give example inputs "
            "(--data FILE.npz)"
        )
    meta["inputs"] = [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in specs]
    return LoadedModel(
        name=path.stem,
        input_shape=tuple(d or 0 for d in specs[0].shape),
        onnx_path=path,
        source="onnx",
        meta=meta,
        inputs=specs,
        examples=examples,
        fixed_batch=batches.pop() if len(batches) == 1 else None,
    )


def _first(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


def _dims(dims) -> str:
    return "(" + ", ".join(d.dim_param or str(d.dim_value) for d in dims) + ")"


def load_state_dict_file(
    path: Path, arch: str, input_shape: tuple[int, ...], num_classes: int, params: dict | None = None
) -> LoadedModel:
    """Weights from a state-dict file, into the reference architecture `arch`."""
    path = Path(path)
    _must_exist(path)
    state = safe_torch_load(path, str(path))
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # a common checkpoint layout
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataFileError(f"{path}: expected a state_dict (a mapping of names to tensors)")
    loaded = from_reference(arch, input_shape, num_classes, params)
    assert loaded.module is not None
    try:
        loaded.module.load_state_dict(state)
    except RuntimeError as e:
        raise DataFileError(f"{path}: does not fit model {arch!r}: {str(e).splitlines()[0]}") from None
    loaded.name, loaded.source, loaded.meta = path.stem, "state_dict", {"file": str(path), "arch": arch}
    return loaded


def load_exported_program(path: Path) -> LoadedModel:
    """A `torch.export` archive, inspected first (see `check_pt2_archive`), then loaded."""
    path = Path(path)
    _must_exist(path)
    check_pt2_archive(path)
    try:
        program = torch.export.load(str(path))
    except Exception as e:
        raise DataFileError(f"{path}: torch.export.load failed: {str(e).strip().splitlines()[0]}") from None
    args = program.example_inputs[0] if program.example_inputs else ()
    if len(args) != 1 or not isinstance(args[0], torch.Tensor):
        raise DataFileError(f"{path}: slimlab benchmarks programs with one tensor input")
    meta: dict = {"file": str(path)}
    static = _static_batch_size(program)
    if static is not None:
        meta["static_batch_size"] = static
    return LoadedModel(
        name=path.stem,
        input_shape=tuple(args[0].shape[1:]),
        module=ExportedModule(program.module(), direct_call(program)),
        source="pt2",
        meta=meta,
    )


def direct_call(program) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The exported graph called directly, as a deployment would: its lifted parameters, buffers and
    constants passed positionally, skipping `program.module()`'s per-call pytree flattening and input
    checks (which made a call 2.7x the original module's at batch 1 on a small model). None when the
    program does not fit this simple form (several inputs or outputs, buffer mutations)."""
    from torch.export.graph_signature import InputKind, OutputKind

    sig = program.graph_signature
    if sig.buffers_to_mutate or any(o.kind != OutputKind.USER_OUTPUT for o in sig.output_specs):
        return None
    if len(sig.output_specs) != 1:
        return None
    lifted: list[torch.Tensor | None] = []
    for spec in sig.input_specs:
        if spec.kind == InputKind.USER_INPUT:
            lifted.append(None)
        elif spec.kind in (InputKind.PARAMETER, InputKind.BUFFER):
            lifted.append(program.state_dict.get(spec.target, program.constants.get(spec.target)))
        elif spec.kind == InputKind.CONSTANT_TENSOR:
            lifted.append(program.constants[spec.target])
        else:
            return None
    if sum(v is None for v in lifted) != 1 or any(
        v is not None and not isinstance(v, torch.Tensor) for v in lifted
    ):
        return None
    slot = lifted.index(None)
    before, after = lifted[:slot], lifted[slot + 1 :]
    graph = program.graph_module

    def call(x: torch.Tensor) -> torch.Tensor:
        return graph(*before, x, *after)[0]

    return call


def _static_batch_size(program) -> int | None:
    """The batch size a program was specialized to, or None when its batch axis is dynamic (a SymInt)."""
    user_inputs = set(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in user_inputs:
            value = node.meta.get("val")
            shape = getattr(value, "shape", None)
            if shape is not None and len(shape) > 0 and isinstance(shape[0], int):
                return int(shape[0])
            return None
    return None


class ExportedModule(nn.Module):
    """A torch.export program as an ordinary module. The program's own module refuses .eval()/.train()
    (it has no modes: it was captured in one), so those set this wrapper's flag and stop there. With a
    `direct` call (see `direct_call`), forward runs the graph itself; `program` is kept for what reads
    the module (parameters, FLOPs), and the first call checks that both agree."""

    def __init__(
        self, program_module: nn.Module, direct: Callable[[torch.Tensor], torch.Tensor] | None = None
    ):
        super().__init__()
        self.program = program_module
        self._direct = direct
        self._checked = False

    @property
    def calls_graph_directly(self) -> bool:
        return self._direct is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._direct is None:
            return self.program(x)
        if not self._checked:
            self._checked = True
            reference, out = self.program(x), self._direct(x)
            if not torch.allclose(out, reference, rtol=1e-5, atol=1e-6):
                self._direct = None  # a form this shortcut does not handle: the program's own call
                return reference
            return out
        return self._direct(x)

    def train(self, mode: bool = True) -> ExportedModule:
        self.training = mode
        return self


# Constants whose names start with these are read by torch.export.load through pickle.loads or the
# TorchScript unpickler: arbitrary code, refused outright.
_UNSAFE_CONSTANT_PREFIXES = ("custom_obj", "opaque_obj")


def check_pt2_archive(path: Path) -> None:
    """Refuse a .pt2 archive unless every pickled payload in it is plain tensors.

    torch 2.x's `torch.export.load` reads weights marked `use_pickle` and legacy weight files with
    `torch.load(weights_only=False)`, falls back to it for sample inputs, and unpickles custom/opaque
    constants with no restriction. So before loading: every nested torch file (a zip, `PK` magic) or
    `.pt`/`.pkl` member must load with weights_only=True, and custom/opaque constants are refused."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataFileError(f"{path}: not a torch.export archive ({e})") from None
    with archive:
        for info in archive.infolist():
            name = info.filename
            base = name.rsplit("/", 1)[-1]
            if "/constants/" in f"/{name}" and base.startswith(_UNSAFE_CONSTANT_PREFIXES):
                raise DataFileError(
                    f"{path}: refused: the archive holds a pickled Python object ({name}), which "
                    "torch.export.load would unpickle without restriction"
                )
            data = archive.read(info)
            if name.endswith("_config.json"):
                _check_payload_config(path, name, data)
            if data.startswith(b"PK\x03\x04") or base.endswith((".pt", ".pkl", ".pth")):
                safe_torch_load(io.BytesIO(data), f"{path} (member {name})")


def _check_payload_config(path: Path, name: str, data: bytes) -> None:
    # A pickled weight is loaded with weights_only=False; its bytes are checked by the caller's loop, but a
    # config that points at a member that is not a torch file at all is refused here.
    try:
        config = json.loads(data).get("config", {})
    except (json.JSONDecodeError, AttributeError):
        raise DataFileError(f"{path}: corrupt archive member {name}") from None
    for entry in config.values():
        if isinstance(entry, dict) and str(entry.get("path_name", "")).startswith(_UNSAFE_CONSTANT_PREFIXES):
            raise DataFileError(f"{path}: refused: the archive holds a pickled Python object ({name})")


def load_model_file(
    path: Path,
    *,
    arch: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    num_classes: int | None = None,
) -> LoadedModel:
    """Dispatch on the file's suffix. A state-dict file needs `arch`, `input_shape` and `num_classes`."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in ONNX_SUFFIXES:
        return load_onnx(path)
    if suffix in EXPORT_SUFFIXES:
        return load_exported_program(path)
    if suffix in STATE_DICT_SUFFIXES:
        if arch is None or input_shape is None or num_classes is None:
            raise DataFileError(f"{path}: a state-dict file needs the architecture (e.g. --arch cnn1d)")
        return load_state_dict_file(path, arch, input_shape, num_classes)
    known = ", ".join(ONNX_SUFFIXES + EXPORT_SUFFIXES + STATE_DICT_SUFFIXES)
    raise DataFileError(f"{path}: unknown model file type {suffix!r}; known: {known}")


def _must_exist(path: Path) -> None:
    if not path.is_file():
        raise DataFileError(f"{path}: not found")
