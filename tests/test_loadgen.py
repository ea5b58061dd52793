"""MLPerf LoadGen drivers: Server through HTTP, SingleStream and Offline in process, the summary parser."""

import json

import pytest
import torch

from slimlab.errors import SlimlabError
from slimlab.serve import InputSpec, from_module, loadgen
from slimlab.serve.server import BackgroundServer

pytest.importorskip("mlperf_loadgen")

SUMMARY = """Scenario : Server
Completed samples per second    : 194.58
Result is : INVALID
  Performance constraints satisfied : Yes
  Min duration satisfied : Yes
  Early stopping satisfied: NO
Early Stopping Result:
 * Run unsuccessful.
 * Processed 392 queries.
50.00 percentile latency (ns)   : 1199647
99.00 percentile latency (ns)   : 8575090
"""


def test_summary_parser_counts_a_single_stream_runs_queries():
    text = "Result is : VALID\nEarly Stopping Result:\n * Processed at least 64 queries (400).\n"
    assert loadgen.parse_summary(text, "single-stream", None).queries == 400


def test_summary_parser_reads_loadgen_verdicts():
    r = loadgen.parse_summary(SUMMARY, "server", 200)
    assert not r.valid and r.completed_qps == pytest.approx(194.58)
    assert r.latency_ms["p99"] == pytest.approx(8.57509) and r.latency_ms["p50"] == pytest.approx(1.199647)
    assert r.early_stopping == "Run unsuccessful." and r.queries == 392
    assert r.constraints["Early stopping satisfied"] is False


def test_server_scenario_through_http_counts_every_query():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    servable = from_module(model, [InputSpec("x", "float32", (4,))])
    bodies = [json.dumps({"inputs": [[float(i), 1.0, 2.0, 3.0]]}).encode() for i in range(32)]
    with BackgroundServer(servable, max_batch_size=8, max_wait_ms=1) as url:
        result = loadgen.server_http(
            url,
            bodies,
            target_qps=40,
            latency_bound_ms=2000,
            min_duration_s=0.5,
            max_duration_s=3,
            min_queries=20,
        )
        metrics = __import__("httpx").get(f"{url}/metrics").text
    assert result.scenario == "server" and result.errors == 0
    assert result.latency_ms["p99"] > 0 and result.completed_qps > 0
    assert result.constraints["Min queries satisfied"]
    answered = next(
        float(x.split()[-1])
        for x in metrics.splitlines()
        if x.startswith('slimlab_requests_total{code="200"}')
    )
    assert answered >= 20  # every LoadGen query was a real request


def test_load_goes_to_loopback_only():
    with pytest.raises(SlimlabError, match=r"127\.0\.0\.1 only"):
        loadgen.server_http("http://10.1.2.3:8000", [b"{}"], 10, 10)


def test_single_stream_and_offline_in_process():
    seen: list[int] = []

    def run(indices):
        seen.extend(indices)

    ss = loadgen.single_stream(run, 16, min_duration_s=0.1, max_duration_s=2, min_queries=30)
    assert ss.constraints["Min queries satisfied"] and ss.latency_ms["p90"] >= 0 and len(seen) >= 30
    seen.clear()
    off = loadgen.offline(run, 16, expected_qps=100, min_duration_s=0.05, max_duration_s=2)
    assert off.completed_qps > 0 and len(seen) == 5  # expected_qps x min_duration samples, in one query
