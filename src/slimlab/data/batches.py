"""Model inputs of any signature: one array, a tuple of arrays (positional inputs), or a dict of arrays
(keyword inputs, e.g. a tokenizer's `input_ids` and `attention_mask`), of any dtype. Every layer that feeds
a model (trainer, evaluation, treatments' calibration, bench, ONNX export, output checks) goes through these
helpers, so int64 token ids stay int64 and a second input is never dropped.

Rows are the first axis of every array; all arrays of one batch have the same number of rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Union

import numpy as np
import torch
from torch import nn

from slimlab.errors import DataFileError

# A batch of model inputs: an array (numpy or torch), a tuple of them, or a dict name -> array.
Inputs = Union[np.ndarray, torch.Tensor, tuple, dict]  # noqa: UP007 (a runtime alias on Python 3.10)


def leaves(x: Inputs) -> list[Any]:
    """The arrays of `x`, in order (dict in key order)."""
    if isinstance(x, Mapping):
        return list(x.values())
    if isinstance(x, (tuple, list)):
        return list(x)
    return [x]


def map_leaves(x: Inputs, fn: Callable[[Any], Any]) -> Inputs:
    if isinstance(x, Mapping):
        return {k: fn(v) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return tuple(fn(v) for v in x)
    return fn(x)


def n_rows(x: Inputs) -> int:
    arrays = leaves(x)
    if not arrays:
        raise ValueError("a batch of inputs with no arrays")
    counts = {len(a) for a in arrays}
    if len(counts) != 1:
        raise ValueError(f"the inputs' arrays have different numbers of rows: {sorted(counts)}")
    return counts.pop()


def take(x: Inputs, index: Any) -> Inputs:
    """Rows `index` (an index array or a slice) of every array."""
    return map_leaves(x, lambda a: a[index])


def to_numpy(x: Inputs) -> Inputs:
    """Every array as numpy, dtype unchanged."""

    def one(a: Any) -> np.ndarray:
        if isinstance(a, torch.Tensor):
            return a.detach().cpu().numpy()
        return np.asarray(a)

    return map_leaves(x, one)


def to_torch(x: Inputs, device: torch.device | str | None = None) -> Inputs:
    """Every array as a torch tensor on `device`, dtype unchanged (int64 ids stay int64)."""

    def one(a: Any) -> torch.Tensor:
        t = a if isinstance(a, torch.Tensor) else torch.as_tensor(np.ascontiguousarray(a))
        return t.to(device) if device is not None else t

    return map_leaves(x, one)


def call(model: nn.Module | Callable, batch: Inputs) -> Any:
    """`model` on one batch: a dict as keyword arguments, a tuple as positional ones, an array alone."""
    if isinstance(batch, Mapping):
        return model(**batch)
    if isinstance(batch, (tuple, list)):
        return model(*batch)
    return model(batch)


def first_tensor(out: Any) -> torch.Tensor:
    """The main output of a model that returns a tensor, a tuple, a dict or a Hugging Face ModelOutput
    (its first field: `logits` or `last_hidden_state`)."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, Mapping):
        for value in out.values():
            if isinstance(value, torch.Tensor):
                return value
    if isinstance(out, Sequence):
        for value in out:
            if isinstance(value, torch.Tensor):
                return value
    raise TypeError(f"the model returned {type(out).__name__}, which holds no tensor")


def cycle_rows(x: Inputs, batch: int) -> Inputs:
    """`batch` rows taken cyclically from `x`: a bench input of any batch size made of real samples."""
    n = n_rows(x)
    index = np.arange(batch) % n
    return take(x, index)


def input_names(x: Inputs) -> list[str]:
    """Names for the graph inputs of an ONNX export: the dict's keys, or x, x1, x2, ..."""
    if isinstance(x, Mapping):
        return [str(k) for k in x]
    count = len(leaves(x))
    return ["x"] if count == 1 and not isinstance(x, (tuple, list)) else [f"x{i}" for i in range(count)]


def describe(x: Inputs) -> list[dict]:
    """One entry per input: name, per-sample shape and dtype (what a model file expects)."""
    return [
        {"name": name, "shape": list(np.shape(a)[1:]), "dtype": str(getattr(a, "dtype", type(a).__name__))}
        for name, a in zip(input_names(x), leaves(x), strict=True)
    ]


def is_float(a: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return a.is_floating_point()
    return np.issubdtype(np.asarray(a).dtype, np.floating)


def as_float32(x: Inputs) -> Inputs:
    """Floating arrays as float32 (float64 from numpy/pandas is the usual case); integer arrays unchanged."""
    return map_leaves(x, lambda a: np.asarray(a, dtype=np.float32) if is_float(a) else np.asarray(a))


def collate_dataset(dataset: Any, where: str, chunk: int = 1024) -> tuple[Inputs, np.ndarray]:
    """A torch `Dataset` (or any sequence, or a DataLoader) of (inputs, target) items, as (inputs, targets)
    arrays in memory. The inputs of one item may be a tensor, a tuple or a dict of tensors."""
    from torch.utils.data import DataLoader, default_collate

    if isinstance(dataset, DataLoader):
        batches = list(dataset)
    else:
        try:
            n = len(dataset)
        except TypeError:
            raise DataFileError(
                f"{where}: expected a torch Dataset, a DataLoader or arrays; got {type(dataset).__name__}"
            ) from None
        batches = [
            default_collate([dataset[i] for i in range(s, min(s + chunk, n))]) for s in range(0, n, chunk)
        ]
    if not batches:
        raise DataFileError(f"{where}: the dataset is empty")
    xs, ys = [], []
    for b in batches:
        if isinstance(b, Mapping) and "labels" in b:
            b = dict(b)
            ys.append(to_numpy(b.pop("labels")))
            xs.append(to_numpy(b))
        elif isinstance(b, (tuple, list)) and len(b) == 2:
            xs.append(to_numpy(b[0]))
            ys.append(to_numpy(b[1]))
        else:
            raise DataFileError(
                f"{where}: each item must be (inputs, target), or a dict with a 'labels' entry; got "
                f"{type(b).__name__}"
            )
    return concat(xs), np.concatenate(ys)


def concat(parts: list[Inputs]) -> Inputs:
    first = parts[0]
    if isinstance(first, Mapping):
        return {k: np.concatenate([p[k] for p in parts]) for k in first}
    if isinstance(first, (tuple, list)):
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(len(first)))
    return np.concatenate(parts)
