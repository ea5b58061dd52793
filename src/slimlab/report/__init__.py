"""Renders an `slimlab.analysis.Analysis`: results.json and the self-contained HTML report."""

from slimlab.report.html import render_report
from slimlab.report.writer import REPORT_FILE, RESULTS_FILE, write_outputs

__all__ = ["REPORT_FILE", "RESULTS_FILE", "render_report", "write_outputs"]
