"""Scalable HiCS-FL clustering for cross-device populations (never builds the N x N matrix).

The exact mode (``fedsim.selection.hics``) builds the N x N HiCS distance matrix and runs
Ward on its ROWS, so each client is described by its distances to all others: O(N^2)
memory and about O(N^3) time. This module approximates the same clustering in two steps,
m = ``max_micro``:

1. Micro-clusters: N clients -> m groups. Which method depends on N:

   - N <= ``direct_factor * m`` (default 4 m): Ward's own first merges. Each client is
     described by a landmark profile ``[sqrt(n_b) * Dist(x_i, l_b)]_b`` over L (default m)
     k-means landmarks l_b of the embedding below (n_b clients each), a width-L
     approximation of the row the exact mode clusters; Ward restricted to a k-nearest-
     neighbour graph of these profiles (scikit-learn's ``AgglomerativeClustering`` with
     ``connectivity``) is stopped at m clusters. Temporary memory O(N L) = O(m^2) here
     (N <= 4 m, L = m); if the k-NN graph is disconnected, scikit-learn links its
     components through their pairwise distances (at most O(N^2 / 4) = O(m^2) floats).
   - larger N: k-means (scikit-learn's ``KMeans``: k-means++, or warm-started from the
     previous round's centroids) of the embedding, cost O(N m (D + 1)) per pass, O(N) memory.

   The embedding is the unit direction of each update next to ``lam * H_hat`` (the chord
   ``||u - v|| = 2 sin(theta / 2)`` tracks the angle theta, the last column the entropy gap).
2. Weighted Ward on the micro-clusters. A micro-cluster a (n_a members) is described by
   its distance profile to the micro-centroids c_b, ``[sqrt(n_b) * Dist(., c_b)]_b``:
   the mean of its members' profiles when step 1 used Ward (an N x m temporary, O(m^2) as
   N <= 4 m), the profile of its centroid otherwise. The squared Euclidean distances of
   these profiles are the weighted sums over the population that Ward sees in the exact
   mode. Weighted Ward (each point starts with weight n_a) cuts them into the requested
   clusters, and every client takes its micro-cluster's label. O(m^2) memory, about O(m^3)
   time, independent of N.

Why step 1 uses Ward where it can: Ward's result depends on the order of its merges, so
starting it from micro-clusters that are not nodes of its own tree changes the later
merges even when every micro-cluster lies inside one final cluster. At N = 1000,
m = 500, M = 100 (``benchmarks/hics_scalable_agreement.py``, seeds 0-4) k-means
micro-clusters of the embedding were 99% pure with respect to the exact clusters, yet
weighted Ward on them agreed with the exact mode at mean ARI 0.84 (0.90 even with the
micro-clusters' exact mean rows as features, 0.91 with k-means on the exact rows);
Ward-made micro-clusters on landmark profiles agree at 0.98. The landmark width matters
too (L = 100: 0.95, L = 500: 0.98): early Ward merges of near-identical clients depend on
fine differences of their rows.

With ``N <= max_micro`` step 1 is the identity and the result equals the exact mode (up to
tie-breaking). Per-client server state stays the stored update, O(C) floats.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.cluster import AgglomerativeClustering, KMeans
from sklearn.neighbors import kneighbors_graph

from fedsim.selection.geometry import hics_distance_matrix, hics_distances, squared_distances_from_gram, unit_rows

#: Default number of micro-clusters m, shared by :func:`scalable_clusters` and
#: ``HiCSSampler(micro_clusters=...)`` so the two cannot drift apart (docs/hics-fl.md, section 8).
DEFAULT_MICRO_CLUSTERS = 500


def hics_embedding(directions: np.ndarray, entropies: np.ndarray, lam: float) -> np.ndarray:
    """Points (N, D + 1) whose Euclidean geometry follows the HiCS distance.

    The first D columns are the unit direction of each update (zero for a zero update),
    whose chord distance ``2 sin(theta / 2)`` is close to the angle theta for small
    angles; the last column is ``lam * H_hat``, so ``lam * |H_u - H_k|`` is its gap.
    """
    return np.hstack([unit_rows(directions), lam * np.asarray(entropies, dtype=np.float64)[:, None]])


def cross_distances(points: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """HiCS distance (angle + lam * entropy gap) between embedding rows: (len(points), len(centers)).

    Both arguments are in :func:`hics_embedding` coordinates (centres may be means of
    them: their directions are re-normalised). The zero-update rule of
    ``fedsim.selection.geometry`` applies: pi/2 between a zero and a non-zero direction,
    0 between two zero ones.
    """
    return hics_distances(points[:, :-1], points[:, -1], centers[:, :-1], centers[:, -1], lam=1.0)


def landmark_profiles(embedding: np.ndarray, num_landmarks: int, rng: np.random.Generator) -> np.ndarray:
    """Width-L approximation (N, L) of each client's row of the exact distance matrix.

    The L landmarks are k-means centroids of ``embedding`` (random state drawn from
    ``rng``); column b is ``sqrt(n_b) * Dist(x_i, l_b)`` with n_b the landmark's members,
    so squared Euclidean distances between profiles approximate those between full rows.
    """
    points = np.asarray(embedding, dtype=np.float64)
    labels, centers = micro_clusters(points, min(int(num_landmarks), len(points)), rng)
    counts = np.bincount(labels, minlength=len(centers)).astype(np.float64)
    return cross_distances(points, centers) * np.sqrt(counts)[None, :]


def ward_micro_clusters(profiles: np.ndarray, num_micro: int, neighbors: int = 10) -> np.ndarray:
    """Ward of ``profiles`` on their k-nearest-neighbour graph, stopped at ``num_micro`` clusters.

    scikit-learn's ``AgglomerativeClustering`` with ``connectivity``: memory O(N k), no
    N x N matrix (a disconnected graph is completed by scikit-learn, which is why its
    warning is muted). Deterministic. Ward's early merges join near neighbours, so the
    groups are, up to the profile approximation, nodes of the tree unrestricted Ward builds.
    """
    x = np.asarray(profiles, dtype=np.float64)
    n = len(x)
    if num_micro >= n:
        return np.arange(n)
    graph = kneighbors_graph(x, min(int(neighbors), n - 1), include_self=False)
    model = AgglomerativeClustering(n_clusters=num_micro, linkage="ward", connectivity=graph)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="the number of connected components")
        return model.fit_predict(x).astype(np.int64)


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
    max_micro: int = DEFAULT_MICRO_CLUSTERS,
    direct_factor: float = 4.0,
    num_landmarks: int | None = None,
    neighbors: int = 10,
) -> tuple[np.ndarray, np.ndarray]:
    """Approximate exact-mode HiCS clusters: (labels (N,) in 0..M-1, micro-centroids (m, D+1)).

    ``embedding`` comes from :func:`hics_embedding` with the same ``lam``. Up to
    ``direct_factor * max_micro`` clients the micro-clusters are Ward's first merges on
    ``num_landmarks``-wide landmark profiles with a ``neighbors``-nearest-neighbour graph,
    above that k-means micro-clusters (see the module docstring). The returned centroids
    can be passed back as ``init`` next round (warm start of the k-means). Memory
    O(N D + m^2) (O(N L + m^2) on the Ward path, where N <= ``direct_factor`` m), never O(N^2).
    """
    embedding = np.asarray(embedding, dtype=np.float64)
    n = len(embedding)
    if num_clusters >= n:
        return np.arange(n), embedding.copy()
    num_micro = min(int(max_micro), n)
    direct = num_micro < n <= direct_factor * num_micro
    if direct:
        profiles = landmark_profiles(embedding, num_landmarks or num_micro, rng)
        micro = ward_micro_clusters(profiles, num_micro, neighbors)
        counts = np.bincount(micro).astype(np.float64)
        centroids = np.zeros((len(counts), embedding.shape[1]))
        np.add.at(centroids, micro, embedding)
        centroids /= counts[:, None]
        used = np.arange(len(counts))
        # Mean over each micro-cluster's members of their profiles to the micro-centroids.
        member_profiles = cross_distances(embedding, centroids)
        features = np.zeros((len(counts), len(counts)))
        np.add.at(features, micro, member_profiles)
        features /= counts[:, None]
    else:
        micro, centroids = micro_clusters(embedding, num_micro, rng, init=init)
        counts = np.bincount(micro, minlength=len(centroids)).astype(np.float64)
        used = np.flatnonzero(counts > 0)
        # Profiles of the micro-centroids themselves (O(m^2), whatever N);
        # hics_distance_matrix re-normalises the directions.
        entropies = centroids[used, -1] / lam if lam else np.zeros(len(used))
        features = hics_distance_matrix(centroids[used, :-1], entropies, lam)
    profile = features * np.sqrt(counts[used])[None, :]
    top = weighted_ward(profile, counts[used], min(num_clusters, len(used)))
    lookup = np.zeros(len(centroids), dtype=np.int64)
    lookup[used] = top
    return lookup[micro], centroids
