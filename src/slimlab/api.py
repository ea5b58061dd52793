"""The one-call Python API for the common case:

    results = slimlab.compress(model, data, metric="accuracy",
                               variants=[[DynamicInt8()], [HalfPrecision()]], seeds=5)

It runs the same loop as `slimlab run` (treat the dense model, evaluate across seeds with intervals and
paired tests, check fidelity to dense, bench) and returns the same results object that `slimlab run`
writes to `results.json` (and writes that file and `report.html` into `out`).

`model` is the user's nn.Module, trained (`pretrained=True`, the default: it is never retrained; the
seeds vary the calibration sample, fine-tuning order and validation split) or not (`pretrained=False`:
it is the initialisation, trained per seed with `train`). `data` is what a data factory may return
(data/factory.py): an `(x, y)` pair, `{"train": ..., "test": ...}`, or a torch Dataset/DataLoader.
The model and data live in this process only, so the trials run in this process; their identity holds
a hash of the model's weights and of the data, and `slimlab report OUT` rebuilds the report from any
process.
"""

from __future__ import annotations

import copy
import hashlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from slimlab.data.batches import leaves, to_numpy
from slimlab.errors import ConfigError
from slimlab.live import _LIVE, live_data, live_model

__all__ = ["compress", "live_data", "live_model"]


def _model_hash(model: nn.Module) -> str:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    digest = hashlib.sha256(type(model).__qualname__.encode())
    digest.update(buffer.getvalue())
    return digest.hexdigest()


def _data_hash(data: Any) -> str:
    digest = hashlib.sha256()

    def feed(value: Any) -> None:
        if isinstance(value, dict):
            for k in sorted(value):
                digest.update(str(k).encode())
                feed(value[k])
        elif isinstance(value, (tuple, list)) and all(
            hasattr(v, "shape") or isinstance(v, dict) for v in value
        ):
            for v in value:
                feed(v)
        elif isinstance(value, (np.ndarray, torch.Tensor)):
            array = np.ascontiguousarray(to_numpy(value))
            digest.update(str(array.dtype).encode() + str(array.shape).encode())
            digest.update(array.tobytes())
        else:  # a torch Dataset: hash its collated items
            from slimlab.data.batches import collate_dataset

            x, y = collate_dataset(value, "data")
            for leaf in leaves(x):
                feed(leaf)
            feed(y)

    feed(data)
    return digest.hexdigest()


def _variant(spec: Any, index: int) -> dict[str, Any]:
    from slimlab.treatments import TreatmentConfig

    if isinstance(spec, dict):
        return {**spec, "treatments": [_treatment(t) for t in spec.get("treatments", [])]}
    if isinstance(spec, TreatmentConfig):
        spec = [spec]
    if isinstance(spec, Sequence) and not isinstance(spec, str):
        chain = [_treatment(t) for t in spec]
        name = "-".join(t["kind"] for t in chain) or f"variant{index}"
        return {"name": name, "treatments": chain}
    raise ConfigError(
        f"variants[{index}]: expected a dict, a treatment config or a list of them; got {spec!r}"
    )


def _treatment(t: Any) -> dict[str, Any]:
    from slimlab.treatments import TreatmentConfig

    return t.to_dict() if isinstance(t, TreatmentConfig) else dict(t)


def compress(
    model: nn.Module,
    data: Any,
    *,
    metric: str = "accuracy",
    variants: Sequence[Any] = (),
    seeds: int | list[int] = 5,
    pretrained: bool = True,
    train: dict[str, Any] | None = None,
    bench: dict[str, Any] | None = None,
    margin: float = 0.01,
    min_cosine: float = 0.99,
    test_fraction: float | None = None,
    name: str = "compress",
    out: str | Path | None = None,
) -> dict:
    """Run dense + `variants` over `seeds` and return the results object (as `results.json`)."""
    from slimlab.analysis import analyze
    from slimlab.config import parse_experiment
    from slimlab.experiment import load_run, run_experiment
    from slimlab.report import write_outputs

    if not isinstance(model, nn.Module):
        raise ConfigError(f"model: expected a torch nn.Module; got {type(model).__name__}")
    model_key, data_key = _model_hash(model), _data_hash(data)
    _LIVE[model_key] = copy.deepcopy(model).cpu().eval()
    _LIVE[data_key] = data
    raw = {
        "name": name,
        "data": {
            "name": "data",
            "source": {"live": data_key},
            **({"test_fraction": test_fraction} if test_fraction else {}),
        },
        "model": {"name": type(model).__name__, "pretrained": pretrained, "source": {"live": model_key}},
        "train": train or {},
        "variants": [{"name": "dense"}, *[_variant(v, i) for i, v in enumerate(variants)]],
        "evaluate": {"seeds": seeds, "metric": metric, "margin": margin, "min_cosine": min_cosine},
        "bench": bench if bench is not None else {"enabled": False},
    }
    config = parse_experiment(raw, source="slimlab.compress")
    out = Path(out) if out is not None else Path("runs") / name
    run_experiment(config, out)
    stored, env, trials = load_run(out)
    if stored is None:
        raise ConfigError(f"{out}: the run stored no experiment")
    analysis = analyze(stored, trials, env)
    write_outputs(analysis, out)
    return analysis.results
