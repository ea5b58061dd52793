"""One way to turn a matplotlib Figure into a base64 PNG for the self-contained HTML reports."""

from __future__ import annotations

import base64
import io

from matplotlib.figure import Figure


def png_base64(fig: Figure, dpi: int = 110) -> str:
    """The figure as a base64 PNG string (`<img src="data:image/png;base64,...">`)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")
