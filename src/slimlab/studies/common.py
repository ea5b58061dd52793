"""What the studies share: the cell store (resume) and the training-loop pieces."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from slimlab import __version__

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class MissingCell(LookupError):
    """A read-only store was asked for a cell that is not finished."""


class CellStore:
    """One JSON file per finished cell (one training run) under RUN/cells/, written atomically, so that a
    rerun of the same study skips what is done and an interrupted one loses at most the running cell.
    A cell's file name is a hash of the study's resolved config and the cell's key, so a changed config
    never reuses a stale cell. The number of seeds is left out of the hash (each cell's key has its own
    seed), so adding seeds to a finished study runs only the new ones."""

    def __init__(self, out: Path, config: dict, read_only: bool = False):
        self.dir = Path(out) / "cells"
        self.read_only = read_only  # a report rebuild: a missing cell raises MissingCell, nothing trains
        if not read_only:
            self.dir.mkdir(parents=True, exist_ok=True)
        self._config = json.dumps({k: v for k, v in config.items() if k != "seeds"}, sort_keys=True)

    def _path(self, key: dict) -> Path:
        text = json.dumps({"config": self._config, "key": key, "version": __version__}, sort_keys=True)
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        label = _SAFE.sub("-", "-".join(str(v) for v in key.values()))[:80]
        return self.dir / f"{label}-{digest}.json"

    def get(self, key: dict) -> dict | None:
        path = self._path(key)
        record = None
        if path.exists():
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                record = None  # a torn file is recomputed, never trusted
        if record is None and self.read_only:
            raise MissingCell(key)
        return record

    def put(self, key: dict, record: dict) -> None:
        path = self._path(key)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".cell.")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.replace(tmp, path)


def eval_steps(total: int, points: int) -> list[int]:
    """About `points` steps spaced log-uniformly from 1 to `total` (the early steps change fastest)."""
    raw = np.unique(np.round(np.geomspace(1, total, points)).astype(int))
    return [int(s) for s in raw]


def cosine_lr(optimizer: torch.optim.Optimizer, total_steps: int, warmup: int = 0, start: int = 0):
    """Linear warm-up, then cosine decay to zero at `total_steps` (a LambdaLR); `start` continues the
    schedule from that step (for an optimizer made midway, as after upcycling)."""

    def factor(local: int) -> float:
        step = local + start
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def make_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)


@torch.inference_mode()
def errors(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 2048) -> dict[str, float]:
    """Hard error (1 − accuracy), soft error (1 − mean p(correct class), the Deep Bootstrap's), and the
    cross-entropy, in eval mode."""
    was = model.training
    model.eval()
    correct = soft = loss = 0.0
    for i in range(0, len(y), batch):
        logits = model(x[i : i + batch]).float()
        target = y[i : i + batch]
        logp = torch.log_softmax(logits, -1)
        correct += float((logits.argmax(-1) == target).sum())
        soft += float(logp.gather(1, target[:, None]).exp().sum())
        loss += float(-logp.gather(1, target[:, None]).sum())
    model.train(was)
    n = len(y)
    return {"error": 1 - correct / n, "soft_error": 1 - soft / n, "loss": loss / n}


Progress = Callable[[str], None]
