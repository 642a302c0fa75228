"""Random client sampling: uniform (the usual baseline) or by data size (the HiCS-FL code's)."""

from __future__ import annotations

import numpy as np

from fedsim.selection.base import ProbeReport, Sampler
from fedsim.selection.draws import draw_without_replacement


class RandomSampler(Sampler):
    """K distinct clients, drawn uniformly or, with ``proportional``, by data size.

    ``conf/sampler/random.yaml`` is uniform; ``conf/sampler/random_proportional.yaml``
    draws by data size, as the HiCS-FL authors' code does.

    ``round_seeded`` (off by default; ``++sampler.round_seeded=true``) draws as the authors'
    random server does: ``np.random.seed(round - 1)`` then ``np.random.choice``, instead of the
    run's own sampler stream. Every run then draws from the same uniforms in a given round
    whatever its seed, so runs at different seeds are not independent draws of the selection
    sequence (``docs/authors-parity.md``): a switch for reproducing the code's runs, not for
    comparisons over seeds.
    """

    def __init__(self, proportional: bool = False, round_seeded: bool = False) -> None:
        self.proportional = bool(proportional)
        self.round_seeded = bool(round_seeded)

    def choose(self, server_round: int, available: np.ndarray, count: int, probes: dict[int, ProbeReport]) -> list[int]:
        """Draw without replacement among the available clients."""
        weights = self.client_sizes[available] if self.proportional else None
        rng = np.random.RandomState(server_round - 1) if self.round_seeded else self.rng
        return draw_without_replacement(rng, available, count, weights)
