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
