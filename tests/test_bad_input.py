"""Bad input and hostile names (issue 11): each is one line and exit 2, before any work starts, and no
user text becomes a file path."""

from __future__ import annotations

import errno
import json
import tempfile

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from slimlab.cli import app
from slimlab.config import parse_experiment
from slimlab.errors import ConfigError
from tests.conftest import TINY_TOML


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


# --- variant names ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["../../../../../tmp/x/evil", "a/b", "a\\b", "..", "<script>alert(1)</script>", "a\nb", "x" * 101]
)
def test_a_variant_name_that_could_be_a_path_is_refused(name):
    raw = {"name": "t", "variants": [{"name": "dense"}, {"name": name}]}
    with pytest.raises(ConfigError, match=r"variants\[1\]\.name.*letters, digits"):
        parse_experiment(raw)


def test_a_hostile_variant_name_exits_2_and_writes_nothing(tmp_path):
    toml = TINY_TOML.replace('name = "int8"', 'name = "../../../../../tmp/x/evil"')
    (tmp_path / "h.toml").write_text(toml)
    result = _invoke("run", str(tmp_path / "h.toml"), "--out", str(tmp_path / "o"), "--quick")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.stderr and "variants[2].name" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_the_onnx_backend_never_builds_a_path_from_the_model_name(tmp_path):
    # A name with "/" used to silently skip the ORT benchmark (and "../" wrote outside the folder).
    from slimlab.bench.backends import OnnxRuntimeBackend
    from slimlab.bench.loading import from_module

    module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 3))
    work = tmp_path / "work"
    for name in ("a/b", "../../escaped"):
        prepared = OnnxRuntimeBackend(workdir=work).prepare(
            from_module(module, (8,), name), torch.randn(2, 8)
        )
        out = prepared.run(prepared.to_input(torch.zeros(2, 8)))
        assert out.shape == (2, 3)
        written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.onnx")}
        assert written and all(p.startswith("work/") and p.count("/") == 1 for p in written), written


# --- slimlab compare --------------------------------------------------------------------------------------


def test_compare_with_exactly_two_methods_on_several_datasets(tmp_path):
    rng = np.random.default_rng(0)
    rows = [
        {"method": m, "dataset": d, "seed": s, "score": 0.9 - 0.02 * (m == "b") + rng.normal(0, 0.003)}
        for d in ("x", "y", "z")
        for s in range(3)
        for m in ("a", "b")
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "two.csv", index=False)
    result = _invoke("compare", str(tmp_path / "two.csv"), "--baseline", "a", "--out", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output + str(result.exception)
    assert "Friedman test needs at least 3 methods" in result.output
    assert (tmp_path / "o" / "report.html").is_file()


# --- data files -------------------------------------------------------------------------------------------


def _csv_toml(tmp_path, data_file: str, target: str = "y") -> str:
    toml = f"""
name = "csvbad"
[data]
name = "csv"
path = "{tmp_path / data_file}"
target = "{target}"
[model]
name = "mlp"
hidden = [8]
[train]
epochs = 1
[[variants]]
name = "dense"
[evaluate]
seeds = 2
[bench]
enabled = false
"""
    path = tmp_path / "c.toml"
    path.write_text(toml)
    return str(path)


def _write_data(tmp_path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60), "y": rng.integers(0, 2, 60)})
    frame.to_csv(tmp_path / "ok.csv", index=False)
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("a,b,y\n")
    (tmp_path / "latin1.csv").write_bytes(b"a,b,y\n1,2,0\n" + "caf\xe9,1,1\n".encode("latin-1"))
    frame.drop(columns="y").to_csv(tmp_path / "notarget.csv", index=False)
    frame.assign(y=1).to_csv(tmp_path / "oneclass.csv", index=False)


@pytest.mark.parametrize(
    ("data_file", "expected"),
    [
        ("missing.csv", "not found"),
        ("empty.csv", "empty"),
        ("header.csv", "no rows"),
        ("latin1.csv", "not UTF-8"),
        ("notarget.csv", "target column 'y' not found"),
        ("oneclass.csv", "fewer than two classes"),
    ],
)
def test_a_bad_csv_is_exit_2_before_any_trial(tmp_path, data_file, expected):
    _write_data(tmp_path)
    out = tmp_path / "out"
    result = _invoke("run", _csv_toml(tmp_path, data_file), "--out", str(out))
    assert result.exit_code == 2, result.output + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and data_file in lines[0], lines
    assert "Traceback" not in result.stderr
    assert not (out / "slimlab.db").exists()  # no trial was run, so none was stored as failed


