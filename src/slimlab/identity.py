"""Trial identity: which fields of a config enter a trial's id.

A trial id is a hash of the serialized configs that determine the trial's result (data, training, treatments,
bench; see `slimlab.experiment.grid.trial_id`). Every config class in it derives from `Hparams`, whose
serialized form leaves out each field that is at its default, as open_lth's `Hparams` does. Adding a field
with a default therefore changes no existing id, so stored runs still resume; setting it changes what the
trial does, and so its id.

The one exception keeps the ids of trials stored before this rule existed: the fields that were hashed even
at their defaults back then. `HASHED_AT_DEFAULT` records them, per class, once. It is history and never
grows: a field added from now on is left out at its default by the rule above, with no list to update. The
rule, in full: a field enters the id when its value differs from its default, or when it is named in
`HASHED_AT_DEFAULT` for its class (then it always enters, as it always did).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer

# The fields each class had when trial ids were first pinned (slimlab 0.1), except those that were already
# left out at their defaults then (data's tabular fields, the bench engine's fields). Frozen: never add to it.
HASHED_AT_DEFAULT: dict[str, frozenset[str]] = {
    "slimlab.config.DataConfig": frozenset(
        {"name", "num_samples", "test_fraction", "val_fraction", "split_seed"}
    ),
    "slimlab.train.trainer.TrainConfig": frozenset(
        {"epochs", "batch_size", "lr", "weight_decay", "optimizer", "patience", "device"}
    ),
    "slimlab.bench.config.BenchConfig": frozenset(
        {
            "enabled",
            "backends",
            "latency_batch_size",
            "throughput_batch_size",
            "warmup_iters",
            "min_time_s",
            "min_iters",
            "threads",
        }
    ),
    "slimlab.treatments.prune.MagnitudePrune": frozenset(
        {"sparsity", "scope", "finetune_epochs", "finetune_lr"}
    ),
    "slimlab.treatments.quantize.DynamicInt8": frozenset({"modules"}),
    "slimlab.treatments.static_quant.StaticInt8": frozenset(
        {"calibration_samples", "backend", "per_channel"}
    ),
    "slimlab.treatments.precision.HalfPrecision": frozenset({"dtype"}),
    "slimlab.treatments.structured.StructuredPrune": frozenset(
        {"sparsity", "criterion", "finetune_epochs", "finetune_lr"}
    ),
    "slimlab.treatments.nm.NMSparsity": frozenset(
        {"n", "m", "finetune_epochs", "finetune_lr", "sparse_kernel", "cuda_dtype"}
    ),
    "slimlab.treatments.finetune.Finetune": frozenset(
        {"epochs", "lr", "distill_alpha", "temperature", "hold_zeros"}
    ),
    "slimlab.treatments.lottery.LotteryTicket": frozenset(
        {"rate", "rounds", "scope", "output_rate", "rewind_step", "control", "epochs", "lr", "keep_masks"}
    ),
}


def qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def hashed_at_default(cls: type) -> frozenset[str]:
    """The fields of `cls` that are serialized even at their defaults: its own record, or its nearest
    recorded base class's (a subclass's new fields are not in it). Empty for every class added from now on."""
    for base in cls.__mro__:
        recorded = HASHED_AT_DEFAULT.get(qualified_name(base))
        if recorded is not None:
            return recorded
    return frozenset()


class Hparams(BaseModel):
    """A frozen config whose serialized form (and so the trial id) leaves out fields at their defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_serializer(mode="wrap")
    def _leave_out_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        always = hashed_at_default(type(self))
        for name, field in type(self).model_fields.items():
            at_default = getattr(self, name) == field.get_default(call_default_factory=True)
            if name in data and name not in always and at_default:
                del data[name]
        return self._serialized(data)

    def _serialized(self, data: dict[str, Any]) -> dict[str, Any]:
        """A hook for a class whose serialized names differ from its fields (see BenchConfig)."""
        return data
