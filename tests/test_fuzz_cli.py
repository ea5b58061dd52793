"""A fuzz test of `slimlab run` over experiment files and CSV data files (hypothesis, derandomized): whatever
the input, the exit code is 0, 1 or 2, a user error never prints a traceback, and no file is written outside
`--out`. Most generated inputs are refused at validation, before any training; the few valid ones train a
4-unit MLP for one epoch on at most 120 rows, with benchmarks off."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from slimlab.cli import app

HOSTILE_TEXT = st.sampled_from(
    [
        "dense",
        "../../../../../tmp/slimlab-fuzz/evil",
        "a/b",
        "",
        " ",
        "<script>x</script>",
        "é",
        "a" * 120,
        "\x00",
    ]
)
SCALARS = st.one_of(
    st.integers(-3, 5), st.floats(-1, 2, allow_nan=False), st.booleans(), HOSTILE_TEXT, st.just([1, "x"])
)


def _toml_value(value) -> str:
    # JSON strings, numbers, booleans and arrays are TOML values too (for what the strategies generate).
    return json.dumps(value)


@st.composite
def experiment_files(draw) -> str:
    """TOML text: a valid tiny experiment with a few keys replaced, removed or added, or garbage."""
    sections: dict[str, dict] = {
        "": {"name": "fuzz"},
        "data": {"name": "csv", "path": "data.csv", "target": "y"},
        "model": {"name": "mlp", "hidden": [4]},
        "train": {"epochs": 1, "batch_size": 32},
        "evaluate": {"seeds": 2},
        "bench": {"enabled": False},
    }
    variants = [{"name": "dense"}, {"name": "int8", "treatments": [{"kind": "dynamic_int8"}]}]
    for _ in range(draw(st.integers(0, 3))):
        section = draw(st.sampled_from(sorted(sections)))
        action = draw(st.sampled_from(["set", "drop", "add"]))
        keys = sorted(sections[section])
        if action == "drop" and keys:
            sections[section].pop(draw(st.sampled_from(keys)))
        elif action == "set" and keys:
            sections[section][draw(st.sampled_from(keys))] = draw(SCALARS)
        else:
            sections[section][draw(st.sampled_from(["extra", "lr", "num_samples", "margin"]))] = draw(SCALARS)
    if draw(st.booleans()):
        variants[draw(st.integers(0, 1))]["name"] = draw(HOSTILE_TEXT)
    lines = [f"{k} = {_toml_value(v)}" for k, v in sections.pop("").items()]
    for name, body in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in body.items()]
    for v in variants:
        lines.append("[[variants]]")
        lines.append(f"name = {_toml_value(v['name'])}")
        if "treatments" in v:
            lines.append('treatments = [{kind = "dynamic_int8"}]')
    text = "\n".join(lines) + "\n"
    if draw(st.integers(0, 9)) == 0:  # now and then, text that is not TOML at all
        text = draw(st.text(max_size=40))
    return text


@st.composite
def data_files(draw) -> bytes:
    """CSV bytes: a small valid table, one with a defect (no target, one class, empty, NaN, text, ...), or
    raw bytes."""
    kind = draw(
        st.sampled_from(["valid", "one_class", "no_target", "empty", "header", "nan", "text", "bytes"])
    )
    if kind == "bytes":
        return draw(st.binary(max_size=60))
    if kind == "empty":
        return b""
    header = "a,b,y" if kind != "no_target" else "a,b,z"
    if kind == "header":
        return (header + "\n").encode()
    rows = []
    for i in range(120):
        a, b = (i * 37 % 17) / 7.0, (i * 11 % 13) / 5.0
        y = 0 if kind == "one_class" else int(a > 1.2)
        cell = "" if kind == "nan" and i % 9 == 0 else f"{a:.3f}"
        if kind == "text" and i % 5 == 0:
            cell = "n/a"
        rows.append(f"{cell},{b:.3f},{y}")
    return (header + "\n" + "\n".join(rows) + "\n").encode()


def _tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def _check(toml_text: str, data: bytes, quick: bool = True) -> None:
    with tempfile.TemporaryDirectory(prefix="slimlab-fuzz-") as tmp:
        root = Path(tmp)
        (root / "exp.toml").write_text(toml_text, encoding="utf-8", errors="surrogateescape")
        (root / "data.csv").write_bytes(data)
        before = _tree(root)
        escape = Path("/tmp/slimlab-fuzz")  # where the hostile names point
        outside = _tree(escape) if escape.exists() else set()
        cwd = os.getcwd()
        os.chdir(root)  # relative data paths resolve here, and a stray default `runs/` would show
        try:
            args = ["run", "exp.toml", "--out", str(root / "out")] + (["--quick"] if quick else [])
            result = CliRunner().invoke(app, args)
        finally:
            os.chdir(cwd)
        assert result.exit_code in (0, 1, 2), (result.exit_code, result.output, result.exception)
        if result.exception is not None:
            assert isinstance(result.exception, SystemExit), repr(result.exception)
        assert "Traceback" not in result.output + result.stderr
        if result.exit_code == 2:
            assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        written = {p for p in _tree(root) - before if p != "out" and not p.startswith("out/")}
        assert not written, written
        assert (_tree(escape) if escape.exists() else set()) == outside


ESCAPE = "../../../../../tmp/slimlab-fuzz/evil"
VALID_DATA = b"a,b,y\n" + b"".join(
    f"{i % 7 / 3:.3f},{i % 5 / 2:.3f},{int(i % 7 > 3)}\n".encode() for i in range(120)
)
VALID = """name = "fuzz"
[data]
name = "csv"
path = "data.csv"
target = "y"
[model]
name = "mlp"
hidden = [4]
[train]
epochs = 1
[[variants]]
name = "dense"
[[variants]]
name = "int8"
treatments = [{kind = "dynamic_int8"}]
[evaluate]
seeds = 2
[bench]
enabled = false
"""


@settings(
    max_examples=30,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(toml_text=experiment_files(), data=data_files())
@example(toml_text=VALID, data=VALID_DATA)  # one that trains (quick), end to end
@example(toml_text=VALID.replace('name = "int8"', f"name = {json.dumps(ESCAPE)}"), data=VALID_DATA)
def test_run_never_crashes_and_writes_only_under_out(toml_text, data):
    _check(toml_text, data)
