"""fedsim's one matplotlib set-up: the Agg backend (no display needed) and seaborn.

Every module that draws (``fedsim.results.learning_curve``, ``fedsim.compare.plots``, the
study scripts) imports ``plt`` and ``sns`` from here, so the backend is chosen once, before
pyplot is first imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

DPI = 100
"""Resolution of every PNG fedsim writes."""

__all__ = ["DPI", "plt", "save_png", "sns"]


def save_png(figure: Any, path: str | Path, dpi: int = DPI) -> Path:
    """Write ``figure`` as a 256-colour palette PNG, without following a link (and close it).

    Plots use few colours, so the palette keeps them as drawn (no dithering) at about a third
    of the bytes of a full-colour PNG: committed reports stay small. The same figure always
    gives the same bytes.
    """
    import io

    from PIL import Image

    from fedsim.safe_io import atomic_writer

    buffer = io.BytesIO()
    figure.savefig(buffer, dpi=dpi, format="png")
    plt.close(figure)
    buffer.seek(0)
    image = Image.open(buffer).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT,
                                                       dither=Image.Dither.NONE)
    with atomic_writer(path, binary=True) as handle:
        image.save(handle, format="PNG", optimize=True)
    return Path(path)
