"""The accuracy-aware search: candidates from [search], and the decision rule on known numbers."""

import importlib.util
import json

import pytest
from typer.testing import CliRunner

from slimlab.analysis.search import search_decision as decide
from slimlab.cli import app
from slimlab.config import parse_experiment
from tests.conftest import TINY_TOML

CONFIG = {
    "search": {"batch_size": 64, "reference_backend": "ort8"},
    "evaluate": {"baseline": "dense", "margin": 0.01, "alpha": 0.05},
}


def search_decision(results, config):
    search, ev = config["search"], config["evaluate"]
    return decide(
        results,
        baseline=ev["baseline"],
        margin=ev["margin"],
        alpha=ev["alpha"],
        batch_size=search["batch_size"],
        reference_backend=search["reference_backend"],
        require_no_inferior_group=search.get("require_no_inferior_group", False),
        deploy_backends=search.get("deploy_backends"),
    )


def _trial(variant, seed, latency, val):
    bench = [
        {
            "backend": "eager",
            "status": "ok",
            "scenario": "offline",
            "batch_size": 64,
            "latency_ms": {"p50": latency},
        }
    ]
    if variant == "dense":
        bench.append(
            {
                "backend": "ort8",
                "status": "ok",
                "scenario": "offline",
                "batch_size": 64,
                "latency_ms": {"p50": latency / 2},
            }
        )
    return {
        "dataset": "d",
        "variant": variant,
        "seed": seed,
        "status": "ok",
        "treatments": [],
        "metrics": {"val_accuracy": val},
        "bench": bench,
    }


def _results(candidates):
    """candidates: name -> (latency, val accuracy change, one-sided p of non-inferiority)."""
    trials = [_trial("dense", s, 1.0, 0.9) for s in range(5)]
    comparisons, summary = [], [{"dataset": "d", "variant": "dense", "accuracy": {"mean": 0.9}}]
    for name, (latency, val_delta, p) in candidates.items():
        trials += [_trial(name, s, latency, 0.9 + val_delta) for s in range(5)]
        comparisons.append(
            {"dataset": "d", "variant": name, "delta": 0.0, "ci": [-0.005, 0.005], "p_noninferiority": p}
        )
        summary.append({"dataset": "d", "variant": name, "accuracy": {"mean": 0.9}})
    return {"trials": trials, "comparisons": comparisons, "summary": summary}


def test_accepts_the_cheapest_candidate_that_survives_holm():
    decision = search_decision(
        _results(
            {
                "search-fastest-but-worse-on-val": (0.1, -0.05, 0.0001),  # confidently worse on validation
                "search-fast-but-unsure": (0.2, 0.0, 0.015),  # 0.015 < 0.025 alone; Holm makes it 0.03
                "search-slower-and-sure": (0.3, 0.0, 0.001),
                "search-slowest": (0.5, 0.0, 0.04),
                "search-slower-than-dense": (1.5, 0.0, 0.0001),  # never accepted, however sure
            }
        ),
        CONFIG,
    )["d"]
    rows = {r["variant"]: r for r in decision["candidates"]}
    assert not rows["search-fastest-but-worse-on-val"]["screened_in"]
    assert rows["search-fastest-but-worse-on-val"]["p_noninferiority_holm"] is None
    assert abs(rows["search-fast-but-unsure"]["p_noninferiority_holm"] - 0.015 * 2) < 1e-12
    assert (
        not rows["search-fast-but-unsure"]["non_inferior"] and rows["search-slower-and-sure"]["non_inferior"]
    )
    assert decision["accepted"] == "search-slower-and-sure"
    assert abs(rows["search-slower-and-sure"]["speedup_vs_dense"] - 1.0 / 0.3) < 1e-9
    assert abs(rows["search-slower-and-sure"]["speedup_vs_reference"] - 0.5 / 0.3) < 1e-9
    assert decision["candidates"][0]["variant"] == "search-fastest-but-worse-on-val"  # sorted by latency


