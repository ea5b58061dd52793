"""The bench's example inputs: real samples where the caller has them (validation rows, a calibration
file), repeated cyclically up to each batch size; random values only as a fallback for a bare shape, in
the dtype each input declares (random floats for float inputs, small non-negative integers, valid ids for
any vocabulary, for integer inputs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from slimlab.data.batches import Inputs, cycle_rows, to_torch


@dataclass(frozen=True)
class InputSpec:
    """One model input: its name, one sample's shape (None for a symbolic axis) and numpy dtype."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"


def random_inputs(specs: list[InputSpec], batch: int, seed: int = 0) -> Inputs:
    """Random inputs for a bare shape: one tensor for one input, else a dict by input name."""
    generator = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for spec in specs:
        if any(d is None for d in spec.shape):
            raise ValueError(
                f"input {spec.name!r} has a symbolic axis {spec.shape}: give example data (--data FILE.npz)"
            )
        shape = (batch, *[int(d) for d in spec.shape])
        dtype = np.dtype(spec.dtype)
        if np.issubdtype(dtype, np.floating):
            out[spec.name] = torch.randn(shape, generator=generator).to(_torch_dtype(dtype))
        elif dtype == np.bool_:
            out[spec.name] = torch.ones(shape, dtype=torch.bool)
        else:
            out[spec.name] = torch.randint(0, 2, shape, generator=generator).to(_torch_dtype(dtype))
    if len(out) == 1 and specs[0].name == "x":
        return next(iter(out.values()))
    return out


def _torch_dtype(dtype: np.dtype) -> torch.dtype:
    return torch.from_numpy(np.zeros(1, dtype=dtype)).dtype


def example_inputs(examples: Inputs | None, specs: list[InputSpec], batch: int, seed: int = 0) -> Inputs:
    """`batch` rows of model inputs: real examples when given (cycled), else random ones."""
    if examples is not None:
        return to_torch(cycle_rows(examples, batch))
    return random_inputs(specs, batch, seed)


def inputs_from_npz(path: str) -> Inputs:
    """Model inputs from a .npz file: `x` (or `x:NAME` arrays, one per input), or else every array of the
    file, keyed by its name (the ONNX graph's input names). Read with allow_pickle=False."""
    from slimlab.data.factory import read_npz
    from slimlab.errors import DataFileError

    arrays = read_npz(path)
    if "x" in arrays:
        return arrays["x"]
    inputs = {k: v for k, v in arrays.items() if k not in ("y", "labels") and isinstance(v, np.ndarray)}
    if not inputs:
        raise DataFileError(f"{path}: no input arrays (expected x, x:NAME, or one array per graph input)")
    return inputs
