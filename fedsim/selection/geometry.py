"""Geometry of client updates shared by the samplers: angles, distances, Gram matrices.

One home for the formulas several samplers use, so each is written once:

- :func:`angles_across` / :func:`angles_between` / :func:`angles_from_gram`: the angle (radians) between updates,
  from the vectors themselves or from their Gram matrix;
- :func:`squared_distances_from_gram`, :func:`distances_from_gram`, :func:`pairwise_distances`:
  Euclidean distances ``||x_i - x_j||`` through ``|x_i|^2 + |x_j|^2 - 2 <x_i, x_j>``;
- :func:`hics_distances` / :func:`hics_distance_matrix`: HiCS-FL's clustering distance,
  angle + lambda * entropy gap, between two sets of clients or among one.

**The zero-update rule** (one rule for every sampler). A zero update has no direction: it
is a client that has not reported yet (clustered sampling and DivFL keep zeros until a
client is seen) or one whose update vanished. Its angle to any non-zero update is pi/2
(orthogonal: it says nothing about similarity, so it is neither close nor opposite) and
its angle to another zero update is 0 (two clients with no information are alike).
"""

from __future__ import annotations

import numpy as np

ZERO_TO_NONZERO_ANGLE = np.pi / 2
"""Angle between a zero update and a non-zero one (see the module docstring)."""


def _angles_from_cosines(cos: np.ndarray, zero: np.ndarray) -> np.ndarray:
    """arccos of clipped cosines, with the zero-update rule applied; 0 on the diagonal."""
    cos[zero, :] = 0.0  # arccos(0) = pi/2 = ZERO_TO_NONZERO_ANGLE
    cos[:, zero] = 0.0
    cos[np.ix_(zero, zero)] = 1.0
    np.fill_diagonal(cos, 1.0)
    return np.arccos(np.clip(cos, -1.0, 1.0))


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Each row divided by its norm; a zero row stays zero."""
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def angles_across(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) angles in radians between the rows of ``a`` and those of ``b``.

    Rows are normalised first and the cosine clipped, since rounding can push parallel
    vectors past 1; the zero-update rule applies.
    """
    unit_a, unit_b = unit_rows(a), unit_rows(b)
    zero_a, zero_b = ~unit_a.any(axis=1), ~unit_b.any(axis=1)
    cos = unit_a @ unit_b.T
    cos[zero_a, :] = 0.0  # arccos(0) = pi/2 = ZERO_TO_NONZERO_ANGLE
    cos[:, zero_b] = 0.0
    cos[np.ix_(zero_a, zero_b)] = 1.0
    return np.arccos(np.clip(cos, -1.0, 1.0))


def angles_between(vectors: np.ndarray) -> np.ndarray:
    """(N, N) angles in radians between the rows of ``vectors`` (N, D); 0 on the diagonal."""
    angles = angles_across(vectors, vectors)
    np.fill_diagonal(angles, 0.0)
    return angles


def angles_from_gram(gram: np.ndarray) -> np.ndarray:
    """(N, N) angles in radians between updates, given only their Gram matrix."""
    gram = np.asarray(gram, dtype=np.float64)
    norms = np.sqrt(np.clip(np.diag(gram), 0.0, None))
    zero = norms <= 0.0
    safe = np.where(zero, 1.0, norms)
    return _angles_from_cosines(gram / safe[:, None] / safe[None, :], zero)


def squared_distances_from_gram(gram: np.ndarray) -> np.ndarray:
    """``||x_i - x_j||^2`` from the Gram matrix, clipped at 0 against rounding."""
    gram = np.asarray(gram, dtype=np.float64)
    sq = np.diag(gram)
    return np.clip(sq[:, None] + sq[None, :] - 2.0 * gram, 0.0, None)


def distances_from_gram(gram: np.ndarray) -> np.ndarray:
    """Euclidean distances ``||x_i - x_j||`` from the Gram matrix."""
    return np.sqrt(squared_distances_from_gram(gram))


def pairwise_distances(features: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of ``features`` (flattened per row)."""
    x = np.asarray(features, dtype=np.float64)
    x = x.reshape(len(x), -1)
    return distances_from_gram(x @ x.T)


def hics_distances(directions_a: np.ndarray, entropies_a: np.ndarray, directions_b: np.ndarray,
                   entropies_b: np.ndarray, lam: float) -> np.ndarray:
    """HiCS-FL's Dist(u, k) = angle(d_u, d_k) + lam * |H_u - H_k| between two sets, (len(a), len(b)).

    ``directions`` are the vectors whose angle is measured (bias updates, or the whole
    output layer); the angle follows :func:`angles_across`, zero-update rule included.
    """
    gap = np.asarray(entropies_a, dtype=np.float64)[:, None] - np.asarray(entropies_b, dtype=np.float64)[None, :]
    return angles_across(directions_a, directions_b) + lam * np.abs(gap)


def hics_distance_matrix(directions: np.ndarray, entropies: np.ndarray, lam: float) -> np.ndarray:
    """:func:`hics_distances` of N clients among themselves, (N, N), 0 on the diagonal."""
    distances = hics_distances(directions, entropies, directions, entropies, lam)
    np.fill_diagonal(distances, 0.0)
    return distances
