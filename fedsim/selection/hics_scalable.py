"""Scalable HiCS-FL clustering for cross-device populations (never builds the N x N matrix).

The exact mode (``fedsim.selection.hics``) builds the N x N HiCS distance matrix and runs
Ward on its ROWS, so each client is described by its distances to all others: O(N^2)
memory and about O(N^3) time. This module approximates the same clustering in two steps:

1. Micro-clusters. Each client becomes a point of a small embedding whose Euclidean
   geometry follows the HiCS distance: the unit direction of its update (the chord
   ``||u - v|| = 2 sin(theta / 2)`` tracks the angle theta) next to ``lam * H_hat``.
   Seeded k-means (scikit-learn's ``KMeans``: k-means++, or warm-started from the previous
   round's centroids) groups the N clients into ``m <= max_micro`` micro-clusters.
   Cost O(N m (D + 1)) per pass, O(N) extra memory.
2. Ward on the micro-clusters. Micro-cluster a with n_a members is treated as n_a copies
   of its centroid, so a client's row of the exact distance matrix is approximated by the
   weighted profile ``[sqrt(n_b) * Dist(c_a, c_b)]_b``, whose squared Euclidean distances
   are the weighted sums over the population that Ward sees in the exact mode. Weighted
   Ward (each point starts with weight n_a) cuts them into the requested clusters, and
   every client takes its micro-cluster's label. Cost O(m^2) memory, about O(m^3) time,
   independent of N.

With ``N <= max_micro`` step 1 is the identity and the result equals the exact mode (up to
tie-breaking). Per-client server state stays the stored update, O(C) floats.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans

from fedsim.selection.geometry import hics_distance_matrix, squared_distances_from_gram, unit_rows

def hics_embedding(directions: np.ndarray, entropies: np.ndarray, lam: float) -> np.ndarray:
    """Points (N, D + 1) whose Euclidean geometry follows the HiCS distance.

    The first D columns are the unit direction of each update (zero for a zero update),
    whose chord distance ``2 sin(theta / 2)`` is close to the angle theta for small
    angles; the last column is ``lam * H_hat``, so ``lam * |H_u - H_k|`` is its gap.
    """
    return np.hstack([unit_rows(directions), lam * np.asarray(entropies, dtype=np.float64)[:, None]])


def micro_clusters(
    embedding: np.ndarray,
    num_micro: int,
    rng: np.random.Generator,
    init: np.ndarray | None = None,
    max_iter: int = 20,
) -> tuple[np.ndarray, np.ndarray]:
    """k-means of ``embedding`` into ``num_micro`` groups: (labels (N,), centroids (m, D+1)).

    scikit-learn's ``KMeans`` (one run, at most ``max_iter`` Lloyd passes), seeded by
    k-means++ or, with a usable ``init`` (same shape: last round's centroids), warm-started
    from it. Its random state is drawn from ``rng``, so the sampler's stream fixes the
    result. With ``num_micro >= N`` every point is its own group.
    """
    points = np.asarray(embedding, dtype=np.float64)
    n = len(points)
    if num_micro >= n:
        return np.arange(n), points.copy()
    warm = init is not None and np.shape(init) == (num_micro, points.shape[1])
    model = KMeans(
        n_clusters=num_micro,
        init=np.asarray(init, dtype=np.float64) if warm else "k-means++",
        n_init=1,
        max_iter=max_iter,
        random_state=int(rng.integers(2**31 - 1)),
    )
    labels = model.fit_predict(points)
    return labels.astype(np.int64), model.cluster_centers_


def weighted_ward(features: np.ndarray, weights: np.ndarray, num_clusters: int) -> np.ndarray:
    """Ward clustering of points that start with ``weights`` members each: labels 0..M-1.

    Nearest-neighbour chain with the Lance-Williams update on the squared Ward distance
    ``2 n_a n_b / (n_a + n_b) ||x_a - x_b||^2`` (with unit weights this is plain Ward, as
    in scipy / scikit-learn). O(m^2) memory and O(m^2) updates; the tree is cut by
    applying the m - M cheapest merges (Ward's merge heights are monotone).
    """
    x = np.asarray(features, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64).copy()
    m = len(x)
    if num_clusters >= m:
        return np.arange(m)
    d2 = squared_distances_from_gram(x @ x.T)
    d2 *= 2.0 * w[:, None] * w[None, :] / (w[:, None] + w[None, :])
    np.fill_diagonal(d2, np.inf)
    active = np.ones(m, dtype=bool)
    merges: list[tuple[float, int, int]] = []
    chain: list[int] = []
    while len(merges) < m - 1:
        if not chain:
            chain.append(int(np.argmax(active)))
        a = chain[-1]
        b = int(np.argmin(d2[a]))
        if len(chain) >= 2 and d2[a, chain[-2]] <= d2[a, b]:
            b = chain[-2]
        if len(chain) < 2 or b != chain[-2]:
            chain.append(b)
            continue
        del chain[-2:]
        height = float(d2[a, b])
        merges.append((height, a, b))
        merged = ((w[a] + w) * d2[a] + (w[b] + w) * d2[b] - w * height) / (w[a] + w[b] + w)
        merged[~active] = np.inf
        active[b] = False
        merged[[a, b]] = np.inf
        d2[a], d2[:, a] = merged, merged
        d2[b], d2[:, b] = np.inf, np.inf
        w[a] += w[b]
    parent = np.arange(m)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for _, a, b in sorted(merges)[: m - num_clusters]:
        parent[root(b)] = root(a)
    roots = np.array([root(i) for i in range(m)])
    return np.unique(roots, return_inverse=True)[1]


def scalable_clusters(
    embedding: np.ndarray,
    num_clusters: int,
    rng: np.random.Generator,
    lam: float,
    init: np.ndarray | None = None,
    max_micro: int = 1000,
) -> tuple[np.ndarray, np.ndarray]:
    """Approximate exact-mode HiCS clusters: (labels (N,) in 0..M-1, micro-centroids (m, D+1)).

    ``embedding`` comes from :func:`hics_embedding` with the same ``lam``. The returned
    centroids can be passed back as ``init`` next round (warm start). Memory O(N D + m^2),
    never O(N^2).
    """
    embedding = np.asarray(embedding, dtype=np.float64)
    n = len(embedding)
    if num_clusters >= n:
        return np.arange(n), embedding.copy()
    micro, centroids = micro_clusters(embedding, min(int(max_micro), n), rng, init=init)
    counts = np.bincount(micro, minlength=len(centroids)).astype(np.float64)
    used = np.flatnonzero(counts > 0)
    # Distances between micro-centroids; hics_distance_matrix re-normalises the directions.
    entropies = centroids[used, -1] / lam if lam else np.zeros(len(used))
    distance = hics_distance_matrix(centroids[used, :-1], entropies, lam)
    profile = distance * np.sqrt(counts[used])[None, :]
    top = weighted_ward(profile, counts[used], min(num_clusters, len(used)))
    lookup = np.zeros(len(centroids), dtype=np.int64)
    lookup[used] = top
    return lookup[micro], centroids
