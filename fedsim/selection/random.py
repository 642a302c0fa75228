"""Random client sampling: uniform (the usual baseline) or by data size (the HiCS-FL code's)."""

from __future__ import annotations

import numpy as np

from fedsim.selection.base import ProbeReport, Sampler
from fedsim.selection.draws import draw_without_replacement


class RandomSampler(Sampler):
    """K distinct clients, drawn uniformly or, with ``proportional``, by data size.

    ``conf/sampler/random.yaml`` is uniform; ``conf/sampler/random_proportional.yaml``
    draws by data size, as the HiCS-FL authors' code does.
    """

    def __init__(self, proportional: bool = False) -> None:
        self.proportional = bool(proportional)

    def choose(self, server_round: int, available: np.ndarray, count: int, probes: dict[int, ProbeReport]) -> list[int]:
        """Draw without replacement among the available clients."""
        weights = self.client_sizes[available] if self.proportional else None
        return draw_without_replacement(self.rng, available, count, weights)
