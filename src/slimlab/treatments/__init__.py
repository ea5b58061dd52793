"""Treatments: a frozen config plus a handler, applied with `apply(model, config_or_chain, context)`."""

from slimlab.treatments.base import (
    TREATMENTS,
    TreatmentConfig,
    TreatmentContext,
    TreatmentSpec,
    apply,
    known_treatments,
    parse_treatment,
    register_treatment,
    treatment_types,
)
from slimlab.treatments.embedding import EmbeddingCompress, EmbeddingFp16, EmbeddingInt8, LinearHalf
from slimlab.treatments.finetune import Finetune
from slimlab.treatments.lottery import LotteryTicket
from slimlab.treatments.mixed_precision import MixedInt8
from slimlab.treatments.moe import MoEUpcycle
from slimlab.treatments.nm import NMSparsity
from slimlab.treatments.precision import HalfPrecision
from slimlab.treatments.prune import MagnitudePrune
from slimlab.treatments.quantize import DynamicInt8
from slimlab.treatments.static_quant import StaticInt8
from slimlab.treatments.structured import StructuredPrune

__all__ = [
    "TREATMENTS",
    "DynamicInt8",
    "EmbeddingCompress",
    "EmbeddingFp16",
    "EmbeddingInt8",
    "Finetune",
    "HalfPrecision",
    "LinearHalf",
    "LotteryTicket",
    "MagnitudePrune",
    "MixedInt8",
    "MoEUpcycle",
    "NMSparsity",
    "StaticInt8",
    "StructuredPrune",
    "TreatmentConfig",
    "TreatmentContext",
    "TreatmentSpec",
    "apply",
    "known_treatments",
    "parse_treatment",
    "register_treatment",
    "treatment_types",
]
