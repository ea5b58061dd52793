"""Trial identity: fields at their defaults stay out of trial ids, and the ids of stored trials never move."""

import importlib
from pathlib import Path

import pytest
from pydantic import Field

from slimlab.bench import BenchConfig
from slimlab.config import DataConfig, ExperimentConfig, load_experiment, parse_experiment
from slimlab.errors import ConfigError
from slimlab.experiment import expand, trial_id
from slimlab.identity import HASHED_AT_DEFAULT, Hparams, hashed_at_default
from slimlab.train import TrainConfig
from slimlab.treatments import MagnitudePrune, known_treatments

BASE = {"name": "h", "variants": [{"name": "dense"}]}
# One variant per treatment kind at its defaults, and one with every field set.
TREATMENTS = {
    "magnitude_prune": [
        {"sparsity": 0.5},
        {"sparsity": 0.9, "scope": "layer", "finetune_epochs": 2, "finetune_lr": 0.003},
    ],
    "dynamic_int8": [{}, {"modules": ["Linear", "LSTM"]}],
    "static_int8": [{}, {"calibration_samples": 64, "backend": "torch_ao", "per_channel": False}],
    "half_precision": [{}, {"dtype": "fp16"}],
    "structured_prune": [{"sparsity": 0.25}, {"sparsity": 0.5, "criterion": "l1", "finetune_epochs": 1}],
    "nm_sparsity": [
        {},
        {"n": 1, "m": 4, "finetune_epochs": 1, "sparse_kernel": False, "cuda_dtype": "bf16"},
    ],
    "finetune": [
        {},
        {"epochs": 2, "lr": 0.1, "distill_alpha": 0.5, "temperature": 2.0, "hold_zeros": False},
    ],
    "lottery_ticket": [
        {},
        {
            "rate": 0.3,
            "rounds": 3,
            "scope": "global",
            "output_rate": 0.1,
            "rewind_step": 2,
            "control": "reinit",
            "epochs": 2,
            "lr": 0.1,
            "keep_masks": False,
        },
    ],
    "linear_half": [{}, {"dtype": "bf16"}],
    "embedding_int8": [{}, {"bits": 4}],
    "embedding_fp16": [{}],
    "embedding_compress": [
        {},
        {"method": "hash", "ratio": 0.5, "min_rows": 10, "finetune_epochs": 1, "lr": 0.01},
    ],
    "mixed_int8": [{}, {"keep_float": 2, "per_channel": False, "calibration_samples": 64}],
    "moe": [{}, {"num_experts": 4, "capacity_factor": 2.0, "finetune_epochs": 1}],
}
VARIANTS = [{"name": "dense"}] + [
    {"name": f"{kind}-{i}", "treatments": [{"kind": kind, **fields}]}
    for kind, options in TREATMENTS.items()
    for i, fields in enumerate(options)
]
CONFIGS = {
    "default": BASE,
    "data_core": {
        **BASE,
        "data": {
            "name": "digits",
            "num_samples": 500,
            "test_fraction": 0.3,
            "val_fraction": 0.2,
            "split_seed": 3,
        },
    },
    "data_tabular": {
        **BASE,
        "data": {
            "name": "adult",
            "group_columns": ["sex"],
            "intersections": ["sex×race"],
            "categorical": ["sex"],
            "drop": ["x"],
            "feature_groups": True,
            "target": "income",
        },
    },
    "data_csv": {
        **BASE,
        "data": {
            "name": "csv",
            "path": "a.csv",
            "test_path": "b.csv",
            "target": "y",
            "group_map": {"g": {"a": "b"}},
        },
    },
    "model": {**BASE, "model": {"name": "mlp"}},
    "train": {
        **BASE,
        "train": {
            "epochs": 3,
            "batch_size": 10,
            "lr": 0.1,
            "weight_decay": 0.01,
            "optimizer": "sgd",
            "patience": None,
            "device": "cpu",
        },
    },
    "bench_core": {
        **BASE,
        "bench": {
            "enabled": False,
            "backends": ["eager", "onnxruntime"],
            "latency_batch_size": 2,
            "throughput_batch_size": 8,
            "warmup_iters": 1,
            "min_time_s": 0.1,
            "min_iters": 3,
            "threads": 1,
        },
    },
    "bench_engine": {
        **BASE,
        "bench": {
            "scenarios": ["server"],
            "batch_sizes": [1, 4],
            "loadgen_scale": 0.5,
            "latency_budget_ms": 5.0,
            "max_queue_delay_ms": 2.0,
            "server_max_batch": 16,
            "max_seconds": 3.0,
            "dollars_per_hour": 1.5,
            "accuracy_margin": 0.02,
            "check_outputs": False,
            "save_models": True,
        },
    },
    "bench_server_only": {
        **BASE,
        "bench": {"scenarios": ["single-stream", "offline", "server"], "latency_budget_ms": 20.0},
    },
}
# Computed by the code before slimlab.identity existed (hand-kept lists of the fields left out at default).
PINNED = {
    "default": "db4077940c20d6ba",
    "data_core": "c1d384b5ccc12dac",
    "data_tabular": "d3bf3a24a0933a3e",
    "data_csv": "838565f03f4ad2f0",
    "model": "a9035cb95e33bcde",
    "train": "5416b37a386ecb24",
    "bench_core": "7442e57cee2b38e3",
    "bench_engine": "6bcad3f9b214064d",
    "bench_server_only": "71833a55bb264ec5",
}
PINNED_TREATMENTS = [
    "db4077940c20d6ba",
    "67a3cc2338cbbfae",
    "ae032c274fa531c1",
    "449c84371f10fb62",
    "9ac3a7699f5774eb",
    "c75df8ba9db0c359",
    "fe56ed21e44f82e9",
    "a637b4ebcd7a4f34",
    "10031cc1dbd7ba9d",
    "3e6b88db2ba083ac",
    "61d2874c439c5e04",
    "4cb07d67df04d519",
    "49a172710c4f43d6",
    "9ba81209e20bb0d9",
    "14d10593018f09c6",
    "9beb12c9212ac51a",
    "32fb1454aba29571",
    "59ce4298f2181bc5",
    "2343ed1073cd77c2",
    "eb65aca4ef3597db",
    "ada369a8d08cb541",
    "57007d92d154949e",
    "37dba73583fdd7f4",
    "6319007e08007cf8",
    "03dc1167f22a1bba",
    "92e639dcc8944394",
    "b3494809a367f2a3",
    "3ace9499104184c8",
]
QUICKSTART = Path(__file__).resolve().parents[1] / "examples" / "quickstart.toml"


