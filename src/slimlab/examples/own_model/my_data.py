"""A user's own data factory: scikit-learn's bundled handwritten digits (1,797 real 8x8 scans, no download)
as 1x8x8 images. slimlab holds out the test split (data.test_fraction, by data.split_seed) and the
validation split (by the trial seed)."""

import numpy as np
from sklearn.datasets import load_digits


def digits_images(scale: float = 16.0):
    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / scale)[:, None, :, :]  # (n, 1, 8, 8), pixel values in [0, 1]
    y = bunch.target.astype(np.int64)
    return x, y
