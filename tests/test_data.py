import numpy as np

from slimlab.config import DataConfig
from slimlab.data import load_dataset
from slimlab.data.cache import cache_dir
from slimlab.data.mnist1d import load_mnist1d


def test_mnist1d_paper_split_and_shapes():
    x, y, x_test, _ = load_mnist1d()  # the paper's defaults: 5,000 samples, 4,000/1,000
    assert x.shape == (4000, 40) and x_test.shape == (1000, 40)
    assert x.dtype == np.float32 and y.dtype == np.int64
    assert set(np.unique(y)) == set(range(10))


def test_mnist1d_is_cached_as_npz_and_restores_global_rng(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the package's get_dataset would write a pickle here; we must not
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    first = load_mnist1d(num_samples=300, seed=7)
    assert np.random.rand() == expected  # generation did not disturb the global generator
    second = load_mnist1d(num_samples=300, seed=7)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    assert list(tmp_path.iterdir()) == []
    assert list(cache_dir().glob("mnist1d-*.npz"))
    assert not list(cache_dir().glob("*.pkl"))


def test_corrupt_cache_entry_is_regenerated():
    load_mnist1d(num_samples=200, seed=3)
    for path in cache_dir().glob("mnist1d-*.npz"):
        path.write_bytes(b"not an npz")
    x, *_ = load_mnist1d(num_samples=200, seed=3)
    assert x.shape == (160, 40)


def test_splits_depend_only_on_the_seed():
    options = DataConfig(name="mnist1d", num_samples=500)
    a, b, c = load_dataset(options, 0), load_dataset(options, 0), load_dataset(options, 1)
    np.testing.assert_array_equal(a.val.x, b.val.x)
    assert not np.array_equal(a.val.x, c.val.x)
    np.testing.assert_array_equal(a.test.x, c.test.x)  # one test set for every seed: paired per sample
    assert len(a.train) + len(a.val) == 400 and len(a.val) == 40


def test_digits_is_standardised_on_train_only():
    data = load_dataset(DataConfig(name="digits"), 0)
    assert data.input_shape == (64,)
    assert len(data.test) == 360
    np.testing.assert_allclose(data.train.x.mean(axis=0), 0, atol=1e-4)
    assert abs(float(data.test.x.mean())) > 1e-4  # test statistics were not used
    assert data.meta["standardised_on"] == "train"


def test_a_cached_mnist1d_load_does_not_import_the_package():
    """Importing `mnist1d` pulls in matplotlib.pyplot and requests (0.65 s); every process, each worker
    too, paid it before its first trial, even when the data came from the cache."""
    import subprocess
    import sys

    load_mnist1d(num_samples=220, seed=5)  # now cached
    code = (
        "import sys; from slimlab.data.mnist1d import load_mnist1d; load_mnist1d(num_samples=220, seed=5); "
        "print('mnist1d' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
