"""The grid: datasets × seeds × variants, and each trial's identity."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import slimlab
from slimlab.config import DataConfig, ExperimentConfig, VariantConfig


@dataclass(frozen=True)
class TrialSpec:
    dataset: DataConfig
    seed: int
    variant: VariantConfig
    id: str


def trial_id(config: ExperimentConfig, dataset: DataConfig, seed: int, variant: VariantConfig) -> str:
    """A hash of everything that determines the trial's result: its data, model, training, treatment
    chain, bench settings, seed, the variant's name and the slimlab version. Renaming the experiment or
    reordering variants does not change it; changing anything it depends on does."""
    resolved = config.to_dict()
    identity = {
        "data": dataset.model_dump(mode="json"),
        "model": resolved["model"],
        # A variant's own training recipe is [train] updated by it; without one this is [train] itself.
        "train": config.train_for(variant).model_dump(mode="json"),
        "bench": resolved["bench"],
        "variant": variant.name,
        "treatments": [t.to_dict() for t in variant.treatments],
        "seed": seed,
        "slimlab": slimlab.__version__,
    }
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def expand(config: ExperimentConfig) -> list[TrialSpec]:
    """All trials, grouped so that the variants of one (dataset, seed) share one dense parent."""
    return [
        TrialSpec(dataset, seed, variant, trial_id(config, dataset, seed, variant))
        for dataset in config.data
        for seed in config.evaluate.seed_list
        for variant in config.variants
    ]
