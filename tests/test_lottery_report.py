"""The lottery-ticket report on synthetic records (known answers), and a reduced lottery experiment run
end to end through the Python API."""

import base64
import json
import math

import pytest

from slimlab.analysis.lottery import dense_accuracy, lottery_summary, lottery_table, ticket_limit
from slimlab.config import parse_experiment
from slimlab.experiment import run_experiment
from slimlab.report.lottery import lottery_markdown, lottery_plot

# Per arm, the accuracy change from dense at rounds 1..5 (plus a small per-seed wobble below).
SHAPES = {
    "imp": ("none", [0.01, 0.01, 0.0, -0.05, 0.0]),  # matches to round 3, dips, matches again at round 5
    "reinit": ("reinit", [-0.04, -0.06, -0.08, -0.1, -0.12]),
    "random": ("random_prune", [0.0, -0.03, -0.06, -0.1, -0.12]),
}


def _records() -> list[dict]:
    trials = [{"variant": "dense", "seed": s, "status": "ok", "artifacts": {}} for s in range(3)]
    for arm, (control, deltas) in SHAPES.items():
        for seed in range(3):
            dense = 0.80 + 0.01 * seed
            rounds = [{"round": 0, "remaining_fraction": 1.0, "test_accuracy": dense, "val_accuracy": dense}]
            for r, d in enumerate(deltas, 1):
                acc = dense + d + 0.002 * (seed - 1)
                rounds.append(
                    {"round": r, "remaining_fraction": 0.8**r, "test_accuracy": acc, "val_accuracy": acc}
                )
            lottery = {"control": control, "rounds": rounds, "test_use": "report-only"}
            trials.append({"variant": arm, "seed": seed, "status": "ok", "artifacts": {"lottery": lottery}})
    trials.append({"variant": "imp", "seed": 9, "status": "failed", "artifacts": {}})  # ignored
    return trials


def test_table_has_means_and_cis_per_arm_and_round():
    rows = lottery_table(_records())
    assert len(rows) == 3 * 6
    row = next(r for r in rows if r["arm"] == "imp" and r["round"] == 4)
    assert row["n_seeds"] == 3 and row["remaining_fraction"] == pytest.approx(0.8**4)
    assert row["test_accuracy"]["mean"] == pytest.approx(0.81 - 0.05)
    lo, hi = row["test_accuracy"]["ci"]
    assert lo < row["test_accuracy"]["mean"] < hi
    assert dense_accuracy(_records())["mean"] == pytest.approx(0.81)


def test_ticket_limit_finds_where_each_arm_stops_matching():
    imp = ticket_limit(_records(), "imp", margin=0.01)
    assert imp["last_matching_round"] == 3
    assert imp["last_matching_remaining_fraction"] == pytest.approx(0.8**3)
    assert imp["first_inferior_round"] == 4 and imp["matching_rounds"] == [1, 2, 3, 5]
    assert [r["verdict"] for r in imp["rounds"]] == [
        "superior",
        "superior",
        "non-inferior",
        "inferior",
        "non-inferior",
    ]
    reinit = ticket_limit(_records(), "reinit")
    assert reinit["last_matching_round"] is None and reinit["first_inferior_round"] == 1
    assert ticket_limit(_records(), "random")["last_matching_round"] == 1
    with pytest.raises(ValueError, match="no lottery records for arm 'dense'"):
        ticket_limit(_records(), "dense")


def test_plot_summary_and_markdown():
    png = base64.b64decode(lottery_plot(lottery_summary(_records()))["png"])
    assert png.startswith(b"\x89PNG")
    assert lottery_plot(lottery_summary([])) is None
    summary = lottery_summary(_records())
    json.dumps(summary)
    assert [limit["arm"] for limit in summary["limits"]] == ["imp", "reinit", "random"]
    text = lottery_markdown(lottery_summary(_records()))
    assert "| 3 | 51.2% |" in text and "imp: matches dense" in text and "reinit: not shown to match" in text
    assert "worse (CI below -0.01) from 80.0% (round 1)" in text


QUICK_LOTTERY = """
name = "lottery-quick"
[data]
name = "mnist1d"
num_samples = 500
[model]
name = "mlp"
hidden = [32, 32]
[train]
epochs = 2
batch_size = 50
[[variants]]
name = "dense"
[[variants]]
name = "imp"
treatments = [{kind = "lottery_ticket", rate = 0.5, rounds = 2, rewind_step = 2}]
[[variants]]
name = "reinit"
treatments = [{kind = "lottery_ticket", rate = 0.5, rounds = 2, rewind_step = 2, control = "reinit"}]
[[variants]]
name = "random"
treatments = [{kind = "lottery_ticket", rate = 0.5, rounds = 2, rewind_step = 2, control = "random_prune"}]
[evaluate]
seeds = 2
[bench]
enabled = false
"""


def test_a_reduced_lottery_experiment_runs_end_to_end(tmp_path):
    import tomllib

    config = parse_experiment(tomllib.loads(QUICK_LOTTERY))
    trials = run_experiment(config, tmp_path)
    assert all(t["status"] == "ok" for t in trials), [t.get("error") for t in trials]
    imp = [t for t in trials if t["variant"] == "imp"]
    assert len(imp) == 2 and len(imp[0]["artifacts"]["lottery"]["rounds"]) == 3
    # the final model is the last round's ticket: a quarter of the prunable weights left
    assert imp[0]["metrics"]["sparsity"] > 0.6
    rows = lottery_table(trials)
    assert {r["arm"] for r in rows} == {"imp", "reinit", "random"}
    assert all(not math.isnan(r["test_accuracy"]["mean"]) for r in rows)
    assert lottery_plot(lottery_summary(trials)) is not None


@pytest.mark.parametrize(
    ("file", "model"), [("lottery_ticket.toml", "mlp"), ("lottery_ticket_cnn.toml", "cnn1d")]
)
def test_the_lottery_examples_follow_the_paper_protocol(file, model):
    from importlib.resources import files

    from slimlab.config import load_experiment

    config = load_experiment(files("slimlab.examples") / file)
    assert config.model.name == model and len(config.evaluate.seed_list) >= 3
    lottery = {v.name: v.treatments[0] for v in config.variants if v.treatments}
    assert {t.control for t in lottery.values()} == {"none", "reinit", "random_prune"}
    assert all(t.rounds >= 8 and t.rate == 0.2 and t.rewind_step > 0 for t in lottery.values())
    quick = config.quick()
    assert all(t.rounds == 2 for v in quick.variants for t in v.treatments)
