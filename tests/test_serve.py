"""The model server: answers, refusals (4xx) that leave it serving, metrics, and the CLI's checks."""

import asyncio
import json
import random

import httpx
import numpy as np
import pytest
import torch

from slimlab.models.dlrm import DLRM, DLRMParams, example_inputs, export_dlrm_onnx
from slimlab.serve import InputSpec, RequestError, dlrm_servable, from_module, load_servable
from slimlab.serve.server import BackgroundServer

PARAMS = DLRMParams(
    num_dense=4, table_rows=[50, 80, 30], bag_size=3, embedding_dim=8, bottom_mlp=[16], top_mlp=[16, 1]
)


@pytest.fixture(scope="module")
def dlrm():
    torch.manual_seed(0)
    return DLRM(PARAMS).eval()


def _expected(model, dense, sparse):
    with torch.inference_mode():
        return torch.sigmoid(model(torch.as_tensor(dense), torch.as_tensor(sparse))).numpy()


def _bad_requests(rng: random.Random, dense, sparse) -> list[tuple[str, bytes]]:
    """(what is wrong, body) for each kind of malformed request."""
    d, s = dense.tolist(), sparse.tolist()
    out_of_range = sparse.copy()
    out_of_range[0, 1, 0] = PARAMS.table_rows[1]
    below = sparse.copy()
    below[0, 0, 0] = -2
    cases = {
        "wrong shape": {"inputs": {"dense": dense[:, :2].tolist(), "sparse": s}},
        "ragged": {"inputs": {"dense": [[1.0, 2.0], [1.0]], "sparse": s}},
        "fractional ids": {"inputs": {"dense": d, "sparse": (sparse + 0.5).tolist()}},
        "strings": {"inputs": {"dense": [["a"] * 4] * len(d), "sparse": s}},
        "id beyond its table": {"inputs": {"dense": d, "sparse": out_of_range.tolist()}},
        "id below padding": {"inputs": {"dense": d, "sparse": below.tolist()}},
        "unknown input": {"inputs": {"dense": d, "sparse": s, "extra": d}},
        "no inputs": {"data": d},
        "not a dict": [1, 2, 3],
        "a list for a two-input model": {"inputs": d},
        "too many examples": {"inputs": {"dense": [d[0]] * 40, "sparse": [s[0]] * 40}},
        "different counts": {"inputs": {"dense": d, "sparse": s[:1]}},
        "nan": {"inputs": {"dense": [[float("nan")] * 4] * len(d), "sparse": s}},
    }
    bodies = [(k, json.dumps(v).encode()) for k, v in cases.items()]
    bodies.append(("not JSON", b"{inputs: nope"))
    bodies.append(("oversize", b"[" + b"0," * 600_000 + b"0]"))
    return [bodies[rng.randrange(len(bodies))] for _ in range(1)] + bodies


def _mixed_requests(model, count: int) -> list[tuple[str, bytes, np.ndarray | None]]:
    """(what, body, expected outputs or None for a malformed request): one request in ten is malformed."""
    rng = random.Random(0)
    requests: list[tuple[str, bytes, np.ndarray | None]] = []
    for i in range(count):
        if i % 10 == 3:
            d, s = example_inputs(PARAMS, 2, seed=i)
            what, body = rng.choice(_bad_requests(rng, d.numpy(), s.numpy()))
            requests.append((what, body, None))
            continue
        n = rng.randint(1, 4)
        d, s = example_inputs(PARAMS, n, seed=i)
        s[:, :, -1][torch.rand(n, 3, generator=torch.Generator().manual_seed(i)) < 0.5] = -1  # short bags
        body = json.dumps({"inputs": {"dense": d.tolist(), "sparse": s.tolist()}}).encode()
        requests.append(("good", body, _expected(model, d, s)))
    return requests


def _drive(url: str, requests) -> list[tuple[int, dict]]:
    async def drive() -> list[tuple[int, dict]]:
        limits = httpx.Limits(max_connections=16)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
            gate = asyncio.Semaphore(16)

            async def one(body: bytes):
                async with gate:
                    r = await client.post(
                        "/predict", content=body, headers={"content-type": "application/json"}
                    )
                    return r.status_code, r.json()

            return await asyncio.gather(*(one(body) for _, body, _ in requests))

    return asyncio.run(drive())


def _check_answers(requests, answers, metrics: str) -> tuple[int, int]:
    """Every good request has the model's own outputs, every bad one a 4xx; the metrics count them all."""
    good = bad = 0
    for (what, _, expected), (code, reply) in zip(requests, answers, strict=True):
        if expected is None:
            assert 400 <= code < 500, (what, code, reply)
            assert reply["error"]
            bad += 1
        else:
            assert code == 200, reply
            np.testing.assert_allclose(reply["outputs"], expected, rtol=1e-5, atol=1e-6)
            good += 1
    assert f'slimlab_requests_total{{code="200"}} {good}.0' in metrics
    refused = sum(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith('slimlab_requests_total{code="4')
    )
    assert refused == bad
    assert 'slimlab_request_latency_window_seconds{quantile="0.99"}' in metrics
    assert "slimlab_batch_size_bucket" in metrics
    return good, bad


def test_a_thousand_requests_some_malformed(dlrm):
    """Every good request is answered with the model's own outputs, every bad one gets a 4xx, and the
    server keeps serving throughout; the metrics count them all."""
    requests = _mixed_requests(dlrm, 1000)
    servable = dlrm_servable(dlrm)
    with BackgroundServer(servable, max_batch_size=16, max_wait_ms=2, max_body_bytes=2**20) as url:
        answers = _drive(url, requests)
        health = httpx.get(f"{url}/health").json()
        metrics = httpx.get(f"{url}/metrics").text
    assert _check_answers(requests, answers, metrics) == (900, 100)
    assert health["status"] == "ok"


