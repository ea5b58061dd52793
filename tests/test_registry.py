"""The one registry idiom: each registry lists its known names on a miss; config fields follow it."""

import pytest

from slimlab.bench import BACKENDS, BenchConfig
from slimlab.bench.scenario_runs import (
    SCENARIOS,
    Offline,
    Server,
    ServerSettings,
    SingleStream,
    scenarios_for,
)
from slimlab.bench.scenario_runs import sweep_sizes as sweep_of
from slimlab.config import parse_experiment
from slimlab.data import DATASETS
from slimlab.errors import ConfigError, UnknownNameError
from slimlab.evaluate.metrics import METRICS, Metric, get_metric
from slimlab.models import MODELS
from slimlab.registry import Registry
from slimlab.treatments import TREATMENTS, known_treatments


@pytest.mark.parametrize(
    ("registry", "some"),
    [
        (DATASETS, "mnist1d"),
        (MODELS, "cnn1d"),
        (TREATMENTS, "magnitude_prune"),
        (BACKENDS, "onnxruntime"),
        (SCENARIOS, "server"),
        (METRICS, "accuracy"),
    ],
)
def test_every_registry_lists_the_known_names_on_a_miss(registry, some):
    assert some in registry and some in registry.names()
    with pytest.raises(UnknownNameError) as e:
        registry.get("no-such-name", where="somewhere")
    assert f"`somewhere`: unknown {registry.what} 'no-such-name'; known: " in str(e.value)
    assert e.value.known == registry.names()


def test_registering_twice_fails_and_a_temporary_entry_goes_away():
    reg: Registry[int] = Registry("number")
    reg.register("one", 1, description="the first")

    @reg.register("two", parity="even")
    def two():
        return 2

    assert reg.get("two") is two and reg.entry("two").meta == {"parity": "even"}
    assert reg.entry("one").description == "the first" and [n for n, _ in reg.items()] == ["one", "two"]
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("one", 11)
    with reg.registered("three", 3):
        assert reg["three"] == 3
    assert "three" not in reg and len(reg) == 2


def test_treatments_register_kind_config_and_handler_in_one_entry():
    spec = TREATMENTS.get("dynamic_int8")
    assert spec.config.kind == "dynamic_int8" and callable(spec.handler)
    assert known_treatments() == TREATMENTS.names()


def test_backend_and_scenario_names_follow_their_registries():
    with pytest.raises(
        ConfigError, match=r"`bench.backends\[0\]`: unknown backend 'tensorrt'; known: compile"
    ):
        parse_experiment({"name": "x", "variants": [{"name": "dense"}], "bench": {"backends": ["tensorrt"]}})
    schema = BenchConfig.model_json_schema()["properties"]["backends"]["items"]
    assert schema["enum"] == BACKENDS.names()
    with BACKENDS.registered("tensorrt", lambda: None):
        assert BenchConfig(backends=["tensorrt"]).backends == ["tensorrt"]  # a user's backend is accepted
    with pytest.raises(ConfigError, match="unknown scenario 'batch'; known: offline, server, single-stream"):
        parse_experiment({"name": "x", "variants": [{"name": "dense"}], "bench": {"scenarios": ["batch"]}})


def test_scenarios_are_objects_built_with_their_settings_in_registration_order():
    config = BenchConfig(
        scenarios=["server", "single-stream"], latency_batch_size=2, batch_sizes=[4, 8], server_max_batch=32
    )
    scenarios = scenarios_for(config)
    assert [s.name for s in scenarios] == ["single-stream", "server"]
    assert scenarios[0] == SingleStream(batch_size=2)
    assert scenarios[1] == Server(settings=ServerSettings(max_batch=32), max_seconds=None)
    assert sweep_of(config, scenarios) == [4, 8, 32]  # the server's largest batch is measured too
    offline = scenarios_for(BenchConfig(scenarios=["offline"], batch_sizes=[4, 8]))
    assert offline == [Offline(batch_sizes=(4, 8))] and sweep_of(config, offline) == [4, 8]


def test_accuracy_is_a_registered_metric_with_direction_and_range():
    acc = get_metric("accuracy")
    assert acc.higher_is_better and acc.range == (0.0, 1.0) and acc.is_mean
    logits = [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]
    assert acc.score(logits, [0, 1, 1]) == pytest.approx(2 / 3)
    assert acc.score([0, 1, 1], [0, 1, 1]) == 1.0  # labels are taken as they are
    assert acc.improvement(0.8, 0.9) == pytest.approx(-0.1)
    mse = Metric("mse_test", "lower", 0.0, per_sample=lambda o, t: (o - t) ** 2)
    assert mse.improvement(0.1, 0.3) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="exactly one"):
        Metric("broken", "higher")
