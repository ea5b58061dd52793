"""Evaluation: what a model scores, what it costs, and the pitfall checks (`slimlab.evaluate.pitfalls`).

The cost counters need torch; they are imported on first use, so that the pitfall checks (and
`slimlab.stats`, which uses them) load without it."""

from importlib import import_module

__all__ = ["count_flops", "count_parameters", "serialized_size"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(import_module("slimlab.evaluate.model_stats"), name)
    raise AttributeError(f"module 'slimlab.evaluate' has no attribute {name!r}")
