"""Figures for reports (confusion matrix, SNR curve, learning curve, DET curve) without touching pyplot.

A :class:`matplotlib.figure.Figure` made directly renders with the Agg canvas when saved, so plotting never
selects a backend, opens a window or keeps figures alive in a global registry: a program that imports
``speech`` keeps its own matplotlib set-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def new_figure(width: float, height: float, dpi: int = 100) -> Figure:
    """An empty figure ``width`` x ``height`` inches; add axes with ``fig.subplots()`` and ``fig.savefig(path)``."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=dpi)
