"""Data from anywhere: a factory by import path, a `.npz` file, a folder of images (one subfolder per
class). Each becomes a `Dataset` whose inputs may be an array, a tuple or a dict of arrays of any dtype;
a `transform` hook (like `nncf.Dataset(data, transform_fn)`) maps a batch of the loaded inputs to the
model's inputs.

A factory (`data.factory = "my_data:load"`, `[data.params]` its keyword arguments) returns one of:
- `{"train": T, "test": T}` (optionally `"val": T`, `"num_classes": int`), where each T is an `(x, y)`
  pair of arrays/tensors, or a torch `Dataset` / `DataLoader` of `(inputs, target)` items;
- one `(x, y)` pair, or one torch `Dataset`: the test split is then `data.test_fraction` of it (default
  0.2), chosen by `data.split_seed`.
Torch datasets are read into memory once (every item collated), so that splits, paired tests and the
bench's example inputs work on arrays.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from slimlab.data.batches import Inputs, as_float32, collate_dataset, concat, n_rows, take, to_numpy
from slimlab.data.dataset import Dataset, Split
from slimlab.errors import DataFileError
from slimlab.imports import Located, file_sha256, load_object, locate

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def resolve_data_source(config: Any, base_dir: Path) -> dict[str, Any]:
    """The files behind a DataConfig (factory and transform modules, the npz file or image folder),
    resolved against `base_dir`, with hashes where they are files."""
    out: dict[str, Any] = {}
    if config.factory:
        located = locate(config.factory, base_dir, "data.factory")
        out["factory_file"], out["factory_sha256"] = located.file, located.sha256
    if config.transform:
        located = locate(config.transform, base_dir, "data.transform")
        out["transform_file"], out["transform_sha256"] = located.file, located.sha256
    if config.name in ("npz", "images") and config.factory is None:
        path = Path(config.path)
        path = (path if path.is_absolute() else base_dir / path).resolve()
        if config.name == "npz":
            if path.suffix.lower() != ".npz" or not path.is_file():
                raise DataFileError(f"`data.path`: {path} is not a .npz file")
            out["sha256"] = file_sha256(path)
        elif not path.is_dir():
            raise DataFileError(f"`data.path`: {path} is not a folder (one subfolder of images per class)")
        out["path"] = str(path)
    return out


def split_indices(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held out): stratified by class where the labels allow it, else a seeded random split."""
    from slimlab.data.splits import stratified_split

    y = np.asarray(y)
    if np.issubdtype(y.dtype, np.integer) and y.ndim == 1:
        _, counts = np.unique(y, return_counts=True)
        if counts.min() >= 2 and len(counts) <= fraction * len(y) and len(counts) <= (1 - fraction) * len(y):
            return stratified_split(y, fraction, seed)
    order = np.random.default_rng(seed).permutation(len(y))
    held = max(1, round(fraction * len(y)))
    return np.sort(order[held:]), np.sort(order[:held])


def _pair(value: Any, where: str) -> tuple[Inputs, np.ndarray]:
    """(inputs, targets) from an (x, y) pair of arrays or tensors, a Split, or a torch Dataset/DataLoader."""
    import torch

    if isinstance(value, Split):
        return value.x, value.y
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and isinstance(value[1], (np.ndarray, torch.Tensor))
    ):
        return as_float32(to_numpy(value[0])), np.asarray(to_numpy(value[1]))
    x, y = collate_dataset(value, where)
    return as_float32(x), y


def _labels(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y)
    if np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_:
        return y.astype(np.int64)
    return y.astype(np.float32)


def _num_classes(*ys: np.ndarray) -> int:
    if all(np.issubdtype(y.dtype, np.integer) for y in ys):
        return int(max(int(y.max()) for y in ys if len(y)) + 1)
    return 0  # float targets: regression or fidelity


def build_dataset(
    name: str,
    loaded: Any,
    options: Any,
    seed: int,
    where: str,
    meta: dict[str, Any],
) -> Dataset:
    """Splits from what a factory (or file reader) returned; the test split depends only on
    `options.split_seed`, the validation split on the trial's `seed`."""
    num_classes = None
    if isinstance(loaded, dict) and "train" in loaded:
        if "test" not in loaded:
            raise DataFileError(f"{where}: the returned dict has 'train' but no 'test'")
        num_classes = loaded.get("num_classes")
        x, y = _pair(loaded["train"], f"{where} (train)")
        x_test, y_test = _pair(loaded["test"], f"{where} (test)")
        val = _pair(loaded["val"], f"{where} (val)") if "val" in loaded else None
    else:
        x_all, y_all = _pair(loaded, where)
        rest, held = split_indices(y_all, options.test_fraction or 0.2, options.split_seed)
        x, y, x_test, y_test = take(x_all, rest), y_all[rest], take(x_all, held), y_all[held]
        val = None
    y, y_test = _labels(y), _labels(y_test)
    if options.num_samples and options.num_samples < len(y):
        keep, _ = split_indices(y, 1 - options.num_samples / len(y), options.split_seed)
        x, y = take(x, keep), y[keep]
    if val is not None:
        train, val_split = Split(x, y), Split(val[0], _labels(val[1]))
    else:
        kept, held = split_indices(y, options.val_fraction, seed)
        train, val_split = Split(take(x, kept), y[kept]), Split(take(x, held), y[held])
    test = Split(x_test, y_test)
    classes = int(num_classes) if num_classes is not None else _num_classes(y, y_test)
    return Dataset(name, train, val_split, test, classes, meta)


