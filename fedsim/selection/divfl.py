"""DivFL (Balakrishnan et al., ICLR 2022): diverse client selection by facility location.

Choose S, |S| = K, greedily minimising the facility-location cost
``sum_i min_{k in S} ||g_i - g_k||`` so that the chosen clients' gradients "cover" every
client's gradient (the aggregate of S then approximates full participation).

Two variants:
- ``ideal`` (the HiCS-FL paper): every available client sends the full-batch gradient
  of the current global model before selection (a probe of all available clients);
  the cost covers the probed clients.
- ``stale`` (the authors' code): the last full model update each client sent after
  training (zeros for clients never seen); the cost covers all N clients, and only
  available clients can be chosen.
``stochastic=True`` runs stochastic greedy: each step looks at a random subset of
size ``max(K, subset_fraction * number of candidates)`` of the remaining candidates.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from fedsim.selection.base import ClientReport, ProbeReport, Sampler, SamplerNeeds
from fedsim.selection.draws import draw_without_replacement
from fedsim.selection.geometry import pairwise_distances
from fedsim.selection.updates import LatestUpdates


def facility_location_cost(distances: np.ndarray, chosen: list[int]) -> float:
    """``sum_i min_{k in chosen} d(i, k)``; infinite for an empty set."""
    if not chosen:
        return float("inf")
    return float(np.asarray(distances)[:, chosen].min(axis=1).sum())


def facility_location_greedy_from_distances(
    distances: np.ndarray,
    k: int,
    rng: np.random.Generator | None = None,
    subset_size: int | None = None,
    candidates: np.ndarray | None = None,
) -> list[int]:
    """Greedy minimisation of the facility-location cost given a distance matrix.

    ``distances[i, j]`` is the distance between client ``i`` (a row: every row is to be
    covered) and client ``j`` (a column: a possible pick); ``candidates`` (default: all
    columns) are the column indices that may be chosen. With ``rng`` ties are broken at random; with ``rng`` and
    ``subset_size`` each step only scans a random subset of the remaining candidates
    (stochastic greedy). Returns ``min(k, len(candidates))`` distinct indices in the order
    chosen.
    """
    dist = np.asarray(distances, dtype=np.float64)
    remaining = np.arange(dist.shape[1]) if candidates is None else np.asarray(candidates, dtype=int).copy()
    if rng is not None:
        remaining = rng.permutation(remaining)  # random tie-breaking (argmin takes the first)
    k = min(int(k), len(remaining))
    chosen: list[int] = []
    current = np.full(dist.shape[0], np.inf)
    for _ in range(k):
        pool = remaining
        if rng is not None and subset_size is not None and subset_size < len(remaining):
            pool = rng.choice(remaining, size=int(subset_size), replace=False)
        costs = np.minimum(current[:, None], dist[:, pool]).sum(axis=0)
        best = int(pool[int(np.argmin(costs))])
        chosen.append(best)
        current = np.minimum(current, dist[:, best])
        remaining = remaining[remaining != best]
    return chosen


def facility_location_greedy(
    features: np.ndarray,
    k: int,
    rng: np.random.Generator | None = None,
    subset_size: int | None = None,
) -> list[int]:
    """Greedy facility location on feature vectors (rows): the indices of the K chosen rows.

    Each step adds the row that most lowers ``sum_i min_{k in S} ||f_i - f_k||``; the cost
    never increases from one step to the next. See
    :func:`facility_location_greedy_from_distances` for ``rng`` and ``subset_size``.
    """
    return facility_location_greedy_from_distances(pairwise_distances(features), k, rng, subset_size)


class DivFLSampler(Sampler):
    """DivFL: the K available clients whose gradients best cover all clients' gradients.

    Parameters
    ----------
    variant : "ideal" | "stale"
        Fresh full-batch gradients from every available client each round (probes), or
        the last full model update of each client (kept after training).
    stochastic : bool
        Stochastic greedy over random subsets instead of the exact greedy.
    subset_fraction : float
        Stochastic greedy's subset size is ``max(K, subset_fraction * #candidates)``.
    """

    def __init__(
        self, variant: Literal["ideal", "stale"] = "ideal", stochastic: bool = False, subset_fraction: float = 0.1
    ) -> None:
        if variant not in ("ideal", "stale"):
            raise ValueError(f"unknown DivFL variant {variant!r}")
        if not 0.0 < subset_fraction <= 1.0:
            raise ValueError("subset_fraction must be in (0, 1]")
        self.variant = variant
        self.stochastic = bool(stochastic)
        self.subset_fraction = float(subset_fraction)
        if variant == "ideal":
            self.needs = SamplerNeeds(probe_gradients=True)
        else:
            self.needs = SamplerNeeds(full_updates=True)

    @classmethod
    def unread_params(cls, params: dict) -> set[str]:
        """``subset_fraction`` only matters to stochastic greedy (:mod:`fedsim.identity`)."""
        return set() if params.get("stochastic") else {"subset_fraction"}

    def reset(self) -> None:
        """Start with no stored updates (stale variant)."""
        self.store = LatestUpdates(self.num_clients)

    def probe_candidates(self, server_round: int, available: np.ndarray) -> list[int]:
        """Ideal variant: every available client sends its gradient; stale: none."""
        if self.variant == "ideal":
            return [int(a) for a in np.asarray(available, dtype=int)]
        return []

    def _subset_size(self, num_candidates: int, k: int) -> int | None:
        if not self.stochastic:
            return None
        return max(k, int(self.subset_fraction * num_candidates))

    def choose(self, server_round: int, available: np.ndarray, count: int, probes: dict[int, ProbeReport]) -> list[int]:
        """Greedy facility location over the clients' gradients (or stale updates)."""
        k = count
        if self.variant == "ideal":
            avail = set(int(a) for a in available)
            ids = np.array(sorted(p for p, r in probes.items() if p in avail and r.gradient is not None), dtype=int)
            if len(ids) == 0:  # no gradient came back: nothing to cover, draw at random
                self.round_diagnostics = {"fallback_random": True}
                return draw_without_replacement(self.rng, available, k, self.client_sizes[available])
            feats = np.stack([np.asarray(probes[int(p)].gradient, dtype=np.float64).ravel() for p in ids])
            picks = facility_location_greedy_from_distances(
                pairwise_distances(feats), k, self.rng, self._subset_size(len(ids), k)
            )
            chosen = [int(ids[i]) for i in picks]
        else:
            everyone = np.arange(self.num_clients)
            dist = self.store.distances(everyone)  # cover all N clients
            picks = facility_location_greedy_from_distances(
                dist, k, self.rng, self._subset_size(len(available), k), candidates=available
            )
            chosen = [int(i) for i in picks]
        self.round_diagnostics = {"fallback_random": False}
        return chosen

    def observe(self, server_round: int, reports: list[ClientReport]) -> None:
        """Stale variant: keep the full model updates of this round's clients."""
        if self.variant == "stale":
            self.store.store(reports)
