"""Offline source and target tasks for transfer learning, each a related but different task.

- `mnist1d_shifted`: MNIST-1D drawn again from the same ten templates with shifted generation parameters
  (more correlated and i.i.d. noise, stronger shear and scale changes) and another generator seed, so that
  no sample of it is a sample of `mnist1d` (its test split included). Pretrain here, transfer to `mnist1d`.
- `digits_0_4` and `digits_5_9`: scikit-learn's digits split by class, each relabelled 0..4. Pretrain on
  one half, transfer to the other: the same pen strokes, different classes.
"""

from __future__ import annotations

from slimlab.data.dataset import Dataset, Split
from slimlab.data.mnist1d import DEFAULT_NUM_SAMPLES, DEFAULT_TRAIN_SPLIT, load_mnist1d
from slimlab.data.registry import DATASETS, DataOptions, digits_dataset, with_validation

# The paper's generator defaults are scale_coeff 0.4, corr_noise_scale 0.25, iid_noise_scale 2e-2,
# shear_scale 0.75, max_translation 48.
SHIFTED_MNIST1D = {
    "scale_coeff": 0.6,
    "corr_noise_scale": 0.4,
    "iid_noise_scale": 5e-2,
    "shear_scale": 1.0,
    "max_translation": 56,
}
SHIFTED_SEED_OFFSET = 7_000  # the target uses 42 + split_seed; the source's samples are drawn apart


@DATASETS.register("mnist1d_shifted")
def _mnist1d_shifted(options: DataOptions, seed: int) -> Dataset:
    num_samples = options.num_samples or 2 * DEFAULT_NUM_SAMPLES
    train_split = 1.0 - options.test_fraction if options.test_fraction else DEFAULT_TRAIN_SPLIT
    x, y, x_test, y_test = load_mnist1d(
        num_samples, train_split, seed=SHIFTED_SEED_OFFSET + options.split_seed, overrides=SHIFTED_MNIST1D
    )
    meta = {
        "source": "mnist1d.make_dataset with shifted generation parameters",
        "overrides": SHIFTED_MNIST1D,
        "num_samples": num_samples,
    }
    return with_validation(
        "mnist1d_shifted", Split(x, y), Split(x_test, y_test), options.val_fraction, seed, 10, meta
    )


@DATASETS.register("digits_0_4")
def _digits_low(options: DataOptions, seed: int) -> Dataset:
    return digits_dataset(options, seed, classes=(0, 1, 2, 3, 4), name="digits_0_4")


@DATASETS.register("digits_5_9")
def _digits_high(options: DataOptions, seed: int) -> Dataset:
    return digits_dataset(options, seed, classes=(5, 6, 7, 8, 9), name="digits_5_9")
