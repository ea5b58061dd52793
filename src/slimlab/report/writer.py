"""Write results.json and report.html into a run directory."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

from slimlab.report.html import render_report

RESULTS_FILE = "results.json"
REPORT_FILE = "report.html"


def _finite(value):
    """JSON has no NaN: a value that could not be computed is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def write_outputs(results: dict, out_dir: str | Path) -> tuple[Path, Path]:
    clean = _finite(results)
    return write_json_and_html(clean, render_report(clean), out_dir)


def write_json_and_html(results: dict, html: str, out_dir: str | Path) -> tuple[Path, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results_path, report_path = out / RESULTS_FILE, out / REPORT_FILE
    _write_atomic(results_path, json.dumps(_finite(results), indent=1, allow_nan=False))
    _write_atomic(report_path, html)
    return results_path, report_path
