"""A 784-input workload from real data, offline: scikit-learn's 1,797 bundled 8x8 digit scans, upsampled
bilinearly to 28x28 (MNIST's size) and flattened, pixel values in [0, 1]."""

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits


def digits_28x28():
    bunch = load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0)[:, None]
    big = F.interpolate(images, size=(28, 28), mode="bilinear", align_corners=False)
    return big.flatten(1).numpy(), bunch.target.astype(np.int64)
