"""The science studies: the Deep Bootstrap and Switch against dense, reduced to seconds; their analyses on
known curves; the CLI path; and the `moe` upcycling treatment."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from slimlab.analysis import deep_bootstrap as db_analysis
from slimlab.analysis import switch_moe as moe_analysis
from slimlab.analysis.studies import analyze_study
from slimlab.analysis.switch_moe import _first_reach
from slimlab.cli import app
from slimlab.config import DataConfig
from slimlab.data import load_dataset
from slimlab.errors import ConfigError, SlimlabError
from slimlab.models import build_model
from slimlab.models.switch import switch_layers
from slimlab.report.studies import write_study_outputs
from slimlab.studies import (
    StudyFile,
    deep_bootstrap,
    is_study,
    load_study,
    parse_study,
    run_study,
)
from slimlab.studies.deep_bootstrap import Augmentation, DeepBootstrapConfig, augment_batch
from slimlab.studies.switch_moe import SwitchMoEConfig
from slimlab.train import TrainConfig, Trainer
from slimlab.treatments import MoEUpcycle, TreatmentContext, apply

TINY_DB = {
    "type": "deep_bootstrap",
    "architectures": ["mlp"],
    "model_params": {"mlp": {"hidden": [32]}},
    "real_samples": 60,
    "test_samples": 200,
    "steps": 40,
    "batch_size": 20,
    "eval_points": 5,
    "seeds": 2,
}
TINY_MOE = {
    "type": "switch_moe",
    "experts": [2],
    "capacity_factors": [1.0],
    "capacity_experts": 2,
    "upcycle": True,
    "steps": 20,
    "eval_every": 10,
    "warmup": 2,
    "batch_size": 16,
    "test_samples": 200,
    "seeds": 2,
    "model": {"d_model": 16, "d_ff": 32, "num_layers": 1},
}


def _study(study: dict) -> StudyFile:
    return parse_study({"kind": "study", "name": "tiny", "study": study})


def _run(study: dict, out) -> dict:
    """What `slimlab run` does with a study: run the cells, analyse them, write the outputs."""
    file = _study(study)
    results = analyze_study(file, run_study(file, out))
    write_study_outputs(results, out)
    return results


def test_deep_bootstrap_runs_analyzes_and_resumes(tmp_path, monkeypatch):
    results = _run(TINY_DB, tmp_path)
    assert len(results["cells"]) == 2 * 2 * 2  # augment × world × seed
    (setting,) = [s for s in results["study"]["settings"] if not s["augment"]]
    n = len(setting["steps"])
    assert setting["steps"][-1] == 40 and n >= 4
    for world in ("real", "ideal"):
        curve = setting["curves"][world]["test_soft_error"]
        assert len(curve["mean"]) == n and all(0 <= m <= 1 for m in curve["mean"])
    # the gap is Real − Ideal, paired by seed
    cells = {(c["augment"], c["world"], c["seed"]): c for c in results["cells"]}
    want = np.mean(
        [
            cells[(False, "real", s)]["test_error"][-1] - cells[(False, "ideal", s)]["test_error"][-1]
            for s in (0, 1)
        ]
    )
    assert setting["gap"]["test_error"]["mean"][-1] == pytest.approx(want)
    assert {c["claim"][:20] for c in results["study"]["claims"]}
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["experiment"]["kind"] == "study" and saved["study"]["type"] == "deep_bootstrap"
    assert "<img" in (tmp_path / "report.html").read_text()
    # rerunning reuses every stored cell: nothing trains; adding a seed trains only that seed's cells
    trained = []
    original = deep_bootstrap._train_cell

    def counting(config, arch, augment, world, seed, data):
        trained.append(seed)
        return original(config, arch, augment, world, seed, data)

    monkeypatch.setattr(deep_bootstrap, "_train_cell", counting)
    again = _run(TINY_DB, tmp_path)
    assert again["cells"] == results["cells"] and trained == []
    more = _run({**TINY_DB, "seeds": 3}, tmp_path)
    assert trained == [2, 2, 2, 2] and more["cells"][:8] == results["cells"]


def test_the_worlds_share_init_and_differ_in_data():
    config = DeepBootstrapConfig(**TINY_DB)
    from slimlab.train.online import MNIST1DSampler

    test = tuple(torch.from_numpy(a) for a in MNIST1DSampler(seed=5).sample(100))
    data = deep_bootstrap._seed_data(config, 0, test)
    real = deep_bootstrap._train_cell(config, "mlp", False, "real", 0, data)
    ideal = deep_bootstrap._train_cell(config, "mlp", False, "ideal", 0, data)
    assert real["step"] == ideal["step"]
    assert real["test_error"] != ideal["test_error"]
    # the Ideal World's stream never repeats a sample: it has steps × batch distinct rows
    stream = data["stream"][0].numpy()
    assert len(np.unique(stream.round(5), axis=0)) == config.steps * config.batch_size


def test_deep_bootstrap_analysis_on_known_curves():
    config = DeepBootstrapConfig(**{**TINY_DB, "augment": [False], "seeds": 2, "zero_error": 0.01})
    steps = [1, 10, 20, 40]

    def cell(world, seed, test, train):
        return {
            "arch": "mlp",
            "augment": False,
            "world": world,
            "seed": seed,
            "seconds": 1.0,
            "step": steps,
            "test_error": test,
            "test_soft_error": test,
            "train_error": train,
            "train_soft_error": train,
        }

    records = [cell("real", s, [0.9, 0.5, 0.4, 0.4], [0.9, 0.3, 0.0, 0.0]) for s in (0, 1)] + [
        cell("ideal", s, [0.9, 0.49, 0.3, 0.2], [0.9, 0.5, 0.3, 0.2]) for s in (0, 1)
    ]
    (s,) = db_analysis.analyze(config, records)["settings"]
    assert s["converged"]["step"]["mean"] == 20
    assert s["converged"]["gap"]["mean"] == pytest.approx(0.1)
    assert s["converged"]["max_soft_gap_before"]["mean"] == pytest.approx(0.01)  # before step 20 only
    assert s["final"]["gap"]["mean"] == pytest.approx(0.2)


def test_augmentation_shifts_and_adds_noise():
    x = torch.arange(40.0).repeat(8, 1)
    out = augment_batch(x, Augmentation(shift=3, noise=0.0), torch.Generator().manual_seed(0))
    shifts = [(int(torch.argmin(row)) or 0) for row in out]
    assert all(s in (0, 1, 2, 3, 37, 38, 39) for s in shifts)
    assert not torch.equal(out, x)
    noisy = augment_batch(x, Augmentation(shift=0, noise=0.1), torch.Generator().manual_seed(0))
    assert 0.05 < float((noisy - x).std()) < 0.2


def test_switch_study_runs_with_every_variant(tmp_path):
    results = _run(TINY_MOE, tmp_path)
    rows = {r["variant"]: r for r in results["study"]["variants"]}
    assert list(rows) == ["dense", "switch-2", "switch-2-cf1", "upcycle-2"]
    assert rows["switch-2"]["params"] > rows["dense"]["params"]
    # equal FLOPs per token up to the router (d_model × experts multiply-adds) and capacity padding
    assert rows["switch-2"]["flops_per_token"] == pytest.approx(rows["dense"]["flops_per_token"], rel=0.2)
    assert rows["dense"]["load_per_expert"] == [] and len(rows["switch-2"]["load_per_expert"][0]) == 2
    assert rows["upcycle-2"]["params"] == rows["switch-2"]["params"]
    for r in rows.values():
        assert len(r["curves"]["test_loss"]["mean"]) == 2
    assert "speedup" in (tmp_path / "report.html").read_text()


def test_first_reach_interpolates_and_speedup_is_a_ratio():
    assert _first_reach([10, 20, 30], [2.0, 1.0, 0.5], 1.0) == 20
    assert _first_reach([10, 20, 30], [2.0, 1.0, 0.5], 0.75) == pytest.approx(25)
    assert _first_reach([10, 20], [2.0, 1.5], 1.0) is None
    config = SwitchMoEConfig(**{**TINY_MOE, "upcycle": False, "capacity_factors": [], "seeds": 2})
    steps = [10, 20, 30, 40]

    def rec(variant, seed, loss, seconds):
        return {
            "variant": variant,
            "seed": seed,
            "params": 1,
            "flops_per_token": 1.0,
            "load_final": [],
            "step": steps,
            "seconds": seconds,
            "test_loss": loss,
            "test_accuracy": [0.5] * 4,
            "dropped_fraction": [0.0] * 4,
            "aux_loss": [0.0] * 4,
        }

    records = []
    for s in (0, 1):
        records.append(rec("dense", s, [2.0, 1.5, 1.2, 1.0], [1, 2, 3, 4]))
        records.append(rec("switch-2", s, [1.5, 1.0, 0.8, 0.7], [2, 4, 6, 8]))  # dense's final at step 20
    rows = {r["variant"]: r for r in moe_analysis.analyze(config, records)["variants"]}
    assert rows["switch-2"]["speedup_steps"]["mean"] == pytest.approx(2.0)
    assert rows["switch-2"]["speedup_time"]["mean"] == pytest.approx(
        1.0
    )  # twice the steps' speed, half the speed per step


def test_study_files_through_the_cli(tmp_path):
    path = tmp_path / "db.toml"
    body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in TINY_DB.items() if k != "model_params")
    path.write_text(
        f'kind = "study"\nname = "tiny-db"\n[study]\n{body}\n[study.model_params]\nmlp = {{hidden = [16]}}\n'
    )
    assert is_study(path)
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "out"), "--quick"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "report.html").exists()
    assert "held" in result.output


def test_report_rebuilds_a_study_from_its_cells_without_training(tmp_path, monkeypatch):
    """`slimlab report DIR` on a study's folder: the same results from the stored cells, nothing trained;
    a study stopped part-way reports its finished seeds and says so."""
    from slimlab.studies import deep_bootstrap

    path = tmp_path / "db.toml"
    body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in TINY_DB.items() if k != "model_params")
    path.write_text(f'kind = "study"\nname = "tiny-db"\n[study]\n{body}\n')
    out = tmp_path / "out"
    assert CliRunner().invoke(app, ["run", str(path), "--out", str(out)]).exit_code == 0
    first = json.loads((out / "results.json").read_text())
    (out / "results.json").unlink()
    (out / "report.html").unlink()

    def no_training(*args, **kwargs):
        raise AssertionError("a report rebuild must not train")

    monkeypatch.setattr(deep_bootstrap, "_train_cell", no_training)
    result = CliRunner().invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output
    rebuilt = json.loads((out / "results.json").read_text())
    assert (out / "report.html").exists()
    assert rebuilt["cells"] == first["cells"] and rebuilt["study"] == first["study"]

    seeds = TINY_DB["seeds"]
    for cell in (out / "cells").glob(f"*-{seeds - 1}-*.json"):  # the last seed never finished
        cell.unlink()
    result = CliRunner().invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output
    assert f"{seeds - 1} of {seeds} seeds have finished" in " ".join(result.output.split())
    partial = json.loads((out / "results.json").read_text())
    assert {c["seed"] for c in partial["cells"]} == set(range(seeds - 1))


@pytest.mark.parametrize(
    "edit, message",
    [
        ({"architectures": ["resnet9000"]}, "unknown model 'resnet9000'"),
        ({"stepz": 3}, "unknown key `study.stepz`"),
        ({"steps": 0}, "`study.steps`"),
        ({"type": "nope"}, "study"),
    ],
)
def test_bad_study_files_are_one_line_errors(tmp_path, edit, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        parse_study({"kind": "study", "name": "x", "study": {**TINY_DB, **edit}})
    path = tmp_path / "bad.toml"
    path.write_text('kind = "study"\nname = "x"\n[study]\ntype = "switch_moe"\nmodel = {ffn = "dense"}\n')
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 2 and "set by the study" in result.output and "Traceback" not in result.output


def test_the_examples_load():
    from importlib.resources import files

    for name in ("deep_bootstrap.toml", "switch_moe.toml"):
        study = load_study(files("slimlab.examples") / name)
        assert study.study.seeds >= 3
        quick = study.quick()
        assert quick.study.steps < study.study.steps


def test_moe_upcycling_starts_near_the_dense_parent_and_fine_tunes():
    data = load_dataset(DataConfig(name="mnist1d", num_samples=400), 0)
    torch.manual_seed(0)
    dense = build_model("transformer", {"d_model": 16, "d_ff": 32}, (40,), 10)
    Trainer(TrainConfig(epochs=3, device="cpu", lr=3e-3)).fit(dense, data, seed=0)
    context = TreatmentContext(seed=0, trainer=Trainer(TrainConfig(epochs=1, device="cpu")), data=data)
    moe = apply(dense, MoEUpcycle(num_experts=4, finetune_epochs=0, capacity_factor=2.0), context)
    layers = switch_layers(moe)
    assert len(layers) == 2 and all(m.num_experts == 4 for m in layers)
    for m, block in zip(layers, dense.blocks, strict=True):
        for e in range(4):
            torch.testing.assert_close(m.w1[e], block.ffn.fc1.weight.T)
    assert context.artifacts["moe"]["agreement_before_finetune"] > 0.9
    tuned = apply(
        dense,
        MoEUpcycle(num_experts=4, finetune_epochs=1),
        TreatmentContext(seed=0, trainer=context.trainer, data=data),
    )
    assert not torch.equal(switch_layers(tuned)[0].router.weight, layers[0].router.weight)


def test_moe_refuses_a_model_without_dense_ffns():
    with pytest.raises(SlimlabError, match="dense FFNs of slimlab's transformer"):
        apply(build_model("mlp", {}, (40,), 10), MoEUpcycle(finetune_epochs=0))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["deep_bootstrap", "switch_moe"])
def test_the_examples_run_quick_through_the_cli(tmp_path, name):
    from importlib.resources import as_file, files

    with as_file(files("slimlab.examples") / f"{name}.toml") as path:
        result = CliRunner().invoke(app, ["run", str(path), "--quick", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["study"]["type"] == name and saved["study"]["claims"]


def test_intervals_respect_the_range_of_their_metric():
    from slimlab.analysis.curves import DIFFERENCE, POSITIVE, curve_summary, summarize

    assert summarize([0.0, 0.01, 0.3])["ci"][0] == 0.0
    assert summarize([0.99, 1.0, 0.7])["ci"][1] == 1.0
    assert summarize([-0.9, -1.0, 0.5], DIFFERENCE)["ci"][0] == -1.0
    assert summarize([0.1, 5.0, 0.2], POSITIVE)["ci"][0] == 0.0
    curve = curve_summary([[0.0, 0.9], [0.02, 1.0], [0.4, 0.6]])
    assert min(curve["lo"]) >= 0 and max(curve["hi"]) <= 1
