"""Treatments: a frozen config plus a handler, applied with `apply(model, config_or_chain, context)`."""

from slimlab.treatments.base import (
    TreatmentConfig,
    TreatmentContext,
    apply,
    known_treatments,
    parse_treatment,
    register_treatment,
    treatment_types,
)
from slimlab.treatments.prune import MagnitudePrune
from slimlab.treatments.quantize import DynamicInt8

__all__ = [
    "DynamicInt8",
    "MagnitudePrune",
    "TreatmentConfig",
    "TreatmentContext",
    "apply",
    "known_treatments",
    "parse_treatment",
    "register_treatment",
    "treatment_types",
]
