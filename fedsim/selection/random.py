"""Uniform random client sampling (the paper's baseline)."""

from __future__ import annotations

import numpy as np

from fedsim.selection.base import ProbeReport, Sampler, draw_without_replacement


class RandomSampler(Sampler):
    """K distinct clients, drawn proportionally to data size (``proportional``) or uniformly."""

    def __init__(self, proportional: bool = True) -> None:
        self.proportional = proportional

    def select(
        self,
        server_round: int,
        available: np.ndarray,
        num_to_select: int,
        probes: dict[int, ProbeReport],
    ) -> list[int]:
        """Draw without replacement among the available clients."""
        weights = self.client_sizes[available] if self.proportional else None
        return draw_without_replacement(self.rng, available, num_to_select, weights)
