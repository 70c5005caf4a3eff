"""User-facing text for errors the render engine shows (viewport overlay, render reports).

No bpy here: ``render_engine.py`` draws these lines with ``blf`` and reports these messages.
"""

from __future__ import annotations

import textwrap

from .errors import GaussianHeadsError

PREFIX = "Gaussian Heads: "


def describe(exc: BaseException) -> str:
    """The message for ``exc``: a GaussianHeadsError's own text; anything else named as the bug
    it is (its traceback goes to the system console)."""
    if isinstance(exc, GaussianHeadsError):
        return str(exc)
    detail = str(exc) or "no details"
    return f"unexpected {type(exc).__name__} ({detail}); see the system console"


def overlay_lines(message: str, width_px: int, char_px: float = 7.0, max_lines: int = 6) -> list[str]:
    """``message`` (prefixed with "Gaussian Heads: ") wrapped to a region ``width_px`` wide with
    glyphs about ``char_px`` wide; at most ``max_lines`` lines, the last ending in "…" when cut.
    An empty message gives no lines."""
    if not message:
        return []
    columns = max(20, int(max(0, width_px - 32) / max(char_px, 1.0)))
    lines = textwrap.wrap(PREFIX + " ".join(message.split()), columns) or [PREFIX.strip()]
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][:columns - 1].rstrip() + "…"
    return lines
