"""fedsim's one matplotlib set-up: the Agg backend (no display needed) and seaborn.

Every module that draws (``fedsim.results.learning_curve``, ``fedsim.compare.plots``, the
study scripts) imports ``plt`` and ``sns`` from here, so the backend is chosen once, before
pyplot is first imported.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

DPI = 100
"""Resolution of every PNG fedsim writes."""

__all__ = ["DPI", "plt", "sns"]
