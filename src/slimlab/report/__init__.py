"""results.json and the self-contained HTML report."""

from slimlab.report.html import render_report
from slimlab.report.results import build_results
from slimlab.report.writer import REPORT_FILE, RESULTS_FILE, write_outputs

__all__ = ["REPORT_FILE", "RESULTS_FILE", "build_results", "render_report", "write_outputs"]
