"""The one jinja2 environment of every slimlab report: templates from this package, autoescaping on for
every template (user strings such as variant, group and dataset names are escaped), and the number filters."""

from __future__ import annotations

import json
import math

from jinja2 import Environment, PackageLoader, select_autoescape


def _pct(value, digits: int = 1) -> str:
    return "–" if value is None or value != value else f"{100 * value:.{digits}f}"


def _p(value) -> str:
    if value is None or value != value:
        return "–"
    return "<0.001" if value < 1e-3 else f"{value:.3f}"


def _num(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,}" if isinstance(value, int) else f"{value:.{digits}f}"


def _pretty_json(value) -> str:
    """Readable JSON for a <pre>: real characters, not \\u escapes (jinja2's `tojson` escapes ' < > & for
    use inside <script>, which shows "paper\\u0027s" in text). Autoescaping then makes it safe HTML."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


ENV = Environment(
    loader=PackageLoader("slimlab.report", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters.update(pct=_pct, p=_p, num=_num, pretty_json=_pretty_json)
