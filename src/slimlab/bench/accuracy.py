"""Accuracy at export: a model can lose accuracy when it is exported, compiled or quantized by a runtime,
even when a few example outputs agree. So each backend's prepared model is scored on a validation split."""

from __future__ import annotations

import numpy as np

from slimlab.bench.backends import Backend, BackendSkipped, Prepared
from slimlab.bench.loading import LoadedModel
from slimlab.data.batches import Inputs, n_rows, take, to_torch


def prepared_accuracy(
    prepared: Prepared, x: Inputs, y: np.ndarray, batch_size: int = 256, fixed_batch: int | None = None
) -> float:
    """Top-1 accuracy of a prepared backend on (x, y); inputs of any signature keep their dtypes. A graph
    with a constant batch axis is fed batches of exactly that size (the last rows that do not fill one are
    left out)."""
    n = n_rows(x)
    if n == 0:
        raise ValueError("the validation split is empty")
    step = fixed_batch or batch_size
    stop = n - n % step if fixed_batch else n
    if stop == 0:
        raise ValueError(f"the validation split has fewer rows ({n}) than the model's fixed batch ({step})")
    correct = 0
    for i in range(0, stop, step):
        logits = prepared(to_torch(take(x, slice(i, i + step))))
        correct += int(np.sum(logits.argmax(axis=1) == y[i : i + step]))
    return correct / stop


def accuracy_by_backend(
    model: LoadedModel,
    x: np.ndarray,
    y: np.ndarray,
    backends: list[Backend],
    *,
    reference: str = "eager",
    margin: float = 0.01,
) -> list[dict]:
    """One entry per backend: its accuracy on (x, y), the drop from the `reference` backend's, and
    `flagged` when that drop exceeds `margin`; or `status: skipped` with the reason."""
    example = to_torch(take(x, slice(0, min(n_rows(x), model.fixed_batch or 8))))
    out: list[dict] = []
    for backend in backends:
        try:
            prepared = backend.prepare(model, example)
        except BackendSkipped as e:
            out.append({"backend": backend.name, "status": "skipped", "reason": str(e)})
            continue
        out.append({"backend": backend.name, "status": "ok", "accuracy": prepared_accuracy(prepared, x, y)})
    return flag_drops(out, reference, margin)


def flag_drops(entries: list[dict], reference: str, margin: float) -> list[dict]:
    """Add `accuracy_drop` (reference minus this) and `accuracy_flagged` to each entry with an accuracy."""
    ref = next((e["accuracy"] for e in entries if e["backend"] == reference and "accuracy" in e), None)
    for e in entries:
        if e.get("accuracy") is None or ref is None:
            continue
        e["accuracy_drop"] = ref - e["accuracy"]
        e["accuracy_flagged"] = e["accuracy_drop"] > margin
    return entries
