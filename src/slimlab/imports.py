"""A user's object by import path, `"module:attr"` (a model factory, a data factory, a transform, a metric).

The module is looked for beside the experiment file first, then on `sys.path` (PYTHONPATH). The file that
was found and its SHA-256 are returned with the object, so that a trial's identity changes when the user's
code changes, and a stored run says exactly which file it ran. Only dotted module names are accepted, so a
path is never built from arbitrary user text.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slimlab.errors import ConfigError

_SPEC = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*):([A-Za-z_][A-Za-z0-9_.]*)$")


@dataclass(frozen=True)
class Located:
    """Where an import path points: the module's file and its hash (None for a built-in module)."""

    spec: str
    module: str
    attr: str
    file: str | None
    sha256: str | None


def parse_spec(spec: str, where: str) -> tuple[str, str]:
    match = _SPEC.match(spec or "")
    if not match:
        raise ConfigError(
            f"`{where}` must be an import path 'module:attribute' (e.g. 'my_models:resnet20'); got {spec!r}"
        )
    return match.group(1), match.group(2)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _beside(module: str, base_dir: Path) -> Path | None:
    parts = module.split(".")
    for candidate in (base_dir.joinpath(*parts).with_suffix(".py"), base_dir.joinpath(*parts, "__init__.py")):
        if candidate.is_file():
            return candidate.resolve()
    return None


def locate(spec: str, base_dir: str | Path | None, where: str) -> Located:
    """Find the module of `spec` (beside `base_dir`, else on sys.path) without importing it."""
    module, attr = parse_spec(spec, where)
    found = _beside(module, Path(base_dir)) if base_dir is not None else None
    if found is None:
        try:
            found_spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            found_spec = None
        if found_spec is None:
            beside = f" beside {base_dir} or" if base_dir is not None else ""
            raise ConfigError(f"`{where}`: module {module!r} not found{beside} on PYTHONPATH")
        origin = found_spec.origin if found_spec.origin not in (None, "built-in", "frozen") else None
        found = Path(origin).resolve() if origin else None
    return Located(spec, module, attr, str(found) if found else None, file_sha256(found) if found else None)


def load_object(located: Located, where: str) -> Any:
    """Import the located module (from its recorded file, when there is one) and return the attribute."""
    if located.file and Path(located.file).is_file():
        path = Path(located.file)
        name = f"slimlab_user.{located.module}"
        module = sys.modules.get(name)
        if module is None or getattr(module, "__file__", None) != str(path):
            # The user's module may import its siblings, so its folder goes on sys.path while it loads.
            root = path.parent.parent if path.name == "__init__.py" else path.parent
            for _ in located.module.split(".")[1:]:
                root = root.parent
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise ConfigError(f"`{where}`: cannot import {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            sys.path.insert(0, str(root))
            try:
                spec.loader.exec_module(module)
            except Exception as e:
                sys.modules.pop(name, None)
                raise ConfigError(f"`{where}`: importing {path} failed: {type(e).__name__}: {e}") from None
            finally:
                sys.path.remove(str(root))
    else:
        try:
            module = importlib.import_module(located.module)
        except Exception as e:
            raise ConfigError(
                f"`{where}`: importing {located.module!r} failed: {type(e).__name__}: {e}"
            ) from None
    obj: Any = module
    for part in located.attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"`{where}`: module {located.module!r} has no attribute {located.attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"`{where}`: {located.spec!r} is not callable")
    return obj
