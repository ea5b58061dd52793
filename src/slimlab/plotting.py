"""Plot helpers below every layer: one way to turn a matplotlib Figure into a base64 PNG for the
self-contained HTML reports, the hover layer (the plotted points as data next to the image, placed in
percent of its size, so that the report shows each point's values on hover: CSS only, works offline), and
the critical-difference diagram (drawn from `rank_methods`' plain dict, so that `slimlab.report` draws it
without importing `slimlab.stats`)."""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def png_base64(fig: Figure, dpi: int = 110) -> str:
    """The figure as a base64 PNG string (`<img src="data:image/png;base64,...">`)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def cd_diagram(ranking: dict, title: str | None = None) -> Figure:
    """A critical-difference diagram (Demšar 2006) from `rank_methods`' output, drawn on a Figure (no
    pyplot, so it is safe in threads and servers). The axis is the average rank, best on the left; thick
    bars join methods whose difference is not significant under the chosen post-hoc test, and the CD bar
    shows the Nemenyi critical difference."""
    methods = ranking["order"]
    ranks = [ranking["average_ranks"][m] for m in methods]
    k = len(methods)
    half = math.ceil(k / 2)
    fig = Figure(figsize=(7, 1.6 + 0.3 * half))
    ax = fig.add_axes((0.22, 0.02, 0.56, 0.86))  # room on both sides for the labels
    ax.set_xlim(0.5, k + 0.5)
    ax.set_ylim(-(half + 1.5), 1.4)
    ax.axis("off")
    ax.hlines(0, 1, k, color="black", lw=1)
    for tick in range(1, k + 1):
        ax.vlines(tick, 0, 0.15, color="black", lw=1)
        ax.text(tick, 0.25, str(tick), ha="center", va="bottom", fontsize=9)
    for i, (m, r) in enumerate(zip(methods, ranks, strict=True)):
        left = i < half
        row = -(i + 1) if left else -(k - i)
        edge = 0.6 if left else k + 0.4
        ax.plot([r, r, edge], [0, row, row], color="black", lw=0.8)
        label = f"{m} ({r:.2f})"
        ax.text(edge, row, label, ha="right" if left else "left", va="center", fontsize=9)
    cd = ranking["cd"]
    ax.plot([1, 1 + cd], [1.0, 1.0], color="black", lw=1.5)
    ax.text(1 + cd / 2, 1.1, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=8)
    for level, group in enumerate(ranking["cliques"]):
        lo = ranking["average_ranks"][group[0]]
        hi = ranking["average_ranks"][group[-1]]
        y = -0.35 - 0.2 * level
        ax.plot([lo - 0.03, hi + 0.03], [y, y], color="tab:red", lw=3, solid_capstyle="round")
    posthoc = ranking.get("posthoc", "nemenyi")
    default = (
        f"average rank over {ranking['n_datasets']} datasets; bars join methods not different ({posthoc})"
    )
    ax.set_title(title or default, fontsize=9)
    return fig


@dataclass(frozen=True)
class HoverPoint:
    axes: Axes
    x: float
    y: float
    tip: str  # plain text; the template escapes it


def png_with_points(fig: Figure, points: list[HoverPoint], dpi: int = 110) -> dict:
    """{"png": base64 PNG, "points": [{"left", "top", "tip"}]}, left/top in percent of the image. The figure
    is saved whole (no tight bounding box, which would crop it by an amount unknown here), so the data
    coordinates map to image coordinates through the figure's own transform after one draw."""
    fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    width, height = fig.bbox.width, fig.bbox.height
    out = []
    for p in points:
        px, py = p.axes.transData.transform((p.x, p.y))
        left, top = 100 * px / width, 100 * (1 - py / height)
        if 0 <= left <= 100 and 0 <= top <= 100:
            out.append({"left": round(left, 2), "top": round(top, 2), "tip": p.tip})
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return {"png": base64.b64encode(buffer.getvalue()).decode("ascii"), "points": out}


def clip_unit_axis(ax: Axes, top: float = 1.0) -> None:
    """An accuracy axis never shows values below 0 or above its maximum."""
    lo, hi = ax.get_ylim()
    ax.set_ylim(max(lo, 0.0), min(hi, top))