# --- the output folder ------------------------------------------------------------------------------------


def _bad_out_cases(tmp_path):
    (tmp_path / "afile").write_text("x")
    return {
        "a file": (tmp_path / "afile", "is a file"),
        "below a file": (tmp_path / "afile" / "sub", "below the file"),
        "under /proc": ("/proc/slimlab-test/out", "pseudo file system"),
    }


@pytest.mark.parametrize("case", ["a file", "below a file", "under /proc"])
def test_run_with_an_unusable_out_is_exit_2(tmp_path, tiny_toml, case):
    out, expected = _bad_out_cases(tmp_path)[case]
    result = _invoke("run", str(tiny_toml), "--out", str(out), "--quick")
    assert result.exit_code == 2, result.output
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("case", ["a file", "below a file", "under /proc"])
def test_compare_with_an_unusable_out_is_exit_2(tmp_path, case):
    out, expected = _bad_out_cases(tmp_path)[case]
    pd.DataFrame(
        [{"method": m, "dataset": "d", "seed": s, "score": 0.5 + 0.01 * s} for s in range(3) for m in "ab"]
    ).to_csv(tmp_path / "s.csv", index=False)
    result = _invoke("compare", str(tmp_path / "s.csv"), "--out", str(out))
    assert result.exit_code == 2 and expected in result.stderr, result.output + result.stderr


def _read_only(monkeypatch):
    """A read-only file system, as the kernel reports it (tests may run as root, which ignores modes)."""

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)


def test_run_on_a_read_only_file_system_is_exit_2(tmp_path, tiny_toml, monkeypatch):
    _read_only(monkeypatch)
    result = _invoke("run", str(tiny_toml), "--out", str(tmp_path / "o"), "--quick")
    assert result.exit_code == 2 and "read-only file system" in result.stderr, result.stderr


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ro")
    (root / "t.toml").write_text(TINY_TOML.replace("[bench]", "[bench]\nenabled = false"))
    result = _invoke("run", str(root / "t.toml"), "--out", str(root / "out"), "--quick")
    assert result.exit_code == 0, result.output
    return root / "out"


def test_report_on_a_read_only_run_folder_says_so(finished_run, monkeypatch):
    before = json.loads((finished_run / "results.json").read_text())
    _read_only(monkeypatch)
    result = _invoke("report", str(finished_run))
    assert result.exit_code == 2, result.output
    assert "read-only" in result.stderr and "not a readable slimlab store" not in result.stderr
    assert json.loads((finished_run / "results.json").read_text()) == before  # nothing lost


def test_the_store_opens_read_only_without_writing(finished_run):
    from slimlab.experiment import Store

    def stamps() -> dict:  # SQLite's shared-memory index (-shm) is not data; readers may touch it
        return {p.name: p.stat().st_mtime_ns for p in finished_run.iterdir() if not p.name.endswith("-shm")}

    files = stamps()
    with Store.open_existing(finished_run, read_only=True) as store:
        assert store.get_meta("config")["name"] == "tiny"
    assert stamps() == files


# --- slimlab bench ----------------------------------------------------------------------------------------


def test_bench_on_a_folder_says_folder_not_unknown_model(tmp_path):
    result = _invoke("bench", str(tmp_path), "--quick", "--no-calibrate")
    assert result.exit_code == 2
    assert "is a folder" in result.stderr and "unknown model" not in result.stderr


def test_a_static_batch_pt2_gives_skipped_records_not_a_traceback(tmp_path):
    module = torch.nn.Sequential(torch.nn.Linear(40, 8), torch.nn.ReLU(), torch.nn.Linear(8, 10)).eval()
    torch.export.save(torch.export.export(module, (torch.randn(1, 40),)), tmp_path / "static.pt2")
    result = _invoke(
        "bench", str(tmp_path / "static.pt2"), "--backend", "eager", "--batch-sizes", "1,16",
        "--scenario", "single-stream,offline", "--quick", "--no-calibrate", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output + str(result.exception)
    records = json.loads(result.stdout)
    ok = {(r["scenario"], r["batch_size"]) for r in records if r["status"] == "ok"}
    skipped = [r for r in records if r["status"] == "skipped"]
    assert ok == {("single-stream", 1), ("offline", 1)}
    assert [(r["scenario"], r["batch_size"]) for r in skipped] == [("offline", 16)]
    assert "static batch size of 1" in skipped[0]["reason"]
