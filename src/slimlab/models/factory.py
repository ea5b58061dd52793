"""Models from anywhere, as the experiment's [model] section names them:

- `factory = "my_models:resnet20"` (+ `[model.params]`): a function or class by import path, found beside
  the experiment file or on PYTHONPATH. It is called with the params as keyword arguments, plus
  `input_shape` and `num_classes` when its signature takes them and the params do not set them;
- `checkpoint = "model.safetensors"`: trained weights for that model or a reference one (loaded safely);
- `hf = "path/to/dir"` or `"package:NAME/SUBDIR"`: a Hugging Face model directory, offline;
- `onnx = "model.onnx"`: an ONNX file, run by ONNX Runtime.

`resolve_model_source` records the resolved files and their SHA-256 in the config (so they enter the trial
identity and the stored run); `build_configured_model` builds the module from that record.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from torch import nn

from slimlab.errors import ConfigError, DataFileError
from slimlab.imports import Located, file_sha256, load_object, locate


def _file(spec: str, base_dir: Path, where: str, suffixes: tuple[str, ...]) -> Path:
    path = Path(spec)
    if not path.is_absolute():
        path = base_dir / path
    path = path.resolve()
    if path.suffix.lower() not in suffixes:
        raise ConfigError(f"`{where}`: expected a file ending in {', '.join(suffixes)}; got {spec!r}")
    if not path.is_file():
        raise DataFileError(f"`{where}`: {path} not found")
    return path


def resolve_model_source(config: Any, base_dir: Path) -> dict[str, Any]:
    """The files behind a ModelConfig, resolved against `base_dir`, each with its hash."""
    from slimlab.models.loading import CHECKPOINT_SUFFIXES, hf_fingerprint, resolve_hf_dir

    out: dict[str, Any] = {}
    if config.factory:
        located = locate(config.factory, base_dir, "model.factory")
        out["factory_file"], out["factory_sha256"] = located.file, located.sha256
    if config.checkpoint:
        path = _file(config.checkpoint, base_dir, "model.checkpoint", CHECKPOINT_SUFFIXES)
        out["checkpoint_file"], out["checkpoint_sha256"] = str(path), file_sha256(path)
    if config.hf:
        path = resolve_hf_dir(config.hf, base_dir)
        out["hf_dir"], out["hf_sha256"] = str(path), hf_fingerprint(path)
    if config.onnx:
        path = _file(config.onnx, base_dir, "model.onnx", (".onnx",))
        out["onnx_file"], out["onnx_sha256"] = str(path), file_sha256(path)
    return out


def call_factory(factory: Any, params: dict[str, Any], input_shape: tuple[int, ...], num_classes: int) -> Any:
    kwargs = dict(params)
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        accepted = signature.parameters
        for name, value in (("input_shape", tuple(input_shape)), ("num_classes", num_classes)):
            if name in accepted and name not in kwargs:
                kwargs[name] = value
        unknown = [k for k in kwargs if k not in accepted]
        if unknown and not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
            raise ConfigError(
                f"`model.params.{unknown[0]}` is not a parameter of {getattr(factory, '__name__', factory)}; "
                f"it takes: {', '.join(accepted) or 'nothing'}"
            )
    return factory(**kwargs)


def build_configured_model(config: Any, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The model a ModelConfig describes (seed torch first, for a reproducible initialisation)."""
    from slimlab.models.loading import load_checkpoint, load_hf, load_onnx_module
    from slimlab.models.registry import build_model

    source = config.source or {}
    if source.get("live"):
        from slimlab.live import live_model

        return live_model(source["live"])
    if config.hf:
        return load_hf(Path(source["hf_dir"]), config.hf_output, num_classes or None)
    if config.onnx:
        return load_onnx_module(source["onnx_file"])
    if config.factory:
        module, _, attr = config.factory.partition(":")
        located = Located(
            config.factory, module, attr, source.get("factory_file"), source.get("factory_sha256")
        )
        model = call_factory(
            load_object(located, "model.factory"), config.factory_params, input_shape, num_classes
        )
        if not isinstance(model, nn.Module):
            raise ConfigError(
                f"`model.factory`: {config.factory} returned {type(model).__name__}, not an nn.Module"
            )
    else:
        model = build_model(config.name, config.params, input_shape, num_classes)
    if config.checkpoint:
        load_checkpoint(model, source["checkpoint_file"])
    return model