def test_ray_serve_deployment_answers_like_the_local_server(dlrm, tmp_path):
    """`--executor ray`: the same app on a local Ray instance, with Ray's @serve.batch; a state dict that
    each replica loads itself; good requests answered exactly, bad ones 4xx, on 127.0.0.1."""
    pytest.importorskip("ray.serve", reason="Ray Serve is not installed (pip install 'slimlab[ray]')")
    from safetensors.torch import save_file

    from slimlab.models.dlrm import PackedDLRM
    from slimlab.serve import ray_serve

    path = tmp_path / "w.safetensors"
    save_file(PackedDLRM(dlrm).state_dict(), str(path))
    requests = _mixed_requests(dlrm, 200)
    port = _free_port()
    ray_serve.start("127.0.0.1", port)
    try:
        model = {"model": str(path), "arch": "dlrm", "params": PARAMS.model_dump()}
        ray_serve.deploy(ray_serve.application(model, max_batch_size=16, max_wait_ms=2, max_body_bytes=2**20))
        url = f"http://127.0.0.1:{port}"
        answers = _drive(url, requests)
        health = httpx.get(f"{url}/health").json()
        metrics = httpx.get(f"{url}/metrics").text  # one replica: its own counters are the whole count
    finally:
        ray_serve.stop()
    assert _check_answers(requests, answers, metrics) == (180, 20)
    assert health["status"] == "ok" and health["model"] == "w"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_single_input_model_takes_a_list_of_examples():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    servable = from_module(model, [InputSpec("x", "float32", (3,))], "linear")
    arrays, n = servable.parse([[1, 2, 3], [4, 5, 6]])
    assert n == 2 and arrays["x"].dtype == np.float32
    with pytest.raises(RequestError, match=r"shape \(examples, 3\)"):
        servable.parse([[1, 2]])
    with BackgroundServer(servable, max_batch_size=4) as url:
        reply = httpx.post(f"{url}/predict", json={"inputs": [[1, 2, 3]]}).json()
    with torch.no_grad():
        expected = model(torch.tensor([[1.0, 2.0, 3.0]])).numpy()
    np.testing.assert_allclose(reply["outputs"], expected, rtol=1e-6)


def test_the_batcher_batches_concurrent_requests(dlrm):
    servable = dlrm_servable(dlrm)
    d, s = example_inputs(PARAMS, 1)
    body = {"inputs": {"dense": d.tolist(), "sparse": s.tolist()}}

    async def burst(url: str):
        async with httpx.AsyncClient(base_url=url) as client:
            return await asyncio.gather(*(client.post("/predict", json=body) for _ in range(24)))

    with BackgroundServer(servable, max_batch_size=8, max_wait_ms=50) as url:
        replies = asyncio.run(burst(url))
        metrics = httpx.get(f"{url}/metrics").text
    assert all(r.status_code == 200 for r in replies)
    count = next(
        float(x.split()[-1]) for x in metrics.splitlines() if x.startswith("slimlab_batch_size_count")
    )
    assert count < 24  # some model calls answered several requests


@pytest.mark.slow  # the ONNX export takes ~15 s on a loaded 2-core machine
def test_onnx_file_with_two_inputs_is_served(dlrm, tmp_path):
    path = tmp_path / "dlrm.onnx"
    export_dlrm_onnx(dlrm, path)
    d, s = example_inputs(PARAMS, 5, seed=1)
    servable = load_servable(str(path))
    assert [x.name for x in servable.inputs] == ["dense", "sparse"]
    assert servable.inputs[1].dtype == "int64"
    arrays, _ = servable.parse({"dense": d.tolist(), "sparse": s.tolist()})
    with torch.no_grad():
        expected = dlrm(d, s).numpy()
    np.testing.assert_allclose(servable.run(arrays).reshape(-1), expected, rtol=1e-4, atol=1e-5)


def test_state_dict_with_its_architecture(dlrm, tmp_path):
    from safetensors.torch import save_file

    from slimlab.models.dlrm import PackedDLRM

    path = tmp_path / "w.safetensors"
    save_file(PackedDLRM(dlrm).state_dict(), str(path))  # the packed model's keys, as a trial holds them
    servable = load_servable(str(path), arch="dlrm", params=PARAMS.model_dump())
    d, s = example_inputs(PARAMS, 3)
    arrays, _ = servable.parse({"dense": d.tolist(), "sparse": s.tolist()})
    np.testing.assert_allclose(servable.run(arrays), _expected(dlrm, d, s), rtol=1e-6)


def test_cli_serve_refuses_bad_input_before_binding(tmp_path):
    from typer.testing import CliRunner

    from slimlab.cli import app

    runner = CliRunner()
    cases = [
        (["serve", str(tmp_path / "missing.onnx")], "missing.onnx"),
        (["serve", str(tmp_path / "w.pt")], "needs its architecture"),
        (["serve", str(tmp_path / "w.pt"), "--arch", "dlrm"], "not found"),
        (["serve", "dlrm", "--params", "{oops"], "--params is not JSON"),
        (["serve", "dlrm", "--executor", "k8s"], "--executor"),
        (["serve", "mlp", "--executor", "ray"], "needs --input-shape"),
        (["serve", str(tmp_path), "--trial", "dense/0"], "not a run directory"),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, result.output
