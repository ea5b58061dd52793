"""Model files: valid ones load; corrupt or hostile ones are refused with one clear error, running nothing."""

import contextlib
import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from slimlab.bench.backends import EagerBackend, OnnxRuntimeBackend, export_onnx
from slimlab.bench.loading import (
    from_reference,
    load_exported_program,
    load_model_file,
    load_onnx,
    load_state_dict_file,
)
from slimlab.errors import DataFileError


class Payload:
    """Unpickling this runs code that creates `marker`: what a hostile model file would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    model = from_reference("mlp", (40,), 10, {"hidden": [16]})
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    export_onnx(model.module, torch.randn(2, 40), path)
    return model, path


def test_onnx_file_loads_and_matches_eager(tiny):
    model, path = tiny
    loaded = load_onnx(path)
    assert loaded.input_shape == (40,) and loaded.module is None and loaded.source == "onnx"
    prepared = OnnxRuntimeBackend().prepare(loaded, torch.randn(3, 40))
    x = torch.randn(5, 40)
    with torch.inference_mode():
        expected = model.module(x).numpy()
    np.testing.assert_allclose(prepared(x), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_onnx_is_a_clear_error(tiny, tmp_path, damage):
    _, good = tiny
    data = good.read_bytes()
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\x00not an onnx model" * 10)
    with pytest.raises(DataFileError, match=r"bad\.onnx: not a valid ONNX model") as info:
        load_model_file(bad)
    assert "\n" not in str(info.value)


def test_hostile_pickle_in_pt_file_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2), "x": Payload(marker)}, evil)
    with pytest.raises(DataFileError, match="refused: slimlab loads only tensors"):
        load_state_dict_file(evil, "mlp", (40,), 10)
    with pytest.raises(DataFileError, match="refused"):
        load_model_file(evil, arch="mlp", input_shape=(40,), num_classes=10)
    assert not marker.exists()
    # The control: the payload is live, and an unrestricted torch.load would have run it.
    torch.load(evil, weights_only=False)
    assert marker.exists()


def test_raw_pickle_file_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "model.pth"
    evil.write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(DataFileError, match="refused"):
        load_model_file(evil, arch="mlp", input_shape=(40,), num_classes=10)
    assert not marker.exists()


def test_pickled_module_is_refused_with_advice(tmp_path):
    path = tmp_path / "module.pt"
    torch.save(from_reference("mlp", (40,), 10, {"hidden": [8]}).module, path)
    with pytest.raises(
        DataFileError, match=r"Unsupported global: GLOBAL slimlab\.models\.mlp\.MLP\)\. Save a state_dict"
    ):
        load_state_dict_file(path, "mlp", (40,), 10, {"hidden": [8]})


def test_state_dict_file_loads_into_its_architecture(tmp_path):
    source = from_reference("mlp", (40,), 10, {"hidden": [8]}, seed=3)
    path = tmp_path / "w.pt"
    torch.save(source.module.state_dict(), path)
    loaded = load_state_dict_file(path, "mlp", (40,), 10, {"hidden": [8]})
    x = torch.randn(4, 40)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.module(x), source.module(x))
    with pytest.raises(DataFileError, match="does not fit model 'mlp'"):
        load_state_dict_file(path, "mlp", (40,), 10, {"hidden": [9]})
    with pytest.raises(DataFileError, match="needs the architecture"):
        load_model_file(path)


def _export_pt2(path, module):
    program = torch.export.export(module, (torch.randn(2, 40),), dynamic_shapes=({0: torch.export.Dim("b")},))
    torch.export.save(program, path)


def test_pt2_loads_and_runs(tmp_path):
    source = from_reference("mlp", (40,), 10, {"hidden": [8]})
    path = tmp_path / "m.pt2"
    _export_pt2(path, source.module)
    loaded = load_exported_program(path)
    assert loaded.input_shape == (40,)
    x = torch.randn(3, 40)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.module(x), source.module(x))
    # The program's own module refuses .eval(); the backends call it, so they must work on the wrapper.
    prepared = EagerBackend().prepare(loaded, x)
    np.testing.assert_allclose(prepared(x), source.module(x).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_pt2_is_called_as_deployed_without_the_pytree_wrapper(tmp_path, monkeypatch):
    # Defect: every call went through program.module(), whose per-call pytree flattening and input checks
    # cost 2.7x the original module at batch 1.
    source = from_reference("cnn1d", (40,), 10, {"channels": 4})
    path = tmp_path / "c.pt2"
    program = torch.export.export(
        source.module, (torch.randn(2, 40),), dynamic_shapes=({0: torch.export.Dim("b")},)
    )
    torch.export.save(program, path)
    loaded = load_exported_program(path)
    assert loaded.module.calls_graph_directly
    x = torch.randn(5, 40)
    with torch.inference_mode():
        first = loaded.module(x)  # checked once against the program's own call
        calls = []
        monkeypatch.setattr(loaded.module.program, "forward", lambda *a: calls.append(a))
        again = loaded.module(x)
    assert not calls  # later calls never touch program.module()
    with torch.inference_mode():
        torch.testing.assert_close(again, source.module(x))
        torch.testing.assert_close(first, again)


def _poison_pt2(good, bad, marker):
    """Mark the first weight as pickled and put the payload where its bytes were."""
    evil = io.BytesIO()
    torch.save(Payload(marker), evil)
    with zipfile.ZipFile(good) as src:
        config_name = next(n for n in src.namelist() if n.endswith("model_weights_config.json"))
        config = json.loads(src.read(config_name))
        first = next(iter(config["config"].values()))
        first["use_pickle"] = True
        target = config_name.rsplit("/", 1)[0] + "/" + first["path_name"]
        with zipfile.ZipFile(bad, "w") as dst:
            for info in src.infolist():
                data = src.read(info)
                if info.filename == config_name:
                    data = json.dumps(config).encode()
                elif info.filename == target:
                    data = evil.getvalue()
                dst.writestr(info, data)


def test_hostile_pt2_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    good, bad = tmp_path / "good.pt2", tmp_path / "bad.pt2"
    _export_pt2(good, from_reference("mlp", (40,), 10, {"hidden": [8]}).module)
    _poison_pt2(good, bad, marker)
    with pytest.raises(DataFileError, match="refused"):
        load_model_file(bad)
    assert not marker.exists()
    # The control: torch.export.load itself would have run the payload.
    with contextlib.suppress(Exception):  # what it builds afterwards is broken; the code has already run
        torch.export.load(str(bad))
    assert marker.exists()


def test_unknown_and_missing_files(tmp_path):
    with pytest.raises(DataFileError, match="not found"):
        load_model_file(tmp_path / "nope.onnx")
    other = tmp_path / "model.h5"
    other.write_bytes(b"x")
    with pytest.raises(DataFileError, match="unknown model file type"):
        load_model_file(other)
    not_zip = tmp_path / "m.pt2"
    not_zip.write_bytes(b"garbage")
    with pytest.raises(DataFileError, match=r"not a torch\.export archive"):
        load_model_file(not_zip)


def test_pt2_with_a_custom_object_constant_is_refused(tmp_path):
    good, bad = tmp_path / "good.pt2", tmp_path / "bad.pt2"
    _export_pt2(good, from_reference("mlp", (40,), 10, {"hidden": [8]}).module)
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        root = src.namelist()[0].split("/", 1)[0]
        dst.writestr(f"{root}/data/constants/custom_obj_0", b"\x80\x04anything")
    with pytest.raises(DataFileError, match="pickled Python object"):
        load_model_file(bad)


def test_exported_onnx_files_do_not_outlive_prepare(tiny, tmp_path, monkeypatch):
    import tempfile

    model, _ = tiny
    made = []
    real = tempfile.TemporaryDirectory

    def spy(*args, **kwargs):
        directory = real(*args, **kwargs)
        made.append(Path(directory.name))
        return directory

    monkeypatch.setattr(tempfile, "TemporaryDirectory", spy)
    prepared = OnnxRuntimeBackend().prepare(model, torch.randn(2, 40))
    assert prepared.info["file"] is None and len(made) == 1 and not made[0].exists()
    kept = OnnxRuntimeBackend(workdir=tmp_path / "keep").prepare(model, torch.randn(2, 40))
    # A fixed file name: the model's name can be user text (a variant name), never part of a path.
    assert (tmp_path / "keep" / "model.onnx").is_file() and kept.info["file"].endswith("model.onnx")
