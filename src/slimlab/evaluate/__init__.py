"""Evaluation: what a model scores, and what it costs."""

from slimlab.evaluate.model_stats import count_flops, count_parameters, serialized_size

__all__ = ["count_flops", "count_parameters", "serialized_size"]
