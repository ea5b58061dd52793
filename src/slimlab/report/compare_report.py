"""The report of `slimlab compare`: any table of scores, compared with a baseline and ranked."""

from __future__ import annotations

from slimlab.report.plots import cd_diagram_png
from slimlab.report.templating import ENV


def cd_png(result: dict) -> str | None:
    return cd_diagram_png(result.get("ranking") or {})


def render_compare_report(result: dict, source: str) -> str:
    return ENV.get_template("compare.html.j2").render(r=result, source=source, cd_png=cd_png(result))