@pytest.mark.parametrize("name", sorted(PINNED))
def test_trial_ids_of_every_section_are_pinned(name):
    assert expand(parse_experiment(CONFIGS[name]))[0].id == PINNED[name]


def test_trial_ids_of_every_treatment_are_pinned():
    assert sorted(TREATMENTS) == known_treatments()  # a new treatment kind: add it here, with its ids
    specs = expand(parse_experiment({**BASE, "variants": VARIANTS}))
    assert [s.id for s in specs[: len(VARIANTS)]] == PINNED_TREATMENTS


def test_the_quickstart_quick_run_keeps_its_ids():
    # `slimlab run examples/quickstart.toml --quick` folders written before this rule resume with these ids
    assert expand(load_experiment(QUICKSTART).quick())[0].id == "464ca2d42135b6c5"


def test_the_record_of_fields_hashed_at_default_names_real_classes_and_fields():
    for qualified, fields in HASHED_AT_DEFAULT.items():
        module, _, name = qualified.rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        assert issubclass(cls, Hparams), qualified
        assert fields <= set(cls.model_fields), (qualified, fields - set(cls.model_fields))


class NewTrain(TrainConfig):
    label_smoothing: float = Field(default=0.0, ge=0)


class NewData(DataConfig):
    augment: list[str] = Field(default_factory=list)


