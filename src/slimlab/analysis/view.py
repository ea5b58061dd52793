"""What every analysis section computes from: the run's typed config, its trials, its environment, and one
cached way to rebuild a dataset from the config (the test split depends only on `data.split_seed`, so one
rebuild per dataset serves every section)."""

from __future__ import annotations

from dataclasses import dataclass, field

from slimlab.config import DataConfig, ExperimentConfig
from slimlab.data import Dataset, load_dataset
from slimlab.experiment.record import TrialRecord


@dataclass
class RunView:
    config: ExperimentConfig
    trials: list[TrialRecord]
    environment: dict
    _datasets: dict[str, Dataset] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.trials = [TrialRecord.from_dict(t) for t in self.trials]

    @property
    def ok(self) -> list[TrialRecord]:
        return [t for t in self.trials if t.status == "ok"]

    @property
    def trial_dicts(self) -> list[dict]:
        """The records as plain mappings, for the lower layers (`stats`, `evaluate`), which take those."""
        return [t.to_dict() for t in self.trials]

    def dataset(self, data: DataConfig, seed: int | None = None) -> Dataset:
        """The dataset of `data`, built once per view. `seed` fixes only the validation split (the test
        split is the same for every seed); by default the first seed of the experiment."""
        seed = self.config.evaluate.seed_list[0] if seed is None else seed
        key = f"{data.model_dump_json()}#{seed}"
        if key not in self._datasets:
            self._datasets[key] = load_dataset(data, seed)
        return self._datasets[key]
