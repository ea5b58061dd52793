"""The report of `slimlab compare`: any table of scores, compared with a baseline and ranked."""

from __future__ import annotations

from slimlab.report.templating import ENV
from slimlab.stats import cd_diagram, figure_to_base64_png


def cd_png(result: dict) -> str | None:
    ranking = result.get("ranking") or {}
    return figure_to_base64_png(cd_diagram(ranking)) if "cd" in ranking else None


def render_compare_report(result: dict, source: str) -> str:
    return ENV.get_template("compare.html.j2").render(r=result, source=source, cd_png=cd_png(result))