def apply_transform(data: Dataset, options: Any) -> Dataset:
    """Map every split's inputs through `data.transform` (in batches of 1024 rows)."""
    if not options.transform:
        return data
    source = options.source or {}
    module, _, attr = options.transform.partition(":")
    fn = load_object(
        Located(
            options.transform, module, attr, source.get("transform_file"), source.get("transform_sha256")
        ),
        "data.transform",
    )

    def mapped(split: Split) -> Split:
        parts = [
            as_float32(to_numpy(fn(take(split.x, slice(i, i + 1024))))) for i in range(0, len(split), 1024)
        ]
        x = concat(parts) if parts else split.x
        if n_rows(x) != len(split):
            raise DataFileError(f"data.transform returned {n_rows(x)} rows for a batch of {len(split)}")
        return Split(x, split.y, split.groups)

    return Dataset(
        data.name,
        mapped(data.train),
        mapped(data.val),
        mapped(data.test),
        data.num_classes,
        {**data.meta, "transform": options.transform},
    )


def load_factory(options: Any, seed: int) -> Dataset:
    source = options.source or {}
    module, _, attr = options.factory.partition(":")
    fn = load_object(
        Located(options.factory, module, attr, source.get("factory_file"), source.get("factory_sha256")),
        "data.factory",
    )
    try:
        loaded = fn(**options.params)
    except TypeError as e:
        raise DataFileError(f"data.factory {options.factory}: {e} (check [data.params])") from None
    meta = {"source": options.factory, "file": source.get("factory_file")}
    return apply_transform(
        build_dataset(options.name, loaded, options, seed, f"data.factory {options.factory}", meta), options
    )


def read_npz(path: str | Path) -> dict[str, Inputs | np.ndarray]:
    """Arrays of a .npz file, never unpickled (allow_pickle=False). Inputs are `x` (or `x_train`,
    `x_test`); several inputs are `x:NAME` (or `x_train:NAME`), which become a dict."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (OSError, ValueError) as e:
        raise DataFileError(f"{path}: not a readable .npz file of arrays ({e})") from None
    out: dict[str, Any] = {}
    for key, value in arrays.items():
        base, _, input_name = key.partition(":")
        if input_name:
            out.setdefault(base, {})[input_name] = value
        else:
            out[key] = value
    return out


def load_npz(options: Any, seed: int) -> Dataset:
    path = Path((options.source or {}).get("path") or options.path)
    arrays = read_npz(path)
    if "x_train" in arrays and "y_train" in arrays and "x_test" in arrays and "y_test" in arrays:
        loaded: Any = {
            "train": (arrays["x_train"], arrays["y_train"]),
            "test": (arrays["x_test"], arrays["y_test"]),
        }
    elif "x" in arrays and "y" in arrays:
        loaded = (arrays["x"], arrays["y"])
    else:
        raise DataFileError(
            f"{path}: expected arrays x and y (or x_train, y_train, x_test, y_test); "
            f"found {', '.join(arrays)}"
        )
    return apply_transform(
        build_dataset("npz", loaded, options, seed, str(path), {"source": str(path)}), options
    )


def read_image_folder(
    path: str | Path, size: list[int] | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images as float32 (n, channels, height, width) in [0, 1], labels, class names) from a folder with
    one subfolder per class. Grayscale images give one channel, others three (RGB)."""
    try:
        from PIL import Image
    except ImportError:
        raise DataFileError("reading an image folder needs Pillow: pip install pillow") from None
    path = Path(path)
    classes = sorted(d.name for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataFileError(f"{path}: no class subfolders (expected one subfolder of images per class)")
    images, labels, mode, shape = [], [], None, None
    for label, name in enumerate(classes):
        files = sorted(f for f in (path / name).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        for f in files:
            try:
                with Image.open(f) as img:
                    mode = mode or ("L" if img.mode in ("L", "1", "I", "I;16", "F") else "RGB")
                    img = img.convert(mode)
                    if size:
                        img = img.resize((size[1], size[0]))
                    array = np.asarray(img, dtype=np.float32) / 255.0
            except OSError as e:
                raise DataFileError(f"{f}: not a readable image ({e})") from None
            array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
            if shape is None:
                shape = array.shape
            elif array.shape != shape:
                raise DataFileError(
                    f"{f}: image shape {array.shape[1:]} differs from {shape[1:]}; "
                    "set data.image_size = [h, w]"
                )
            images.append(array)
            labels.append(label)
    if not images:
        raise DataFileError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in the class subfolders")
    return np.stack(images), np.asarray(labels, dtype=np.int64), classes


def load_images(options: Any, seed: int) -> Dataset:
    path = Path((options.source or {}).get("path") or options.path)
    x, y, classes = read_image_folder(path, options.image_size)
    data = build_dataset(
        "images", (x, y), options, seed, str(path), {"source": str(path), "classes": classes}
    )
    return apply_transform(data, options)
