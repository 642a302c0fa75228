"""Power-of-Choice client selection (Cho, Wang, Joshi 2020): "pow-d".

Draw d candidates proportionally to their data shares (without replacement); each
evaluates the current global model on its local training data; keep the K candidates
with the highest loss. Biasing towards high-loss clients speeds up early convergence.
The HiCS-FL paper uses d = N (every available client reports each round); the authors'
code uses d = 2K. Round 1 is random (proportional to data share), without probes.
"""

from __future__ import annotations

import math
import numpy as np

from fedsim.selection.base import ProbeReport, Sampler
from fedsim.selection.draws import draw_without_replacement


class PowerOfChoiceSampler(Sampler):
    """pow-d: probe d candidates for their current loss, keep the K highest.

    Parameters
    ----------
    d : int | None
        Number of candidates. ``None`` (with ``d_factor`` None) means every available
        client (the HiCS-FL paper's d = N).
    d_factor : float | None
        Alternative: d = ceil(d_factor * K) (the authors' code: 2).
    Candidates whose probe failed are not candidates; if fewer than K probes come back,
    fewer than K clients are selected (if none comes back, the round falls back to the
    random draw of round 1 rather than training nobody).
    """

    def __init__(self, d: int | None = None, d_factor: float | None = None) -> None:
        if d is not None and d_factor is not None:
            raise ValueError("give d or d_factor, not both")
        if d is not None and d < 1:
            raise ValueError("d must be >= 1")
        if d_factor is not None and not 0 < d_factor < float("inf"):  # NaN fails too
            raise ValueError(f"sampler.d_factor={d_factor}: must be a finite number > 0")
        self.d = d
        self.d_factor = d_factor

    @classmethod
    def unread_params(cls, params: dict) -> set[str]:
        """``d_factor`` is not read when ``d`` is given (:mod:`fedsim.identity`)."""
        return {"d_factor"} if params.get("d") is not None else set()

    def num_candidates(self, num_available: int) -> int:
        """d for this round, at least K and at most the number of available clients."""
        if self.d is not None:
            d = int(self.d)
        elif self.d_factor is not None:
            d = int(math.ceil(self.d_factor * self.clients_per_round))
        else:
            d = num_available
        return min(max(d, self.clients_per_round), num_available)

    def probe_candidates(self, server_round: int, available: np.ndarray) -> list[int]:
        """Round 1: none (random round). Later: d candidates drawn by data share."""
        available = np.asarray(available, dtype=int)
        if server_round <= 1 or len(available) == 0:
            return []
        d = self.num_candidates(len(available))
        if d >= len(available):
            return [int(c) for c in available]
        return draw_without_replacement(self.rng, available, d, self.client_sizes[available])

    def choose(self, server_round: int, available: np.ndarray, count: int, probes: dict[int, ProbeReport]) -> list[int]:
        """The ``count`` probed available candidates with the highest loss."""
        avail = set(int(a) for a in available)
        candidates = [pid for pid in probes if pid in avail and np.isfinite(probes[pid].loss)]
        if server_round <= 1 or not probes:
            chosen = draw_without_replacement(self.rng, available, count, self.client_sizes[available])
            self.round_diagnostics = {"random_round": True}
            return chosen
        # Highest loss first; ties keep the (random) candidate order.
        ranked = sorted(candidates, key=lambda pid: -probes[pid].loss)
        chosen = [int(pid) for pid in ranked[:count]]
        self.round_diagnostics = {"random_round": False, "num_candidates": len(candidates)}
        return chosen
