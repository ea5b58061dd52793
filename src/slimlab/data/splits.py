"""Seeded, stratified splits. A split depends only on the labels and its seed."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held_out), with `fraction` of each class held out, chosen by `seed`."""
    index = np.arange(len(y))
    kept, held_out = train_test_split(index, test_size=fraction, random_state=seed, stratify=y)
    return np.sort(kept), np.sort(held_out)
