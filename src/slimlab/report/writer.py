"""Write results.json and report.html into a run directory."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from slimlab.report.html import render_report

if TYPE_CHECKING:
    from slimlab.analysis import Analysis

RESULTS_FILE = "results.json"
REPORT_FILE = "report.html"


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def write_outputs(analysis: Analysis, out_dir: str | Path) -> tuple[Path, Path]:
    """results.json (the analysis' results, already strict JSON) and report.html."""
    return write_json_and_html(analysis.results, render_report(analysis), out_dir)


def write_json_and_html(results: dict, html: str, out_dir: str | Path) -> tuple[Path, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results_path, report_path = out / RESULTS_FILE, out / REPORT_FILE
    _write_atomic(results_path, json.dumps(results, indent=1, allow_nan=False))
    _write_atomic(report_path, html)
    return results_path, report_path
