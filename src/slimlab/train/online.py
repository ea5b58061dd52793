"""Online ("Ideal World") training data: a fresh MNIST-1D sample at every step, from the dataset's own
generative process.

The `mnist1d` package builds each sample with a Python loop over samples (`mnist1d.transform.transform`:
pad, dilate, scale, translate, correlated noise, i.i.d. noise, shear, downsample), about 2.7 ms per sample
on our CPU. The Ideal World of the Deep Bootstrap needs steps × batch fresh samples (hundreds of thousands),
so `transform_batch` re-implements that same transform on a whole batch with NumPy. It is hand-written
for speed only: given the same random draws it reproduces the package's `transform` to float precision,
which `tests/test_online.py` checks against the package itself.

The published data set standardises its samples with the mean and standard deviation of the whole set;
`MNIST1DSampler` standardises with those of a large reference draw (fixed seed), so that every sample it
produces, whenever it is produced, is on the same scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

REFERENCE_SAMPLES = 20_000
REFERENCE_SEED = 20_210_504


@lru_cache(maxsize=1)
def _generator_config() -> tuple[np.ndarray, dict]:
    from mnist1d.data import get_dataset_args, get_templates

    args = get_dataset_args(as_dict=True)
    return get_templates()["x"], args


@dataclass(frozen=True)
class Draws:
    """The random numbers one `transform` call consumes, for a batch of n samples, in the package's order."""

    pad: np.ndarray  # (n,) uniform [0, 1)
    scale: np.ndarray  # (n,) uniform [0, 1)
    shift: np.ndarray  # (n,) integers in [0, max_translation)
    corr_noise: np.ndarray  # (n, L) standard normal
    iid_noise: np.ndarray  # (n, L) standard normal
    shear: np.ndarray  # (n,) uniform [0, 1)

    @classmethod
    def sample(cls, rng: np.random.Generator, n: int) -> Draws:
        _, args = _generator_config()
        length = args["template_len"] + args["padding"][1]
        return cls(
            rng.random(n),
            rng.random(n),
            rng.integers(0, args["max_translation"], n),
            rng.standard_normal((n, length)),
            rng.standard_normal((n, length)),
            rng.random(n),
        )


def _interpolate_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) linear interpolation from a uniform grid of n_in points to one of n_out points."""
    pos = np.linspace(0, 1, n_out) * (n_in - 1)
    lo = np.minimum(np.floor(pos).astype(int), n_in - 2)
    frac = pos - lo
    m = np.zeros((n_out, n_in))
    m[np.arange(n_out), lo] = 1 - frac
    m[np.arange(n_out), lo + 1] += frac
    return m


def transform_batch(templates: np.ndarray, draws: Draws, eps: float = 1e-8) -> np.ndarray:
    """The package's `transform` on a batch: templates (n, template_len) → unstandardised signals (n, 40)."""
    _, args = _generator_config()
    n, tlen = templates.shape
    low, high = args["padding"]
    length = tlen + high  # the dilated length
    # pad with p zeros, p in [low, high], then dilate back to `length` points by linear interpolation
    p = low + (draws.pad * (high - low + 1)).astype(int)
    src_len = tlen + p  # (n,)
    pos = np.linspace(0, 1, length)[None, :] * (src_len[:, None] - 1)
    lo = np.minimum(np.floor(pos).astype(int), src_len[:, None] - 2)
    frac = pos - lo
    padded = np.zeros((n, tlen + high + 1))
    padded[:, :tlen] = templates + eps

    def at(index: np.ndarray) -> np.ndarray:
        return np.take_along_axis(padded, index, axis=1)

    x = at(lo) + (at(lo + 1) - at(lo)) * frac
    x = x * (1 + args["scale_coeff"] * (draws.scale - 0.5))[:, None]
    # translate: a circular shift right by k
    index = (np.arange(length)[None, :] - draws.shift[:, None]) % length
    x = np.take_along_axis(x, index, axis=1)
    mask = x != 0
    corr = gaussian_filter1d(args["corr_noise_scale"] * draws.corr_noise, 2, axis=1)
    x = np.where(mask, x, corr)
    x = x + args["iid_noise_scale"] * draws.iid_noise
    coeff = args["shear_scale"] * (draws.shear - 0.5)
    x = x - coeff[:, None] * np.linspace(-0.5, 0.5, length)[None, :]
    return x @ _interpolate_matrix(length, args["final_seq_length"]).T


def raw_samples(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n unstandardised samples with labels drawn uniformly from the ten classes."""
    templates, _ = _generator_config()
    y = rng.integers(0, len(templates), n)
    return transform_batch(templates[y], Draws.sample(rng, n)), y


@lru_cache(maxsize=1)
def reference_scale() -> tuple[float, float]:
    """(mean, std) of a large fixed reference draw: the standardisation every sampler shares."""
    x, _ = raw_samples(np.random.default_rng(REFERENCE_SEED), REFERENCE_SAMPLES)
    return float(x.mean()), float(x.std())


class MNIST1DSampler:
    """Fresh, i.i.d. MNIST-1D samples: `sample(n)` never repeats a sample (up to the chance of equal draws
    from a continuous distribution). Two samplers with different seeds give independent streams."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng([seed, 0x5EED])
        self.mean, self.std = reference_scale()

    def sample(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        x, y = raw_samples(self.rng, n)
        return ((x - self.mean) / self.std).astype(np.float32), y.astype(np.int64)

    def batches(self, batch_size: int, chunk: int = 8192):
        """An endless stream of (x, y) torch batches, generated a chunk at a time."""
        while True:
            x, y = self.sample(max(chunk, batch_size) // batch_size * batch_size)
            xt, yt = torch.from_numpy(x), torch.from_numpy(y)
            for i in range(0, len(y), batch_size):
                yield xt[i : i + batch_size], yt[i : i + batch_size]