def test_a_candidate_slower_than_the_baseline_is_never_tried():
    decision = search_decision(_results({"search-slow": (1.5, 0.0, 0.0001)}), CONFIG)["d"]
    assert decision["accepted"] is None
    assert not decision["candidates"][0]["faster_than_baseline"]


def test_nothing_accepted_when_nothing_is_sure():
    decision = search_decision(_results({"search-a": (0.2, 0.0, 0.3)}), CONFIG)["d"]
    assert decision["accepted"] is None


def test_search_section_expands_into_variants_and_runs(tmp_path):
    raw = {
        "name": "s",
        "variants": [{"name": "dense"}],
        "search": {"structured_sparsity": [0.0, 0.5], "precision": ["fp32", "dynamic_int8"]},
    }
    config = parse_experiment(raw)
    assert [v.name for v in config.variants] == [
        "dense",
        "search-s0-dynamic_int8",
        "search-s50-fp32",
        "search-s50-dynamic_int8",
    ]
    assert parse_experiment(config.to_dict()).to_dict() == config.to_dict()  # idempotent
    toml = TINY_TOML.split("[[variants]]")[0] + (
        '[[variants]]\nname = "dense"\n[evaluate]\nseeds = 2\n[bench]\nthroughput_batch_size = 64\n'
        "min_time_s = 0.01\nmin_iters = 5\nwarmup_iters = 1\n"
        "[search]\nstructured_sparsity = [0.0, 0.5]\n"
        'precision = ["fp32", "dynamic_int8"]\nfinetune_epochs = 1\n'
    )
    (tmp_path / "s.toml").write_text(toml)
    result = CliRunner().invoke(
        app, ["run", str(tmp_path / "s.toml"), "--out", str(tmp_path / "o"), "--quick"]
    )
    assert result.exit_code == 0, result.output + result.stderr
    assert "search (mnist1d):" in result.output
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert len(results["search"]["mnist1d"]["candidates"]) == 3
    assert "Search: the cheapest variant" in (tmp_path / "o" / "report.html").read_text()


def test_a_candidate_that_harms_a_group_is_not_accepted_when_groups_are_required():
    results = _results({"search-fast": (0.2, 0.0, 0.001), "search-slower": (0.3, 0.0, 0.002)})
    harm = {
        "variant": "search-fast",
        "verdict": "inferior",
        "attribute": "region",
        "group": "west",
        "n": 40,
        "delta": -0.1,
        "ci": [-0.2, -0.05],
        "p_inferiority_holm": 0.001,
    }
    results["fairness"] = {"d": {"compression": {"rows": [harm]}}}
    assert search_decision(results, CONFIG)["d"]["accepted"] == "search-fast"  # not required: accepted
    required = {**CONFIG, "search": {**CONFIG["search"], "require_no_inferior_group": True}}
    decision = search_decision(results, required)["d"]
    assert decision["accepted"] == "search-slower"
    fast = next(r for r in decision["candidates"] if r["variant"] == "search-fast")
    assert fast["inferior_groups"][0]["group"] == "west" and not fast["groups_ok"]


def test_a_candidate_is_ranked_as_deployed_and_against_the_best_single_cell():
    # Defect: an ORT int8 candidate was timed through its torch wrapper (the eager backend), and the only
    # reference was ORT dynamic int8, not the best of the one-step cells measured in the same run.
    results = _results({"search-s0-static_int8": (0.6, 0.0, 0.001)})
    for t in results["trials"]:
        extra = {"status": "ok", "scenario": "offline", "batch_size": 64}
        if t["variant"] == "dense":
            t["bench"][0]["threads"] = 2
            t["bench"].append({**extra, "backend": "onnxruntime", "threads": 2, "latency_ms": {"p50": 0.4}})
        else:
            t["bench"][0]["threads"] = 2
            t["bench"] += [
                {**extra, "backend": "onnxruntime-session", "threads": 2, "latency_ms": {"p50": 0.3}},
                {**extra, "backend": "onnxruntime-session", "threads": 1, "latency_ms": {"p50": 0.2}},
            ]
    plain = search_decision(results, CONFIG)["d"]
    assert plain["candidates"][0]["latency_ms"] == 0.6  # eager only: the old behaviour, by default
    deployed = {**CONFIG, "search": {**CONFIG["search"], "deploy_backends": ["eager", "onnxruntime-session"]}}
    decision = search_decision(results, deployed)["d"]
    row = decision["candidates"][0]
    assert row["latency_ms"] == 0.2
    assert row["deployment"] == {"backend": "onnxruntime-session", "threads": 1, "seeds": 5}
    assert decision["best_cell"]["cell"] == "ORT static int8 QDQ"  # at the default 2 threads: 0.3 ms
    assert decision["accepted"] == "search-s0-static_int8"
    assert abs(decision["accepted_speedup_vs_best_cell"] - 0.3 / 0.2) < 1e-9