class NewPrune(MagnitudePrune):
    kind = "magnitude_prune"  # the same treatment, one field more
    schedule: str = "one-shot"


class Fresh(Hparams):
    size: int = 3
    mode: str = "a"


class WideExperiment(ExperimentConfig):
    """The experiment as it would be once TrainConfig had gained a field."""

    train: NewTrain = Field(default_factory=NewTrain)


def test_a_new_field_at_its_default_changes_no_trial_id():
    raw = {**CONFIGS["train"], "data": CONFIGS["data_core"]["data"]}
    config, wide = parse_experiment(raw), WideExperiment.model_validate(raw)
    spec = expand(config)[0]
    data = NewData(**spec.dataset.model_dump())
    assert trial_id(wide, data, spec.seed, spec.variant) == spec.id
    assert NewPrune(sparsity=0.5).to_dict() == MagnitudePrune(sparsity=0.5).to_dict()

    # ... and setting it does change the id: it changes what the trial does.
    smoothed = WideExperiment.model_validate({**raw, "train": {**raw["train"], "label_smoothing": 0.1}})
    assert trial_id(smoothed, spec.dataset, spec.seed, spec.variant) != spec.id
    augmented = NewData(**spec.dataset.model_dump(), augment=["flip"])
    assert trial_id(config, augmented, spec.seed, spec.variant) != spec.id
    assert NewPrune(sparsity=0.5, schedule="gradual").to_dict()["schedule"] == "gradual"


def test_fields_hashed_at_default_are_the_recorded_ones_and_new_classes_hash_none():
    assert hashed_at_default(NewTrain) == hashed_at_default(TrainConfig)  # a subclass's new field: not in it
    assert "label_smoothing" not in NewTrain().model_dump()
    # the recorded fields are kept at their defaults; a field added later (select_on) is left out
    assert (
        set(TrainConfig().model_dump()) == set(hashed_at_default(TrainConfig))
        and "select_on" not in TrainConfig().model_dump()
    )
    assert Fresh().model_dump() == {} and Fresh(size=4).model_dump() == {"size": 4}
    assert Fresh.model_validate(Fresh(size=4).model_dump()) == Fresh(size=4)  # defaults come back on parse


def test_bench_server_table_and_flat_keys_are_one_setting_with_one_id():
    flat = {**BASE, "bench": {"scenarios": ["server"], "latency_budget_ms": 5.0, "server_max_batch": 16}}
    nested = {
        **BASE,
        "bench": {"scenarios": ["server"], "server": {"latency_budget_ms": 5.0, "max_batch": 16}},
    }
    a, b = parse_experiment(flat), parse_experiment(nested)
    assert a.bench == b.bench and a.bench.server.max_batch == 16
    assert [s.id for s in expand(a)] == [s.id for s in expand(b)]
    assert a.to_dict()["bench"]["server_max_batch"] == 16 and "server" not in a.to_dict()["bench"]
    assert parse_experiment(a.to_dict()).bench == a.bench  # the stored config re-parses to the same
    both = {**BASE, "bench": {"latency_budget_ms": 5.0, "server": {"latency_budget_ms": 6.0}}}
    with pytest.raises(ConfigError, match=r"`bench.latency_budget_ms` and `bench.server.latency_budget_ms`"):
        parse_experiment(both)
    with pytest.raises(
        ConfigError, match=r"unknown key `bench.server.budget`; known keys: latency_budget_ms"
    ):
        parse_experiment({**BASE, "bench": {"server": {"budget": 5}}})
    with pytest.raises(ConfigError, match=r"known keys: .*server, .*latency_budget_ms"):
        parse_experiment({**BASE, "bench": {"latency_budget": 5}})
    assert BenchConfig(latency_budget_ms=7.0).latency_budget_ms == 7.0  # the flat name still reads
