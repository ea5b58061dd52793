"""benchmarks/run_benchmarks.py: its BENCHMARKS.md section, and (slow) one quick run end to end."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import load_script

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "run_benchmarks.py"


def _script():
    return load_script(SCRIPT)


def test_section_is_replaced_and_the_rest_kept(tmp_path):
    script = _script()
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Title\n\nintro\n")
    script.write_section(path, f"{script.START}\nold\n{script.END}\n")
    script.write_section(path, f"{script.START}\nnew\n{script.END}\n")
    text = path.read_text()
    assert text.startswith("# Title\n\nintro\n") and "new" in text and "old" not in text
    assert text.count(script.START) == 1


@pytest.mark.slow
def test_quick_run_writes_every_workload(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--threads", "1", "--out", str(out)],
        check=True,
        env=env,
        capture_output=True,
        timeout=600,
    )
    text = out.read_text()
    for label in ("### cnn1d", "### mlp", "### mlp-1024", "### Speedups", "torch.utils.benchmark"):
        assert label in text
