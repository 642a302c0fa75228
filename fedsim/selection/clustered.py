"""Clustered sampling (Fraboni, Vidal, Kameni, Lorenzi, ICML 2021), algorithm 2.

Clients whose latest model updates point the same way are grouped (Ward hierarchical
clustering of the angles between updates), and the K clients of a round are drawn one
from each of K sampling distributions built from the tree. Every client keeps its
expected weight (``sum_j r_{j,k} = K p_k``), so the aggregate stays unbiased, but
similar clients rarely come together, which lowers the variance of the aggregate.

Angles follow the zero-update rule of :mod:`fedsim.selection.geometry`: a client not yet
seen (zero update) is orthogonal to every seen one, so before updates arrive the tree
groups the unseen clients together and the distributions keep every client's mass K p_k.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.cluster.hierarchy import ClusterWarning, fcluster, linkage
from scipy.spatial.distance import squareform

from fedsim.selection.base import ClientReport, ProbeReport, Sampler, SamplerNeeds
from fedsim.selection.updates import LatestUpdates

_TOL = 1e-9
TREE_FROM = ("distances", "rows")
"""What :func:`fraboni_distributions`' Ward linkage can read."""


def fraboni_distributions(distance: np.ndarray, data_shares: np.ndarray, num_to_select: int,
                          tree_from: str = "distances") -> np.ndarray:
    """The K sampling distributions of Fraboni et al. (2021), algorithm 2.

    Parameters
    ----------
    distance : (N, N) array
        Symmetric dissimilarity between clients (e.g. the angle between their updates).
    data_shares : (N,) array
        p_k, each client's importance; renormalised to sum to 1.
    num_to_select : int
        K, the number of distributions (one client is drawn from each).
    tree_from : str
        What Ward's linkage reads: "distances" (the condensed distance matrix: clients
        merged by their distance to each other) or "rows" (each client's row of the N x N
        matrix as a point in R^N, Euclidean: what ``linkage(matrix, "ward")`` does when given
        the square matrix, as the HiCS-FL authors' code does in its fallback).

    Returns
    -------
    (K, N) array ``r`` with every row summing to 1 and ``r.sum(0) == K * p`` (a client may
    have mass in two or more rows).

    How: Ward linkage (see ``tree_from``); the merge heights are replaced by the
    merged clusters' total share, and the tree is cut at 1/K, so every flat cluster has
    total mass ``K * sum p`` <= 1. The K heaviest clusters each seed one distribution; the
    clients of the remaining clusters (cluster by cluster, lightest first) fill the rows'
    remaining room in order, a client's mass spilling over into the next row when a row
    is full. Clients with ``p_k > 1/K`` (mass above 1) spill the same way.
    """
    p = np.asarray(data_shares, dtype=np.float64)
    p = p / p.sum()
    n = len(p)
    k = int(num_to_select)
    if k < 1:
        raise ValueError("num_to_select must be >= 1")
    if tree_from not in TREE_FROM:
        raise ValueError(f"tree_from={tree_from!r}, expected one of {TREE_FROM}")
    mass = k * p  # what each client must receive over all rows
    if n == 1:
        return np.ones((k, 1))

    dist = np.asarray(distance, dtype=np.float64)
    dist = 0.5 * (dist + dist.T)
    np.fill_diagonal(dist, 0.0)
    dist = np.clip(np.nan_to_num(dist, nan=0.0), 0.0, None)
    if tree_from == "rows":
        with warnings.catch_warnings():  # SciPy warns that a square matrix looks like distances: intended here
            warnings.filterwarnings("ignore", category=ClusterWarning)
            tree = linkage(dist, method="ward")
    else:
        tree = linkage(squareform(dist, checks=False), method="ward")

    # Heights := total share of the merged cluster (monotone up the tree), cut at 1/K.
    weights = np.concatenate([p, np.zeros(n - 1)])
    weighted_tree = tree.copy()
    for i, (a, b) in enumerate(tree[:, :2].astype(int)):
        weights[n + i] = weights[a] + weights[b]
        weighted_tree[i, 2] = weights[n + i]
    labels = fcluster(weighted_tree, t=(1.0 / k) * (1.0 + _TOL), criterion="distance")

    cluster_ids = np.unique(labels)
    cluster_mass = np.array([mass[labels == c].sum() for c in cluster_ids])
    order = cluster_ids[np.argsort(cluster_mass, kind="stable")]  # lightest first
    kept = order[max(len(order) - k, 0):]
    rest = order[: max(len(order) - k, 0)]

    r = np.zeros((k, n))
    pending: list[tuple[int, float]] = []  # (client, mass still to place)
    for row, cluster in enumerate(kept):
        room = 1.0
        for client in np.flatnonzero(labels == cluster):
            put = min(mass[client], room)
            r[row, client] = put
            room -= put
            if mass[client] - put > _TOL:
                pending.append((int(client), mass[client] - put))
    for cluster in rest:
        pending.extend((int(c), mass[c]) for c in np.flatnonzero(labels == cluster))

    row = 0
    for client, left in pending:
        while left > _TOL and row < k:
            room = 1.0 - r[row].sum()
            if room <= _TOL:
                row += 1
                continue
            put = min(left, room)
            r[row, client] += put
            left -= put
        if left > _TOL:  # only float round-off can leave anything: give it to the last row
            r[k - 1, client] += left
    return r / r.sum(axis=1, keepdims=True)


class ClusteredSampler(Sampler):
    """Clustered sampling, algorithm 2 (similarity = angle between latest full updates).

    Each round, over the available clients: angles between their latest updates, the K
    distributions of :func:`fraboni_distributions` (data shares renormalised over the
    available clients), and one independent draw from each. A client drawn twice trains
    once, so a round may have fewer than K distinct clients (by design of the method).

    ``tree_from``: what the Ward linkage reads (:func:`fraboni_distributions`): "distances"
    (default) or "rows", as Fraboni et al.'s and the HiCS-FL authors' code (``linkage(sim_matrix,
    "ward")`` on the square matrix).
    """

    needs = SamplerNeeds(full_updates=True)

    def __init__(self, tree_from: str = "distances") -> None:
        if tree_from not in TREE_FROM:
            raise ValueError(f"ClusteredSampler: tree_from={tree_from!r}, expected one of {TREE_FROM}")
        self.tree_from = tree_from

    def reset(self) -> None:
        """Start with no updates (all zeros)."""
        self.store = LatestUpdates(self.num_clients)

    def choose(self, server_round: int, available: np.ndarray, count: int, probes: dict[int, ProbeReport]) -> list[int]:
        """One draw per distribution; the distinct clients drawn, in draw order."""
        shares = self.client_sizes[available]
        # Before any update is seen all angles are 0 and the tree is arbitrary; the
        # distributions are still valid (every client keeps mass K p_k).
        r = fraboni_distributions(self.store.angles(available), shares, count, tree_from=self.tree_from)
        drawn = [int(available[self.rng.choice(len(available), p=row / row.sum())]) for row in r]
        selected = list(dict.fromkeys(drawn))
        self.round_diagnostics = {"drawn": drawn, "distinct": len(selected)}
        return selected

    def observe(self, server_round: int, reports: list[ClientReport]) -> None:
        """Remember the full model updates of this round's clients."""
        self.store.store(reports)
