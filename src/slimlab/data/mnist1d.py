"""MNIST-1D (Greydanus & Kobak, ICML 2024), generated offline from the templates in the `mnist1d` package.

We call `mnist1d.data.make_dataset` directly: `get_dataset` tries a download first and writes a pickle into
the current directory. The generated arrays are cached as .npz, keyed by the arguments we pass and the
package's version (which fixes its defaults), so that a cached load never imports `mnist1d`: it imports
matplotlib.pyplot and requests, 0.65 s here, paid by every process (each worker too) before its first trial.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from importlib.metadata import version

import numpy as np

from slimlab.data.cache import cache_dir

# The package's defaults, which are the paper's: 5,000 samples, 80/20 train/test (4,000/1,000).
DEFAULT_NUM_SAMPLES = 5000
DEFAULT_TRAIN_SPLIT = 0.8


def _generator_args(num_samples: int, train_split: float, seed: int, overrides: dict | None = None) -> dict:
    from mnist1d.data import get_dataset_args

    args = get_dataset_args(as_dict=True)
    args.update(overrides or {})
    args.update(num_samples=num_samples, train_split=train_split, seed=seed)
    args.pop("url", None)  # not an argument of the data, and never used: we generate, never download
    return args


def load_mnist1d(
    num_samples: int = DEFAULT_NUM_SAMPLES,
    train_split: float = DEFAULT_TRAIN_SPLIT,
    seed: int = 42,
    overrides: dict | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test), x of shape (n, 40), float32. Cached after the first call.
    `overrides` changes generator arguments (noise, scale, shear, translation) from the paper's."""
    asked = {"num_samples": num_samples, "train_split": train_split, "seed": seed}
    asked |= {"overrides": overrides or {}, "mnist1d": version("mnist1d")}
    key = hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / f"mnist1d-{key}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as f:
                return f["x"], f["y"], f["x_test"], f["y_test"]
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)  # a corrupt cache entry is regenerated, not trusted
    data = _generate(_generator_args(num_samples, train_split, seed, overrides))
    arrays = {k: data[k] for k in ("x", "y", "x_test", "y_test")}
    arrays["x"] = arrays["x"].astype(np.float32)
    arrays["x_test"] = arrays["x_test"].astype(np.float32)
    arrays["y"] = arrays["y"].astype(np.int64)
    arrays["y_test"] = arrays["y_test"].astype(np.int64)
    # Write atomically, so that two processes generating at once never leave a half-written file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    with os.fdopen(fd, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)
    return arrays["x"], arrays["y"], arrays["x_test"], arrays["y_test"]


def _generate(args: dict) -> dict:
    import random

    from mnist1d.data import make_dataset
    from mnist1d.utils import ObjectView

    # make_dataset seeds numpy's and random's global generators; restore them so that generating data
    # never changes the randomness of anything else in the process.
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        return make_dataset(ObjectView(dict(args)))
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
