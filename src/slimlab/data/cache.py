"""Where generated datasets are cached: $SLIMLAB_CACHE, else ~/.cache/slimlab. Arrays (.npz), no pickles."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    root = os.environ.get("SLIMLAB_CACHE") or Path.home() / ".cache" / "slimlab"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path
