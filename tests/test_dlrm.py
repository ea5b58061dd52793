"""The DLRM, its click logs, the click metrics, the embedding treatments, and the reduced example."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import log_loss, roc_auc_score

from slimlab.config import DataConfig, load_experiment
from slimlab.data import load_dataset
from slimlab.data.clicks import ClickLogOptions, generate_click_log, split_inputs
from slimlab.errors import ConfigError, DataFileError, SlimlabError
from slimlab.evaluate.binary import binary_metrics, click_probabilities
from slimlab.models import build_model
from slimlab.models.dlrm import DLRM, DLRMParams, example_inputs
from slimlab.train import TrainConfig, Trainer
from slimlab.treatments import (
    DynamicInt8,
    EmbeddingCompress,
    EmbeddingFp16,
    EmbeddingInt8,
    LinearHalf,
    TreatmentContext,
    apply,
)

SMALL = {"num_dense": 4, "table_rows": [300, 500, 200], "bag_size": 3, "embedding_dim": 8,
         "bottom_mlp": [16], "top_mlp": [16, 1]}  # fmt: skip
CLICKS = {"num_dense": 4, "tables": [300, 500, 200], "bag_size": 3}


def test_the_reference_small_config_fits_in_a_few_gb():
    """8 tables of 80,000 rows, dimension 64, bottom 128-128-128-128, top 512-512-512-256-1."""
    params = DLRMParams()
    assert params.table_rows == [80_000] * 8 and params.embedding_dim == 64
    model = DLRM(params).eval()
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    assert size < 2**30  # 167 MB of fp32 weights
    dense, sparse = example_inputs(params, 4)
    assert model(dense, sparse).shape == (4,)
    # interaction: 64 + 9*8/2 pairwise dots feed the top MLP
    assert model.top[0].in_features == 64 + 36


def test_padding_is_left_out_of_the_sum():
    torch.manual_seed(0)
    model = DLRM(DLRMParams(**SMALL)).eval()
    ids = torch.tensor([[3, 7, -1]])
    table = model.tables[0]
    expected = table.bag.weight[3] + table.bag.weight[7]
    torch.testing.assert_close(table(ids)[0], expected)


def test_packed_model_matches_the_two_input_model_and_refuses_half_inputs():
    torch.manual_seed(0)
    packed = build_model("dlrm", SMALL, (4 + 3 * 3,), 2).eval()
    dense, sparse = example_inputs(packed.params, 5)
    x = torch.cat([dense, sparse.flatten(1).float()], dim=1)
    logits = packed(x)
    torch.testing.assert_close(logits[:, 1], packed.dlrm(dense, sparse))
    assert torch.all(logits[:, 0] == 0)
    with pytest.raises(TypeError, match="float32"):
        packed(x.bfloat16())
    with pytest.raises(ValueError, match="expects rows of"):
        build_model("dlrm", SMALL, (7,), 2)


def test_click_metrics_match_sklearn_and_the_definition_of_ne():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    p = np.clip(rng.random(500) * 0.6 + 0.2 * y, 0, 1)
    m = binary_metrics(y, p)
    assert m["auroc"] == pytest.approx(roc_auc_score(y, p))
    assert m["log_loss"] == pytest.approx(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7)))
    rate = y.mean()
    entropy = -(rate * math.log(rate) + (1 - rate) * math.log(1 - rate))
    assert m["normalized_entropy"] == pytest.approx(m["log_loss"] / entropy)
    # predicting the background rate for everyone scores NE = 1
    assert binary_metrics(y, np.full(500, rate))["normalized_entropy"] == pytest.approx(1.0)
    assert math.isnan(binary_metrics(np.ones(5), np.full(5, 0.5))["auroc"])
    np.testing.assert_allclose(
        click_probabilities(np.array([[0.0, 0.0], [0.0, 2.0]])), [0.5, 1 / (1 + math.exp(-2))]
    )


def test_synthetic_log_has_zipf_ids_several_per_lookup_and_a_learnable_click_model():
    spec = ClickLogOptions(**CLICKS)
    log = generate_click_log(spec, 6000, world_seed=0, sample_seed=0)
    assert log.sparse.shape == (6000, 3, 3) and log.sparse.dtype == np.int64
    lengths = (log.sparse >= 0).sum(2)
    assert lengths.min() == 1 and lengths.max() == 3
    ids = log.sparse[:, 1][log.sparse[:, 1] >= 0]
    counts = np.sort(np.bincount(ids, minlength=500))[::-1]
    assert counts[0] > 20 * np.median(counts)  # a few rows are very popular
    assert 0.2 < log.y.mean() < 0.3
    bayes = binary_metrics(log.y, log.p)
    assert bayes["auroc"] > 0.75 and bayes["normalized_entropy"] < 0.9
    again = generate_click_log(spec, 6000, world_seed=0, sample_seed=0)
    assert np.array_equal(log.sparse, again.sparse) and np.array_equal(log.y, again.y)
    dense, sparse = split_inputs(log.packed(), 4, 3, 3)
    assert np.array_equal(sparse, log.sparse) and np.allclose(dense, log.dense)


def test_clicks_dataset_test_split_depends_only_on_split_seed():
    a = load_dataset(DataConfig(name="clicks", num_samples=2000, clicks=CLICKS), seed=0)
    b = load_dataset(DataConfig(name="clicks", num_samples=2000, clicks=CLICKS), seed=1)
    assert np.array_equal(a.test.x, b.test.x) and not np.array_equal(a.val.x, b.val.x)
    assert a.num_classes == 2 and a.input_shape == (4 + 9,)
    assert a.meta["bayes"]["auroc"] > 0.7


def test_user_click_log_from_csv_and_parquet(tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame({
        "click": rng.integers(0, 2, n),
        "age": rng.normal(30, 5, n),
        "ad": rng.integers(0, 50, n),
        "history": ["|".join(map(str, rng.integers(0, 90, rng.integers(0, 4)))) for _ in range(n)],
    })  # fmt: skip
    options = {"dense_columns": ["age"], "sparse_columns": ["ad", "history"], "bag_size": 3}
    paths = [tmp_path / "log.csv"]
    frame.to_csv(paths[0], index=False)
    try:
        frame.to_parquet(tmp_path / "log.parquet")
        paths.append(tmp_path / "log.parquet")
    except ImportError:
        pass
    for path in paths:
        data = load_dataset(
            DataConfig(name="click_log", path=str(path), target="click", clicks=options), seed=0
        )
        assert data.input_shape == (1 + 2 * 3,) and data.num_classes == 2
        assert data.meta["table_rows"][0] <= 50
        assert abs(float(data.train.x[:, 0].mean())) < 0.2  # standardised on train
    frame.loc[5, "history"] = "1|x"
    frame.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataFileError, match=r"row 7, column 'history'"):
        load_dataset(
            DataConfig(name="click_log", path=str(tmp_path / "bad.csv"), target="click", clicks=options), 0
        )
    with pytest.raises(DataFileError, match="beyond its table"):
        bad = {**options, "tables": [10, 100]}
        load_dataset(DataConfig(name="click_log", path=str(paths[0]), target="click", clicks=bad), 0)


@pytest.fixture(scope="module")
def trained():
    data = load_dataset(DataConfig(name="clicks", num_samples=3000, clicks=CLICKS), seed=0)
    torch.manual_seed(0)
    model = build_model("dlrm", SMALL, data.input_shape, 2)
    trainer = Trainer(
        TrainConfig(epochs=4, batch_size=128, lr=3e-3, optimizer="adam", device="cpu", select_on="loss")
    )
    trainer.fit(model, data, seed=0)
    return model.eval(), data, trainer


def _auc(model, data) -> float:
    from slimlab.models.inference import predict_logits

    return binary_metrics(data.test.y, click_probabilities(predict_logits(model, data.test.x)))["auroc"]


TREATED = {
    "tables-int8": [EmbeddingInt8(bits=8)],
    "tables-int4": [EmbeddingInt8(bits=4)],
    "tables-fp16": [EmbeddingFp16()],
    "mlp-int8": [DynamicInt8()],
    "mlp-fp16": [LinearHalf(dtype="fp16")],
    "int8": [EmbeddingInt8(bits=8), DynamicInt8()],
    "qr": [EmbeddingCompress(method="qr", ratio=0.3, finetune_epochs=1)],
    "hash": [EmbeddingCompress(method="hash", ratio=0.3, finetune_epochs=1)],
}


@pytest.mark.parametrize("name", sorted(TREATED))
def test_treatments_keep_the_click_model(name, trained):
    model, data, trainer = trained
    dense_auc = _auc(model, data)
    assert dense_auc > 0.62  # it learned something
    context = TreatmentContext(seed=0, trainer=trainer, data=data)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    treated = apply(model, TREATED[name], context)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # the parent is untouched
    drop = {"tables-int4": 0.03, "qr": 0.08, "hash": 0.08}.get(name, 0.01)
    assert _auc(treated, data) > dense_auc - drop
    if name.startswith("tables") or name in ("qr", "hash"):
        from slimlab.evaluate import serialized_size

        assert serialized_size(treated)[0] < serialized_size(model)[0]


def test_qr_fit_represents_every_id_distinctly_and_the_hash_fit_is_bucket_means():
    from slimlab.treatments.embedding import HashTable, QRTable

    w = torch.randn(100, 4)
    qr = QRTable(100, 4, collisions=10)
    qr.fit(w)
    recon = qr.quotient[torch.arange(100) // 10] + qr.remainder[torch.arange(100) % 10]
    assert len({tuple(r.tolist()) for r in recon.detach()}) == 100
    # the additive fit beats the best single-table fit on the same rows
    assert (recon - w).pow(2).mean() < w.pow(2).mean()
    h = HashTable(100, 4, buckets=10)
    h.fit(w)
    torch.testing.assert_close(h.weight.data[3], w[3::10].mean(0))


def test_embedding_treatments_need_tables():
    with pytest.raises(SlimlabError, match="embedding tables"):
        apply(torch.nn.Sequential(torch.nn.Linear(3, 2)), EmbeddingInt8())


def test_stage_times_split_lookups_from_mlps(trained):
    from slimlab.bench.stages import dlrm_stage_times

    model, data, _ = trained
    dense, sparse = model.unpack(torch.as_tensor(data.test.x[:32]))
    times = dlrm_stage_times(model, dense, sparse, min_time_s=0.0, min_iters=3, warmup_iters=1)
    assert set(times) >= {"embedding_ms", "bottom_mlp_ms", "interaction_top_mlp_ms", "forward_ms"}
    assert 0 < times["embedding_share"] < 1
    assert dlrm_stage_times(torch.nn.Linear(2, 2), dense, sparse) is None


def test_config_checks_model_against_the_click_log():
    from slimlab.config import parse_experiment

    raw = {"name": "x", "data": {"name": "clicks", "clicks": CLICKS},
           "model": {"name": "dlrm", **{**SMALL, "table_rows": [300, 500, 201]}},
           "variants": [{"name": "dense"}]}  # fmt: skip
    with pytest.raises(ConfigError, match=r"model\.table_rows"):
        parse_experiment(raw)


def test_reduced_dlrm_example_compares_on_auc(tmp_path):
    """examples/dlrm.toml, reduced: dense vs int8 tables vs QR tables over 2 seeds, compared on AUC."""
    from importlib.resources import files

    from slimlab.analysis import analyze
    from slimlab.experiment import run_experiment

    config = load_experiment(files("slimlab.examples") / "dlrm.toml")
    assert {v.name for v in config.variants} >= {
        "tables-int8",
        "tables-fp16",
        "mlp-int8",
        "tables-qr",
        "tables-hash",
    }
    keep = [v for v in config.variants if v.name in ("dense", "tables-int8", "tables-qr")]
    config = config.model_copy(update={"variants": keep}).quick()
    config = config.model_copy(update={"train": config.train.model_copy(update={"epochs": 2})})
    assert config.bench.enabled  # the example benches; this test leaves that to the one below
    config = config.model_copy(update={"bench": config.bench.model_copy(update={"enabled": False})})
    trials = run_experiment(config, tmp_path)
    assert all(t["status"] == "ok" for t in trials), [t.get("error") for t in trials]
    assert {"auroc", "log_loss", "normalized_entropy", "stage_embedding_ms"} <= set(trials[0]["metrics"])
    results = analyze(config, trials, {}).results
    comparisons = {c["variant"]: c for c in results["comparisons"]}
    assert set(comparisons) == {"tables-int8", "tables-qr"}
    assert all(c["metric"] == "auroc" for c in comparisons.values())
    assert all("verdict" in c for c in comparisons.values())
    assert "auroc" in results["summary"][0]
    clicks = {r["variant"]: r for r in results["clicks"]}
    assert set(clicks) == {"dense", "tables-int8", "tables-qr"}
    assert 0 < clicks["dense"]["embedding_share"] < 1 and clicks["dense"]["auroc"]["ci"][0] is not None
    from slimlab.report.html import render_report

    html = render_report(analyze(config, trials, {}))
    assert "where the time goes" in html


def test_a_packed_dlrm_is_benched_on_real_ids_at_every_batch_size():
    """The bench feeds a trial's own validation rows (real ids), and the packed model's ONNX export runs
    at any batch size (its unpacking once traced the export's batch as a constant: Reshape failed)."""
    from slimlab.bench import engine
    from slimlab.bench.config import BenchConfig
    from slimlab.bench.loading import from_module
    from slimlab.models.dlrm import PackedDLRM

    params = DLRMParams(**SMALL)
    torch.manual_seed(0)
    model = PackedDLRM(DLRM(params)).eval()
    dense, sparse = example_inputs(params, 16)
    rows = np.concatenate([dense.numpy(), sparse.reshape(16, -1).numpy()], axis=1).astype(np.float32)
    loaded = from_module(model, (rows.shape[1],), "dlrm", examples=rows)
    config = BenchConfig(backends=["eager", "onnxruntime"], batch_sizes=[1, 8], min_time_s=0.02, min_iters=5)
    records = engine.run_benchmark(loaded, config)
    offline = {(r["backend"], r["batch_size"]) for r in records if r["scenario"] == "offline"}
    assert offline == {("eager", 1), ("eager", 8), ("onnxruntime", 1), ("onnxruntime", 8)}
    assert all(r["status"] == "ok" for r in records), [r.get("reason") for r in records]
