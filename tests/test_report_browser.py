"""The reports in a real headless browser (Debian's chromium; .ci/run installs it): no console errors, no
table wider than the page, a name carrying a <script> not executed, and tables that sort by a click."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from slimlab.cli import app
from tests.browser import INJECTION, inspect_page, require_browser, run_script


@pytest.fixture(scope="module")
def hostile_compare(tmp_path_factory):
    require_browser()
    root = tmp_path_factory.mktemp("cmp")
    rng = np.random.default_rng(0)
    methods = ["dense", "pruned-with-a-rather-long-method-name-that-could-stretch-a-table", INJECTION]
    rows = [
        {"method": m, "dataset": f"d{d}", "seed": s, "score": 0.8 - 0.01 * i + rng.normal(0, 0.004)}
        for d in range(3)
        for s in range(4)
        for i, m in enumerate(methods)
    ]
    pd.DataFrame(rows).to_csv(root / "s.csv", index=False)
    result = CliRunner().invoke(
        app, ["compare", str(root / "s.csv"), "--baseline", "dense", "--out", str(root)]
    )
    assert result.exit_code == 0, result.output
    return root / "report.html"


def test_compare_report_in_a_browser(hostile_compare):
    view = inspect_page(hostile_compare, ("h1",), width=900)
    assert view.console_errors == []
    assert not view.injected_ran and view.script_count == 1
    assert view.widest_table <= view.page_width and view.document_scroll_width <= view.page_width
    assert view.in_first_screen["h1"]


def test_tables_sort_by_a_click(hostile_compare):
    order = run_script(
        hostile_compare,
        """
        const table = [...document.querySelectorAll('table')]
            .find(t => t.rows[0].cells[0].textContent === 'method');
        const read = () => [...table.rows].slice(1).map(r => parseFloat(r.cells[1].textContent));
        const before = read();
        table.rows[0].cells[1].click();
        const up = read();
        table.rows[0].cells[1].click();
        return [before, up, read(), table.rows[0].cells[1].getAttribute('aria-sort')];
        """,
    )
    before, up, down, state = order
    assert up == sorted(before) and down == sorted(before, reverse=True) and state == "descending"


def test_full_report_in_a_browser(tiny_report):
    require_browser()
    out, _ = tiny_report
    view = inspect_page(out / "report.html", ("h1", ".headline"), width=1024)
    assert view.console_errors == []
    assert view.in_first_screen[".headline"], "the headline must be visible without scrolling"
    assert not view.injected_ran
    assert view.widest_table <= view.page_width and view.document_scroll_width <= view.page_width
    assert view.hover_points >= 3 and view.script_count == 1