def test_mixed_precision_search_runs_end_to_end_with_sensitivity_in_the_report(tmp_path):
    toml = TINY_TOML.split("[[variants]]")[0] + (
        '[[variants]]\nname = "dense"\n[evaluate]\nseeds = 2\n[bench]\n'
        'backends = ["eager", "onnxruntime-session"]\nsession_threads = [1]\nscenarios = ["offline"]\n'
        "batch_sizes = [64]\nmin_time_s = 0.01\nmin_iters = 5\nwarmup_iters = 1\n"
        '[search]\nstructured_sparsity = [0.0]\nprecision = ["static_int8"]\nmixed_precision_keep = [1]\n'
        'deploy_backends = ["eager", "onnxruntime-session"]\n'
    )
    (tmp_path / "m.toml").write_text(toml)
    result = CliRunner().invoke(
        app, ["run", str(tmp_path / "m.toml"), "--out", str(tmp_path / "o"), "--quick"]
    )
    assert result.exit_code == 0, result.output + result.stderr
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    search = results["search"]["mnist1d"]
    assert {c["variant"] for c in search["candidates"]} == {"search-s0-static_int8", "search-s0-mixed1"}
    assert all(c["deployment"]["backend"] in ("eager", "onnxruntime-session") for c in search["candidates"])
    sens = results["sensitivity"]["mnist1d"]
    assert len(sens["ranking"]) == 4 and sens["seeds"] == [0, 1]
    mixed = [t for t in results["trials"] if t["variant"] == "search-s0-mixed1"]
    assert all(
        t["artifacts"]["mixed_int8"]["kept_float"]
        == t["artifacts"]["mixed_int8"]["sensitivity"]["ranking"][:1]
        for t in mixed
    )
    html = (tmp_path / "o" / "report.html").read_text()
    assert "Per-node quantization sensitivity" in html and "Best single cell" in html


def test_ort_dynamic_int8_is_a_search_candidate_that_deploys_on_a_session():
    """ONNX Runtime's dynamic int8 (the best one-step cell on MiniLM) as a search candidate: the chain
    quantizes on ONNX Runtime, whose OrtModule a bare session deploys; the torch.ao candidate is kept."""
    from slimlab.config import SearchConfig

    candidates = SearchConfig(
        structured_sparsity=[0.0, 0.5], precision=["dynamic_int8", "ort_dynamic_int8"], finetune_epochs=1
    ).candidates()
    by_name = {c.name: c for c in candidates}
    assert sorted(by_name) == [
        "search-s0-dynamic_int8",
        "search-s0-ort_dynamic_int8",
        "search-s50-dynamic_int8",
        "search-s50-ort_dynamic_int8",
    ]
    ort_step = by_name["search-s50-ort_dynamic_int8"].treatments[-1]
    assert ort_step.kind == "dynamic_int8" and ort_step.backend == "onnxruntime"
    assert by_name["search-s0-dynamic_int8"].treatments[-1].backend == "torch_ao"
    assert [t.kind for t in by_name["search-s50-ort_dynamic_int8"].treatments] == [
        "structured_prune",
        "dynamic_int8",
    ]


