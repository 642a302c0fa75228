"""HiCS-FL scalable mode: valid, reproducible selections and agreement with the exact mode."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from fedsim.selection.base import ClientReport
from fedsim.selection.geometry import hics_distance_matrix
from fedsim.selection.hics import HiCSSampler, estimate_entropy, ward_clusters
from fedsim.selection.hics_scalable import cross_distances, hics_embedding, scalable_clusters, weighted_ward

C = 10
ALPHAS = (0.001, 0.002, 0.005, 0.01, 0.2)  # the paper's FMNIST setting 2 groups


def paper_updates(n: int, seed: int) -> np.ndarray:
    """Bias updates lr * (D - 1/C) + noise, D ~ Dirichlet over five heterogeneity groups."""
    rng = np.random.default_rng(seed)
    groups = np.arange(n) * len(ALPHAS) // n
    dist = np.array([rng.dirichlet(np.full(C, ALPHAS[g])) for g in groups])
    return 0.01 * (dist - 1.0 / C) + rng.normal(0, 1e-4, (n, C))


def fed_sampler(updates: np.ndarray, k: int, seed: int, **kw) -> HiCSSampler:
    sampler = HiCSSampler(**kw)
    sampler.setup(np.full(len(updates), 100.0), k, 200, np.random.default_rng(seed))
    sampler.observe(0, [ClientReport(i, 100, 1.0, 10, u, np.outer(u, np.ones(4))) for i, u in enumerate(updates)])
    return sampler


@pytest.mark.parametrize("micro", [40, 20])  # 150 candidates: Ward micro-clusters (<= 4 m), k-means ones
def test_scalable_selection_is_valid_and_reproducible(micro):
    updates = paper_updates(300, seed=0)
    available = np.arange(0, 300, 2)  # only half the population is online
    picks = []
    for _ in range(2):
        sampler = fed_sampler(updates, k=10, seed=5, mode="scalable", micro_clusters=micro)
        rounds = [sampler.select(t, available, 10, {}) for t in (1, 2, 3)]  # round 2+ warm-starts
        picks.append(rounds)
        for chosen in rounds:
            assert len(chosen) == len(set(chosen)) == 10
            assert set(chosen) <= set(available.tolist())
        assert sampler.diagnostics()["phase"] == "cluster"
    assert picks[0] == picks[1]


def test_scalable_matches_exact_on_paper_shaped_data():
    n, m = 200, 20
    for seed in (0, 1):
        updates = paper_updates(n, seed)
        h = estimate_entropy(updates, 0.0025)
        exact = ward_clusters(hics_distance_matrix(updates, h, 10.0), m)
        emb = hics_embedding(updates, h, 10.0)
        # max_micro < N, so the approximation (micro-clusters) is really exercised.
        labels, _ = scalable_clusters(emb, m, np.random.default_rng(seed), 10.0, max_micro=120)
        assert adjusted_rand_score(exact, labels) >= 0.9
        # With at most max_micro points it reproduces the exact clustering.
        labels, _ = scalable_clusters(emb, m, np.random.default_rng(seed), 10.0, max_micro=n)
        assert adjusted_rand_score(exact, labels) == pytest.approx(1.0)


def test_ward_micro_clusters_beat_kmeans_ones():
    """N = 300, m = 150, M = 60: seeds where k-means micro-clusters (the method before the
    Ward ones; still used above 4 m clients) fall to mean ARI 0.89; Ward ones reach 0.98."""
    n, m, clusters = 300, 150, 60
    scores = {"ward": [], "kmeans": []}
    for seed in (2, 4, 5):
        updates = paper_updates(n, seed)
        h = estimate_entropy(updates, 0.0025)
        exact = ward_clusters(hics_distance_matrix(updates, h, 10.0), clusters)
        emb = hics_embedding(updates, h, 10.0)
        for name, factor in (("ward", 4.0), ("kmeans", 1.0)):
            labels, _ = scalable_clusters(emb, clusters, np.random.default_rng(seed), 10.0, max_micro=m,
                                          direct_factor=factor)
            scores[name].append(adjusted_rand_score(exact, labels))
    assert np.mean(scores["ward"]) >= 0.95 > np.mean(scores["kmeans"])


def test_cross_distances_match_the_hics_distance_with_zero_updates():
    updates = paper_updates(40, seed=3)
    updates[[0, 7]] = 0.0  # zero updates: pi/2 to the others, 0 between them
    h = estimate_entropy(updates, 0.0025)
    emb = hics_embedding(updates, h, 10.0)
    np.testing.assert_allclose(cross_distances(emb, emb), hics_distance_matrix(updates, h, 10.0), atol=1e-6)


def test_weighted_ward_with_unit_weights_is_ward():
    x = np.random.default_rng(3).normal(size=(60, 5))
    assert adjusted_rand_score(ward_clusters(x, 7), weighted_ward(x, np.ones(60), 7)) == pytest.approx(1.0)


def test_scalable_rejects_variance_fallback_and_unknown_mode():
    with pytest.raises(ValueError, match="variance_fallback"):
        HiCSSampler(mode="scalable", variance_fallback=True)
    with pytest.raises(ValueError, match="mode"):
        HiCSSampler(mode="fast")
