"""Learning curves: the data multiplier inverts the scratch curve in log n, is censored outside the
sweep, carries a bootstrap-over-seeds interval, and the reduced limited-data experiment runs end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from slimlab.cli import app
from slimlab.config import parse_experiment
from slimlab.errors import ConfigError
from slimlab.stats.learning_curve import curve_points, data_multipliers, equivalent_n, format_multiplier

SIZES = [50, 100, 200, 400, 800]


def _curve(accuracy, seeds=5, noise=0.0, rng=None):
    rng = rng or np.random.default_rng(0)
    return {n: {s: accuracy(n) + noise * rng.normal() for s in range(seeds)} for n in SIZES}


def scratch_acc(n: float) -> float:
    return 0.2 + 0.1 * math.log2(n / 50)  # +10 points per doubling


def test_a_recipe_worth_exactly_twice_the_data_gets_multiplier_two():
    scratch = _curve(scratch_acc)
    doubled = _curve(lambda n: scratch_acc(2 * n))
    rows = data_multipliers(scratch, doubled, resamples=200)
    assert [r["n"] for r in rows] == SIZES
    for row in rows[:-1]:
        assert row["multiplier"] == pytest.approx(2.0) and row["censored"] is None
    # At the largest n the recipe beats every scratch point: the sweep only bounds the multiplier.
    assert rows[-1]["censored"] == "above" and rows[-1]["multiplier"] == pytest.approx(1.0)
    assert format_multiplier(rows[0]).startswith("2x")


def test_a_recipe_that_hurts_is_below_one_and_censored_below_the_sweep():
    scratch = _curve(scratch_acc)
    worse = _curve(lambda n: scratch_acc(n / 2))
    rows = data_multipliers(scratch, worse, resamples=200)
    assert rows[0]["censored"] == "below"
    assert rows[2]["multiplier"] == pytest.approx(0.5)


def test_the_interval_covers_the_truth_and_widens_with_seed_noise():
    rng = np.random.default_rng(1)
    scratch = _curve(scratch_acc, seeds=6, noise=0.02, rng=rng)
    doubled = _curve(lambda n: scratch_acc(2 * n), seeds=6, noise=0.02, rng=rng)
    noisy = data_multipliers(scratch, doubled, resamples=500)
    quiet = data_multipliers(_curve(scratch_acc, seeds=6), _curve(lambda n: scratch_acc(2 * n), seeds=6))
    for row in noisy[1:3]:
        lo, hi = row["ci"]
        assert lo < 2.0 < hi and hi - lo > 0.05
    assert all(q["ci"][1] - q["ci"][0] < 1e-9 for q in quiet[:-1])


def test_a_dip_in_the_scratch_curve_is_made_monotone():
    log_n = np.log(np.array(SIZES, dtype=float))
    monotone = np.array([0.2, 0.3, 0.3, 0.5, 0.6])  # as after isotonic regression of a dip
    n, side = equivalent_n(log_n, monotone, 0.3)
    assert n == pytest.approx(100) and side is None  # the smallest n that reaches it
    n, _ = equivalent_n(log_n, monotone, 0.4)
    assert n == pytest.approx(math.sqrt(200 * 400))  # halfway in log n


def test_curve_points_clip_intervals_to_the_metric_range():
    points = curve_points({10: {0: 1.0, 1: 0.9, 2: 1.0}})
    assert points[0]["ci"][1] == 1.0 and points[0]["ci"][0] < 0.97


BASE = {
    "name": "lc",
    "data": {"name": "mnist1d"},
    "learning_curve": {"sizes": [200, 50]},
    "variants": [{"name": "scratch"}, {"name": "aug", "train": {"augment": "signal"}}],
    "evaluate": {"baseline": "scratch"},
}


def test_learning_curve_config_expands_sizes_and_validates_recipes():
    config = parse_experiment(BASE)
    assert [d.label for d in config.data] == ["mnist1d[n=50]", "mnist1d[n=200]"]
    assert config.train_for(config.variants[1]).augment.ops[0] == "shift"
    again = parse_experiment(config.to_dict())  # a stored config re-parses to the same grid
    assert [d.label for d in again.data] == [d.label for d in config.data]
    from slimlab.experiment.grid import expand

    assert [s.id for s in expand(again)] == [s.id for s in expand(config)]
    bad = {**BASE, "variants": [{"name": "scratch"}, {"name": "aug", "train": {"augment": "strong"}}]}
    with pytest.raises(ConfigError, match=r"`variants\[1\]\.train`.*unknown augmentation preset 'strong'"):
        parse_experiment(bad)
    bad = {
        **BASE,
        "variants": [{"name": "scratch"}, {"name": "t", "train": {"transfer": {"policy": "full"}}}],
    }
    with pytest.raises(ConfigError, match="exactly one of `source`"):
        parse_experiment(bad)
    with pytest.raises(ConfigError, match="distinct positive"):
        parse_experiment({**BASE, "learning_curve": {"sizes": [50, 50]}})


def test_existing_trial_ids_do_not_change():
    # The new train/data fields are left out of the identity while unset (tests/test_run.py pins hashes).
    plain = parse_experiment({"name": "x", "variants": [{"name": "dense"}]})
    assert "augment" not in plain.to_dict()["train"] and "train_size" not in plain.to_dict()["data"][0]
    assert "learning_curve" not in plain.to_dict()


REDUCED = """
name = "limited_data_reduced"
[data]
name = "mnist1d"
val_fraction = 0.2
[learning_curve]
sizes = [40, 120]
baseline = "scratch"
[model]
name = "mlp"
hidden = [32]
[train]
epochs = 3
min_steps = 20
batch_size = 32
lr = 3e-3
patience = 12
[[variants]]
name = "scratch"
[[variants]]
name = "augment"
train = { augment = "signal_mixup" }
[[variants]]
name = "transfer"
[variants.train.transfer]
source = { name = "mnist1d_shifted", num_samples = 600 }
policy = "freeze_first_k"
k = 1
[evaluate]
seeds = 3
baseline = "scratch"
[bench]
enabled = false
threads = 1
"""


def test_reduced_limited_data_experiment_runs_end_to_end(tmp_path):
    path = tmp_path / "limited.toml"
    path.write_text(REDUCED)
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert all(t["status"] == "ok" for t in results["trials"]) and len(results["trials"]) == 2 * 3 * 3
    (section,) = results["learning_curves"]
    assert section["dataset"] == "mnist1d" and section["sizes"] == [40, 120]
    rows = {(r["recipe"], r["n"]): r for r in section["table"]}
    assert set(rows) == {(r, n) for r in ("scratch", "augment", "transfer") for n in (40, 120)}
    for (recipe, _), row in rows.items():
        assert row["seeds"] == 3 and 0 <= row["ci"][0] <= row["mean"] <= row["ci"][1] <= 1
        if recipe != "scratch":
            assert row["multiplier"]["ci"][0] <= row["multiplier"]["multiplier"] <= row["multiplier"]["ci"][1]
    transfer = [t for t in results["trials"] if t["variant"] == "transfer"]
    assert {
        t["train"]["transfer"]["checkpoint"] for t in transfer
    }.__len__() == 3  # one per seed, shared by n
    assert all(t["metrics"]["n_train"] + t["metrics"]["n_val"] in (40, 120) for t in results["trials"])
    html = (tmp_path / "run" / "report.html").read_text()
    assert "Learning curves · mnist1d" in html and "data multiplier" in html
    assert len(list((tmp_path / "run" / "checkpoints").glob("pretrain-*.safetensors"))) == 3