def test_mixed_precision_on_dynamic_int8_is_one_candidate_per_k():
    from slimlab.config import SearchConfig

    axes = {"structured_sparsity": [0.0], "precision": ["static_int8"], "mixed_precision_keep": [2, 6]}
    plain = {c.name for c in SearchConfig(**axes).candidates()}
    assert plain == {"search-s0-static_int8", "search-s0-mixed2", "search-s0-mixed6"}  # unchanged
    both = SearchConfig(
        **axes,
        per_channel=[True, False],
        mixed_precision_scheme=["static", "dynamic"],
        quantize_op_types=["MatMul"],
    ).candidates()
    dynamic = [c for c in both if c.name.endswith("-dyn")]
    assert [c.name for c in dynamic] == ["search-s0-mixed2-dyn", "search-s0-mixed6-dyn"]
    step = dynamic[1].treatments[-1]
    assert (step.kind, step.scheme, step.keep_float) == ("mixed_int8", "dynamic", 6)
    assert step.op_types == ["MatMul"]


def test_pruning_candidates_fine_tune_with_distillation_from_the_dense_parent(tmp_path):
    from slimlab.config import SearchConfig

    plain = SearchConfig(structured_sparsity=[0.5], precision=["fp32"], finetune_epochs=2).candidates()
    assert [t.kind for t in plain[0].treatments] == ["structured_prune"]  # unchanged without distillation
    search = SearchConfig(
        structured_sparsity=[0.5], precision=["static_int8"], finetune_epochs=2, finetune_distill=0.7
    )
    chain = search.candidates()[0].treatments
    assert [t.kind for t in chain] == ["structured_prune", "finetune", "static_int8"]
    assert chain[0].finetune_epochs == 0 and chain[1].epochs == 2 and chain[1].distill_alpha == 0.7
    toml = TINY_TOML.split("[[variants]]")[0] + (
        '[[variants]]\nname = "dense"\n[evaluate]\nseeds = 2\n[bench]\nscenarios = ["offline"]\n'
        "batch_sizes = [64]\nmin_time_s = 0.01\nmin_iters = 5\nwarmup_iters = 1\n"
        '[search]\nstructured_sparsity = [0.5]\nprecision = ["fp32"]\nfinetune_epochs = 1\n'
        "finetune_distill = 0.5\n"
    )
    (tmp_path / "d.toml").write_text(toml)
    result = CliRunner().invoke(app, ["run", str(tmp_path / "d.toml"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output + result.stderr
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    pruned = [t for t in results["trials"] if t["variant"] == "search-s50-fp32"]
    assert len(pruned) == 2
    for t in pruned:
        record = t["artifacts"]["finetune"]
        assert record["distill_alpha"] == 0.5 and record["epochs_run"] >= 1
        assert record["temperature"] == 4.0 and record["val_kl_to_teacher_after"] >= 0  # the parent taught


def _cosine_trial(variant, seed, latency, val_cosine):
    trial = _trial(variant, seed, latency, None)
    trial["metrics"] = {"cosine": val_cosine, "val_cosine": val_cosine}  # no labels, no val_accuracy
    return trial


def test_a_label_free_search_screens_on_the_runs_metric_on_validation():
    trials = [_cosine_trial("dense", s, 1.0, 1.0) for s in range(5)]
    trials += [_cosine_trial("search-fine", s, 0.5, 0.999 - 0.0001 * s) for s in range(5)]
    trials += [_cosine_trial("search-broken", s, 0.2, 0.90 + 0.001 * s) for s in range(5)]
    comparisons = [
        {"dataset": "d", "variant": v, "delta": -0.001, "ci": [-0.002, 0.0], "p_noninferiority": 0.001}
        for v in ("search-fine", "search-broken")
    ]
    summary = [
        {
            "dataset": "d",
            "variant": v,
            "accuracy": {"mean": None},
            "metric": {"mean": m, "higher_is_better": True},
        }
        for v, m in (("dense", 1.0), ("search-fine", 0.999), ("search-broken", 0.9))
    ]
    results = {"trials": trials, "comparisons": comparisons, "summary": summary}
    search, ev = CONFIG["search"], CONFIG["evaluate"]
    decision = decide(
        results,
        baseline="dense",
        margin=ev["margin"],
        alpha=ev["alpha"],
        batch_size=search["batch_size"],
        reference_backend=search["reference_backend"],
        metric="cosine",
    )["d"]
    rows = {c["variant"]: c for c in decision["candidates"]}
    assert rows["search-fine"]["screened_in"] and not rows["search-broken"]["screened_in"]
    assert rows["search-broken"]["val_delta"] == pytest.approx(-0.098)
    # The faster but broken candidate is screened out on validation, so the fine one is accepted.
    assert decision["accepted"] == "search-fine" and decision["screened_on"] == "val_cosine"
    # Every point is scored on the metric (no accuracy here): the front is not empty.
    assert set(decision["pareto"]) == {"dense", "search-fine", "search-broken"}


def test_quantize_op_types_reach_static_and_mixed_candidates_and_leave_defaults_unchanged():
    from slimlab.config import SearchConfig

    axes = {"structured_sparsity": [0.0], "precision": ["static_int8"], "mixed_precision_keep": [2]}
    plain = SearchConfig(**axes).candidates()
    assert [t.to_dict().get("op_types") for v in plain for t in v.treatments] == [None, None]
    matmul = SearchConfig(**axes, quantize_op_types=["MatMul"]).candidates()
    assert [v.name for v in matmul] == [v.name for v in plain]
    assert [t.op_types for v in matmul for t in v.treatments] == [["MatMul"], ["MatMul"]]


@pytest.mark.skipif(importlib.util.find_spec("transformers") is None, reason="needs transformers")
def test_search_on_a_pretrained_label_free_encoder_ranks_nodes_and_decides(tmp_path):
    from tests.tiny_encoder import DATA_MODULE, tiny_bert_dir

    model_dir = tiny_bert_dir(tmp_path / "tiny-bert")
    (tmp_path / "tiny_tokens.py").write_text(DATA_MODULE)
    toml = f"""
name = "tiny-encoder-search"
[data]
factory = "tiny_tokens:tokens"
val_fraction = 0.3
[data.params]
n = 120
[model]
hf = "{model_dir}"
hf_output = "mean_pooling"
pretrained = true
[[variants]]
name = "dense"
[evaluate]
seeds = 2
metric = "cosine"
margin = 0.05
[bench]
backends = ["eager"]   # int8 through ORT against the float encoder in torch: the int8 side wins
scenarios = ["offline"]
batch_sizes = [16]
min_time_s = 0.01
min_iters = 3
warmup_iters = 1
check_outputs = false
[search]
structured_sparsity = [0.0]
precision = ["static_int8"]
mixed_precision_keep = [2]
quantize_op_types = ["MatMul"]
batch_size = 16
deploy_backends = ["eager"]
"""
    (tmp_path / "e.toml").write_text(toml)
    result = CliRunner().invoke(app, ["run", str(tmp_path / "e.toml"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output + result.stderr
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    search = (
        results["search"]["tiny_tokens"]
        if "tiny_tokens" in results["search"]
        else results["search"]["tokens"]
    )
    assert search["screened_on"] == "val_cosine"
    rows = {c["variant"]: c for c in search["candidates"]}
    assert set(rows) == {"search-s0-static_int8", "search-s0-mixed2"}
    for row in rows.values():
        assert row["val_delta"] is not None and row["test_delta"] is not None and row["test_ci"]
    sens = next(iter(results["sensitivity"].values()))
    assert sens["metric"] == "cosine" and sens["op_types"] == ["MatMul"] and sens["seeds"] == [0, 1]
    assert len(sens["ranking"]) == 16
    html = (tmp_path / "o" / "report.html").read_text()
    assert "Per-node quantization sensitivity" in html and "val Δ cosine pts" in html
    # An int8 tiny encoder keeps its cosine within 0.05 and is faster in ORT than in torch: accepted, and
    # the headline states the change in the run's metric, not in accuracy.
    assert search["accepted"] is not None
    sentence = results["headline"]["datasets"][0]["sentence"]
    assert "; cosine " in sentence
    # Compared per test sample (a pretrained model): the sentence says what its quality interval is over.
    assert "(the cosine interval over test samples, paired per sample)" in sentence
