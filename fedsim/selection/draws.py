"""Random draws of distinct clients, shared by the samplers.

- :func:`draw_without_replacement`: K distinct clients, uniformly or by weight (random,
  pow-d's candidates, warm-up and fallback rounds);
- :func:`draw_from_clusters`: a cluster by its probability, then a client inside it
  (HiCS-FL);
- :func:`draw_one_per_row`: one distinct client per row of a (K, N) distribution matrix
  (HiCS-FL's fallback to clustered sampling, as in the authors' code);
- :func:`least_recently_picked`: the candidates picked longest ago, ties broken at random
  (HiCS-FL's exploration slots).
"""

from __future__ import annotations

import numpy as np


def draw_without_replacement(
    rng: np.random.Generator | np.random.RandomState, candidates: np.ndarray, count: int,
    weights: np.ndarray | None = None,
) -> list[int]:
    """Draw ``min(count, len(candidates))`` distinct candidates, optionally weighted (``rng``: the
    sampler's stream, or a legacy ``RandomState`` where a sampler draws as numpy's global state)."""
    candidates = np.asarray(candidates)
    count = min(int(count), len(candidates))
    if count == 0:
        return []
    probs = None
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float64)
        probs = weights / weights.sum()
    return [int(c) for c in rng.choice(candidates, size=count, replace=False, p=probs)]


def draw_from_clusters(
    rng: np.random.Generator,
    labels: np.ndarray,
    cluster_probs: np.ndarray,
    count: int,
    client_weights: np.ndarray | None = None,
) -> list[int]:
    """Draw ``min(count, len(labels))`` distinct positions into ``labels``.

    Repeat: draw cluster m ~ pi (renormalised over clusters that still have an unpicked
    client), then a client of m among the unpicked ones, with probability proportional to
    ``client_weights`` (paper: data share p_k) or uniformly when it is None (authors'
    code). When every cluster that still has a client has probability 0 (annealing so
    strong that the softmax underflows), the next cluster is drawn uniformly among them,
    and likewise a client among members whose weights are all 0. The authors' code draws
    all K cluster labels first (re-drawing full clusters) and then the clients; that is the
    same distribution, because which clusters are full depends only on how many clients
    each has given, so one procedure serves both.
    """
    labels = np.asarray(labels)
    weights = np.ones(len(labels)) if client_weights is None else np.asarray(client_weights, np.float64)
    unpicked = np.ones(len(labels), dtype=bool)
    picked: list[int] = []
    for _ in range(min(int(count), len(labels))):
        open_clusters = np.zeros(len(cluster_probs), dtype=bool)
        open_clusters[labels[unpicked]] = True
        probs = np.where(open_clusters, cluster_probs, 0.0)
        if probs.sum() <= 0:  # every open cluster's probability underflowed to 0 (strong annealing)
            probs = open_clusters.astype(np.float64)
        m = rng.choice(len(probs), p=probs / probs.sum())
        members = np.flatnonzero(unpicked & (labels == m))
        member_weights = weights[members] if weights[members].sum() > 0 else np.ones(len(members))
        k = int(rng.choice(members, p=member_weights / member_weights.sum()))
        unpicked[k] = False
        picked.append(k)
    return picked


def draw_one_per_row(rng: np.random.Generator, distributions: np.ndarray) -> list[int]:
    """One distinct client per row of a (K, N) Clustered-Sampling distribution matrix.

    Fraboni's algorithm 2 may split a client over several rows; a client already drawn is
    excluded from later rows (renormalised), and a row with no mass left falls back to
    the remaining clients' total mass across rows (proportional to their data share).
    """
    distributions = np.asarray(distributions, dtype=np.float64)
    unpicked = np.ones(distributions.shape[1], dtype=bool)
    picked: list[int] = []
    for row in distributions:
        mass = np.where(unpicked, row, 0.0)
        if mass.sum() <= 0:
            mass = np.where(unpicked, distributions.sum(axis=0), 0.0)
        if mass.sum() <= 0:
            mass = unpicked.astype(np.float64)
        k = int(rng.choice(len(mass), p=mass / mass.sum()))
        unpicked[k] = False
        picked.append(k)
    return picked


def least_recently_picked(
    rng: np.random.Generator, candidates: np.ndarray, last_picked: np.ndarray, count: int
) -> list[int]:
    """The ``min(count, len(candidates))`` candidates whose ``last_picked`` round is oldest.

    ``last_picked`` is indexed by client (-1: never picked). Ties are broken by a random
    key from ``rng``, so the result is seeded but does not favour low client ids.
    """
    candidates = np.asarray(candidates)
    count = min(int(count), len(candidates))
    if count == 0:
        return []
    order = np.lexsort((rng.random(len(candidates)), last_picked[candidates]))
    return [int(k) for k in candidates[order[:count]]]
