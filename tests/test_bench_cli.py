"""`slimlab bench`: records as JSON, a table, and exit code 2 with one line for bad input."""

import json

import pytest
import torch
from typer.testing import CliRunner

from slimlab.bench.backends import export_onnx
from slimlab.bench.loading import from_reference
from slimlab.cli import app

FAST = ["--quick", "--no-calibrate", "--input-shape", "40"]


def _bench(*args):
    return CliRunner().invoke(app, ["bench", *args])


def test_json_records_for_a_reference_model():
    result = _bench("mlp", "--backend", "eager", "--batch-sizes", "1,8", "--json", *FAST)
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert {(r["scenario"], r["batch_size"]) for r in records} == {
        ("single-stream", 1),
        ("offline", 1),
        ("offline", 8),
        ("server", 8),
    }
    assert all(r["backend"] == "eager" and r["status"] == "ok" for r in records)


def test_onnx_file_table_shows_the_skipped_backend_and_its_reason(tmp_path):
    path = tmp_path / "tiny.onnx"
    export_onnx(from_reference("mlp", (40,), 10, {"hidden": [8]}).module, torch.randn(2, 40), path)
    result = _bench(str(path), "--backend", "eager,onnxruntime", "--scenario", "single-stream", "--quick")
    assert result.exit_code == 0, result.output
    table = " ".join(result.stdout.split())
    assert "skipped: eager needs a PyTorch module" in table and "onnxruntime │ single-stream" in table


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["resnet999"], "unknown model 'resnet999'"),
        (["mlp", "--backend", "tensorflow"], "backends"),
        (["mlp", "--batch-sizes", "1,x"], "comma-separated"),
        (["mlp", "--scenario", "burst"], "scenarios"),
        (["mlp", "--dataset", "nope", "--input-shape", ""], "nope"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, message):
    extra = [] if "--input-shape" in args else ["--input-shape", "40"]
    result = _bench(*args, *extra, "--quick", "--no-calibrate")
    assert result.exit_code == 2
    assert message in result.stderr and result.stderr.count("error:") == 1


def test_corrupt_onnx_file_exits_2(tmp_path):
    bad = tmp_path / "m.onnx"
    bad.write_bytes(b"\x08\x07truncated")
    result = _bench(str(bad), "--quick", "--no-calibrate")
    assert result.exit_code == 2
    assert "not a valid ONNX model" in result.stderr


def test_accuracy_on_the_validation_split_for_each_backend():
    args = ["mlp", "--dataset", "digits", "--backend", "eager,onnxruntime", "--scenario", "single-stream"]
    result = _bench(*args, "--accuracy", "--json", "--quick", "--no-calibrate")
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    accuracies = [r["accuracy"] for r in records]
    assert len(accuracies) == 2 and 0.0 <= accuracies[0] <= 1.0
    assert accuracies[1] == pytest.approx(accuracies[0], abs=0.01)  # the export keeps the (random) model
    assert [r["accuracy_flagged"] for r in records] == [False, False]
    table = _bench(*args, "--accuracy", "--quick", "--no-calibrate")
    assert table.exit_code == 0 and "acc %" in table.stdout
