"""Calibration (measured, cached per machine), roofline arithmetic, and the meters' honesty."""

import json

import pytest
import torch

from slimlab.bench import calibration
from slimlab.bench.meters import EnergyMeter, PeakMemory, cost_per_million

TINY = {"size": 128, "min_time_s": 0.005, "repeats": 1}


def test_gemm_peak_is_measured_once_then_cached(tmp_path):
    cache = tmp_path / "peak.json"
    first = calibration.gemm_peak(cache=cache, **TINY)
    assert not first["cached"] and first["fp32_gflops"] > 0 and first["memory_gbps"] > 0
    assert first["threads"] == torch.get_num_threads()
    second = calibration.gemm_peak(cache=cache, **TINY)
    assert second["cached"] and second["fp32_gflops"] == first["fp32_gflops"]
    assert json.loads(cache.read_text()).keys() == {calibration.machine_key(size=TINY["size"])}
    refreshed = calibration.gemm_peak(cache=cache, refresh=True, **TINY)
    assert not refreshed["cached"]


def test_gemm_peak_is_keyed_by_threads_and_survives_a_corrupt_cache(tmp_path):
    cache = tmp_path / "peak.json"
    calibration.gemm_peak(cache=cache, **TINY)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(before + 1)
        other = calibration.gemm_peak(cache=cache, **TINY)
    finally:
        torch.set_num_threads(before)
    assert not other["cached"] and len(json.loads(cache.read_text())) == 2
    cache.write_text("{not json")
    assert not calibration.gemm_peak(cache=cache, **TINY)["cached"]


def test_int8_gemm_is_measured_where_the_build_has_it():
    result = calibration.measure_gemm_peak(**TINY)
    if hasattr(torch, "_int_mm"):
        assert result["int8_gops"] is None or result["int8_gops"] > 0


def test_roofline_position():
    peak = {"fp32_gflops": 100.0, "int8_gops": 400.0, "memory_gbps": 10.0}
    r = calibration.roofline(
        flops_per_inference=1_000_000, bytes_per_inference=1000.0, throughput_per_s=10_000, peak=peak
    )
    assert r["achieved_gflops"] == pytest.approx(10.0) and r["peak_share"] == pytest.approx(0.1)
    assert r["intensity_flops_per_byte"] == pytest.approx(1000.0)
    assert r["attainable_gflops"] == pytest.approx(100.0)  # compute-bound at this intensity
    low = calibration.roofline(1000, 1000.0, 1.0, peak)
    assert low["attainable_gflops"] == pytest.approx(10.0)  # 1 FLOP/byte: bandwidth-bound
    assert calibration.roofline(1000, 1000.0, 1.0, peak, int8=True)["peak_gflops"] == 400.0
    assert calibration.roofline(None, None, 1.0, peak)["peak_share"] is None


