"""The report page itself (issue 11): readable config text, whole skip notes, hover data on the plots,
axes that respect the metric's range, a lottery axis with ticks, and tables that scroll in their own box.
The browser checks are in test_report_browser.py."""

from __future__ import annotations

import re

from slimlab.analysis.lottery import lottery_summary
from slimlab.report.lottery import lottery_figure
from slimlab.report.plots import pareto_figure


def test_resolved_config_shows_real_characters(tiny_report):
    _, html = tiny_report
    config = html[html.index("<h2>Resolved configuration</h2>") :]
    assert "\\u0027" not in config and "paper&#39;s check" in config


def test_the_onnx_skip_note_says_why_in_full(tiny_report):
    _, html = tiny_report
    notes = re.findall(r"skipped: ([^<]*)", html)
    onnx = [n for n in notes if "ONNX export" in n]
    assert onnx, notes
    # torch.ao int8 modules are refused before an export is tried (issue 13): the note names the cause
    # and the way out, in full; an export that fails shows its "Cause:" line, never a cut-off text.
    for n in onnx:
        assert not n.rstrip().endswith("Next steps:"), n
        assert "Cause:" in n or ("cannot be expressed in ONNX" in n and "static_int8" in n), n


def test_plots_carry_their_points_for_hover(tiny_report):
    _, html = tiny_report
    tips = re.findall(r'class="pt"[^>]*data-tip="([^"]*)"', html)
    assert {"dense", "prune50", "int8"} <= {t.split("&#10;")[0].split("\n")[0].split(" ")[0] for t in tips}
    assert all("accuracy" in t and "p50" in t for t in tips)


def test_tables_scroll_in_their_own_box_instead_of_overflowing(tiny_report):
    _, html = tiny_report
    style = html[html.index("<style>") : html.index("</style>")]
    table_rule = re.search(r"\btable \{([^}]*)\}", style).group(1)
    assert "overflow-x: auto" in table_rule and "max-width: 100%" in table_rule
    assert "<script>" in html and "src=" not in html[html.index("<script>") : html.index("</script>")]


def _rows(ci):
    return [
        {
            "variant": v,
            "n_ok": 2,
            "accuracy": {"mean": m, "ci": ci},
            "latency_p50_ms": lat,
            "latency_batch_size": 1,
        }
        for v, m, lat in (("dense", 0.1, 1.0), ("a", 0.1, 1.0), ("b", 0.11, 0.5))
    ]


def test_the_accuracy_axis_never_goes_below_0_or_above_1():
    fig, hover = pareto_figure(_rows([-0.55, 1.18]), ["b"], "t")
    lo, hi = fig.axes[0].get_ylim()
    assert lo >= 0 and hi <= 1
    assert len(hover) == 3


def test_nearby_points_get_no_overlapping_text_labels():
    fig, _ = pareto_figure(_rows([0.05, 0.15]), ["b"], "t")
    assert not fig.axes[0].texts  # names are in the legend, not beside the points
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[:3] == ["dense", "a", "b ★"]


def test_a_short_lottery_search_gets_several_ticks():
    trials = [{"variant": "dense", "seed": s, "status": "ok", "artifacts": {}} for s in range(2)]
    for seed in range(2):
        rounds = [
            {"round": r, "remaining_fraction": 0.8**r, "test_accuracy": 0.9 - 0.01 * r + 0.001 * seed}
            for r in range(3)
        ]
        for r in rounds:
            r["val_accuracy"] = r["test_accuracy"]
        trials.append(
            {"variant": "imp", "seed": seed, "status": "ok", "artifacts": {"lottery": {
                "control": "none", "rounds": rounds, "test_use": "report-only"}}}
        )  # fmt: skip
    fig, hover = lottery_figure(lottery_summary(trials))
    ticks = [t for t in fig.axes[0].get_xticks() if 60 <= t <= 100]
    assert len(ticks) >= 3, ticks
    assert len(hover) == 3
    lo, hi = fig.axes[0].get_ylim()
    assert lo >= 0 and hi <= 1


def test_the_headline_comes_before_every_table(tiny_report):
    _, html = tiny_report
    assert html.index('class="headline') < html.index("<table")
    assert "Recommended" in html[: html.index("<table")]
