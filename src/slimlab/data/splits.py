"""Seeded, stratified splits. A split depends only on the labels and its seed."""

from __future__ import annotations

import numpy as np


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held_out), with `fraction` of each class held out, chosen by `seed`."""
    # Imported here: scikit-learn costs about 1.6 s to import, which every `slimlab` command paid at start.
    from sklearn.model_selection import train_test_split

    index = np.arange(len(y))
    kept, held_out = train_test_split(index, test_size=fraction, random_state=seed, stratify=y)
    return np.sort(kept), np.sort(held_out)