def test_peak_memory_sees_an_allocation():
    with PeakMemory("cpu") as memory:
        block = torch.ones(64 * 1024 * 1024 // 4)  # 64 MiB, touched
        del block
    reading = memory.reading()
    assert reading.peak_bytes is not None and reading.peak_bytes >= 48 * 1024 * 1024


def _fake_rapl(root, value, wrap=1_000_000):
    domain = root / "intel-rapl:0"
    domain.mkdir(parents=True, exist_ok=True)
    (domain / "energy_uj").write_text(str(value))
    (domain / "max_energy_range_uj").write_text(str(wrap))
    return domain


def test_energy_from_rapl_counters_including_a_wrap(tmp_path):
    domain = _fake_rapl(tmp_path, 500_000, wrap=3_000_000)
    meter = EnergyMeter("cpu", powercap=str(tmp_path))
    with meter:
        (domain / "energy_uj").write_text("2500000")  # +2 J
    assert meter.reading().joules == pytest.approx(2.0) and meter.reading().source == "rapl"
    with meter:
        (domain / "energy_uj").write_text("100000")  # past the 3 J range: 0.5 J to the wrap, then 0.1 J
    assert meter.reading().joules == pytest.approx(0.6)


def test_energy_is_none_with_a_reason_when_unreadable(tmp_path):
    meter = EnergyMeter("cpu", powercap=str(tmp_path / "absent"))
    with meter:
        pass
    reading = meter.reading()
    assert reading.joules is None and "no RAPL" in reading.reason


def test_cost_per_million():
    assert cost_per_million(1000.0, 3.6) == pytest.approx(1.0)  # $3.60/h at 1000/s: $1 per million
    assert cost_per_million(1000.0, None) is None and cost_per_million(None, 1.0) is None


def _rec(backend, scenario, batch, p50, gflops, intensity):
    return {
        "backend": backend,
        "status": "ok",
        "scenario": scenario,
        "batch_size": batch,
        "latency_ms": {"p50": p50, "p90": p50 * 1.2},
        "roofline": {"achieved_gflops": gflops, "intensity_flops_per_byte": intensity},
    }


def test_plots_are_base64_pngs_or_none():
    import base64

    from slimlab.bench.plots import latency_vs_batch, roofline_plot

    records = [
        _rec(b, "offline", n, 0.1 * n**0.5, 0.5 * n, 2.0 * n)
        for b in ("eager", "onnxruntime")
        for n in (1, 8)
    ]
    records.append({"backend": "compile", "status": "skipped", "reason": "x"})
    peak = {"fp32_gflops": 100.0, "int8_gops": 400.0, "memory_gbps": 10.0}
    for png in (latency_vs_batch(records), roofline_plot(records, peak)):
        assert base64.b64decode(png).startswith(b"\x89PNG")
    assert latency_vs_batch([r for r in records if r["status"] != "ok"]) is None
    assert roofline_plot(records, {}) is None


def test_int8_peak_is_the_fastest_int8_gemm_and_says_how_and_when(tmp_path):
    result = calibration.measure_gemm_peak(**TINY)
    candidates = result["int8_candidates"]
    assert "onnxruntime MatMulInteger u8s8" in candidates
    rates = {k: v["gops"] for k, v in candidates.items() if v.get("gops")}
    assert result["int8_gops"] == max(rates.values()) and result["int8_kernel"] in rates
    assert result["bf16_gflops"] is None or result["bf16_gflops"] > 0
    assert result["load1_before"] is not None and "MatMulInteger" in result["method"]
    cached = calibration.gemm_peak(cache=tmp_path / "p.json", **TINY)
    assert cached["measured_at"].endswith("Z")


def test_a_peak_cached_under_load_is_measured_again(tmp_path, monkeypatch):
    cache = tmp_path / "peak.json"
    first = calibration.gemm_peak(cache=cache, **TINY)
    table = json.loads(cache.read_text())
    key = next(iter(table))
    table[key].update(load1_before=99.0, load1_after=99.0, cpu_count=2, fp32_gflops=1e-6)
    cache.write_text(json.dumps(table))
    monkeypatch.setattr(calibration, "_load1", lambda: 0.5)
    again = calibration.gemm_peak(cache=cache, **TINY)
    assert not again["cached"] and "under load" in again["remeasured"]
    assert again["fp32_gflops"] >= first["fp32_gflops"] * 0.01  # the busy figure is not kept
    quiet = calibration.gemm_peak(cache=cache, **TINY)
    assert quiet["cached"]  # measured on a quiet machine: trusted


def test_roofline_uses_the_peak_of_its_own_precision():
    peak = {"fp32_gflops": 100.0, "bf16_gflops": 200.0, "int8_gops": 400.0, "memory_gbps": 10.0}
    assert calibration.roofline(1000, 10.0, 1.0, peak, precision="bf16")["peak_gflops"] == 200.0
    r = calibration.roofline(1000, 10.0, 1.0, peak, precision="int8")
    assert (r["peak_gflops"], r["peak_precision"]) == (400.0, "int8")
    no_bf16 = {**peak, "bf16_gflops": None}
    assert calibration.roofline(1000, 10.0, 1.0, no_bf16, precision="bf16")["peak_precision"] == "fp32"


def test_precision_of_an_ort_backed_or_bf16_module():
    from slimlab.bench.backends import torch_precision
    from slimlab.treatments import HalfPrecision, apply
    from slimlab.treatments.static_quant import StaticInt8, _ort_static

    mlp = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    # Defect: an ORT QDQ module benched through eager was compared with the fp32 peak.
    assert torch_precision(_ort_static(mlp, torch.randn(16, 8), StaticInt8(calibration_samples=16))) == "int8"
    assert torch_precision(apply(mlp, HalfPrecision(dtype="bf16"))) == "bf16"
    assert torch_precision(mlp) == "fp32"
