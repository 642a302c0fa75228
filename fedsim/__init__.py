"""fedsim: a federated-learning simulator for comparing client-sampling strategies.

The headline is HiCS-FL (heterogeneity-guided client sampling) and the baselines it is
compared with, all behind one sampler interface, on Flower's Message API.
``from fedsim import HiCSFL`` gives the Flower strategy (imported lazily, so importing
fedsim's data or sampler code does not pull in Flower).
"""

from __future__ import annotations

import os
from typing import Any

__version__ = "0.2.0"  # 0.2.0: random streams derived by fedsim.streams (STREAMS_VERSION 2)

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")  # fedsim never phones home


def __getattr__(name: str) -> Any:
    if name == "HiCSFL":
        from fedsim.server.hicsfl import HiCSFL

        return HiCSFL
    if name == "SamplingFedAvg":
        from fedsim.server.strategy import SamplingFedAvg

        return SamplingFedAvg
    raise AttributeError(f"module 'fedsim' has no attribute {name!r}")
