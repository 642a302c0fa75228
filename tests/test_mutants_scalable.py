"""Focused tests that kill single-line mutants of ``fedsim.selection.hics_scalable``.

Found with ``make mutation MUTATION_ONLY=fedsim/selection/hics_scalable.py`` (docs/mutation.md);
each test says what it pins down. Small hand-made inputs (duplicated points, points on a
line, a warm start stuck in a local optimum) make a dropped argument, a changed default or
a shifted boundary change the result. A few tests watch which internal step
``scalable_clusters`` takes (spies on its helpers): the path switch sits at N = 1000 or
4000 clients, too large to tell apart by the result in a quick test.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.cluster import AgglomerativeClustering, KMeans
from sklearn.metrics import adjusted_rand_score
from sklearn.neighbors import kneighbors_graph

import fedsim.selection.hics_scalable as hs
from fedsim.selection.hics_scalable import (
    cross_distances, hics_embedding, landmark_profiles, micro_clusters, scalable_clusters,
    ward_micro_clusters, weighted_ward,
)


# ---------------------------------------------------------------- embedding and distances
def test_embedding_entropy_column_is_computed_in_float64():
    """float32 entropies are widened before lam multiplies them (not rounded to float32)."""
    h = np.array([0.1, 0.7], dtype=np.float32)
    emb = hics_embedding(np.array([[1.0, 0.0], [0.0, 2.0]]), h, 10.0)
    np.testing.assert_array_equal(emb[:, -1], 10.0 * h.astype(np.float64))
    np.testing.assert_array_equal(emb[:, :-1], [[1.0, 0.0], [0.0, 1.0]])


def test_cross_distances_clip_antiparallel_round_off():
    """unit([1, 1, 1]) . unit([-1, -1, -1]) rounds to -1.0000000000000002: clipped to -1, angle pi."""
    v = np.array([[1.0, 1.0, 1.0]])
    points = np.hstack([v, [[0.0]]])
    centers = np.hstack([-v, [[0.0]]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cross_distances(points, centers)[0, 0] == pytest.approx(np.pi, abs=1e-12)


# ---------------------------------------------------------------- landmark profiles
def test_landmark_profiles_weight_each_column_by_sqrt_members():
    """Three copies of A and one B, two landmarks (exactly A and B): column b is sqrt(n_b) * Dist."""
    a, b = [1.0, 0.0, 0.2], [0.0, 1.0, 0.5]
    emb = np.array([a, a, a, b])
    gap = cross_distances(np.array([a]), np.array([b]))[0, 0]
    for seed in range(3):
        prof = np.sort(landmark_profiles(emb, 2, np.random.default_rng(seed)), axis=1)
        np.testing.assert_allclose(prof[:3], [[0.0, gap]] * 3, atol=1e-12)  # to B, one member
        np.testing.assert_allclose(prof[3], [0.0, np.sqrt(3.0) * gap], atol=1e-12)  # to A, three members


def test_landmark_profiles_keep_a_zero_column_for_an_empty_landmark():
    """Five landmarks on three distinct points: k-means leaves the last ones empty, and their
    columns are 0 (sqrt(0) members), not a shape error."""
    emb = np.repeat(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.5], [0.6, 0.8, 1.0]]), 4, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn: fewer distinct points than clusters
        prof = landmark_profiles(emb, 5, np.random.default_rng(0))
    assert prof.shape == (12, 5)
    assert (prof == 0).all(axis=0).sum() == 2


# ---------------------------------------------------------------- Ward micro-clusters
def test_ward_micro_clusters_with_enough_groups_is_the_identity():
    """num_micro >= N: every point is its own group, in index order (scikit-learn would
    number N singletons in another order)."""
    x = np.random.default_rng(0).normal(size=(6, 3))
    np.testing.assert_array_equal(ward_micro_clusters(x, 6), np.arange(6))
    np.testing.assert_array_equal(ward_micro_clusters(x, 9), np.arange(6))


def test_ward_micro_clusters_of_two_points_into_one():
    """N = 2: the graph has N - 1 = 1 neighbour per point (0 would be refused)."""
    np.testing.assert_array_equal(ward_micro_clusters(np.array([[0.0, 0.0], [1.0, 0.0]]), 1), [0, 0])


def test_ward_micro_clusters_is_ward_on_the_knn_graph():
    """scikit-learn's Ward restricted to the k-nearest-neighbour graph (self excluded); on this
    data the restriction matters: unrestricted Ward, or one real neighbour each, cut otherwise."""
    x = np.random.default_rng(3).normal(size=(30, 3))
    graph = kneighbors_graph(x, 2, include_self=False)
    expected = AgglomerativeClustering(n_clusters=10, linkage="ward", connectivity=graph).fit_predict(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_array_equal(ward_micro_clusters(x, 10, neighbors=2), expected)
        one = AgglomerativeClustering(n_clusters=10, connectivity=kneighbors_graph(x, 1)).fit_predict(x)
    assert adjusted_rand_score(AgglomerativeClustering(n_clusters=10).fit_predict(x), expected) < 1.0
    assert adjusted_rand_score(one, expected) < 1.0


def test_ward_micro_clusters_default_is_ten_neighbours():
    """The default graph width is 10 (scalable_clusters' default); 11 cuts this data otherwise."""
    x = np.random.default_rng(139).normal(size=(60, 3))
    default = ward_micro_clusters(x, 20)
    np.testing.assert_array_equal(default, ward_micro_clusters(x, 20, neighbors=10))
    assert not np.array_equal(default, ward_micro_clusters(x, 20, neighbors=11))


def test_ward_micro_clusters_mute_the_disconnected_graph_warning():
    """Two far pairs and one neighbour each: two graph components; scikit-learn completes the
    graph with a warning that is muted here."""
    x = np.array([[0.0], [0.1], [10.0], [10.1]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(ward_micro_clusters(x, 1, neighbors=1), [0, 0, 0, 0])


# ---------------------------------------------------------------- k-means micro-clusters
STUCK = np.array([[1.0, 0.0, p] for p in (0.0, 0.1, 10.0, 10.1, 20.0, 20.1)])  # three pairs on a line
STUCK_INIT = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.1], [1.0, 0.0, 15.0]])  # two centres on one pair


def test_micro_clusters_warm_start_from_init():
    """A usable init (m rows, D + 1 columns) is where Lloyd starts: here it stays in the local
    optimum {0}, {0.1}, {the other four} (k-means++ finds the three pairs instead)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "explicit initial center ... n_init" warning either
        labels, centroids = micro_clusters(STUCK, 3, np.random.default_rng(0), init=STUCK_INIT)
    np.testing.assert_array_equal(labels, [0, 1, 2, 2, 2, 2])
    np.testing.assert_allclose(centroids, [[1.0, 0.0, 0.0], [1.0, 0.0, 0.1], [1.0, 0.0, 15.05]])
    cold, _ = micro_clusters(STUCK, 3, np.random.default_rng(0))
    assert adjusted_rand_score(cold, [0, 0, 1, 1, 2, 2]) == 1.0


def test_micro_clusters_ignore_an_init_of_the_wrong_shape():
    for bad in (STUCK_INIT[:2], STUCK_INIT[:, :2]):
        labels, centroids = micro_clusters(STUCK, 3, np.random.default_rng(4), init=bad)
        cold_labels, cold_centroids = micro_clusters(STUCK, 3, np.random.default_rng(4))
        np.testing.assert_array_equal(labels, cold_labels)
        np.testing.assert_array_equal(centroids, cold_centroids)


def test_micro_clusters_stop_after_twenty_lloyd_passes_by_default():
    """160 points t^2 on a line, 12 centres started on the first 12 points: Lloyd needs about 80
    passes, so the centroids after 20 (the default) differ from those after 21."""
    t = np.linspace(0.0, 1.0, 160) ** 2
    x = np.column_stack([t, np.zeros_like(t)])
    init = x[:12]
    _, default = micro_clusters(x, 12, np.random.default_rng(0), init=init)
    _, twenty = micro_clusters(x, 12, np.random.default_rng(0), init=init, max_iter=20)
    _, more = micro_clusters(x, 12, np.random.default_rng(0), init=init, max_iter=21)
    np.testing.assert_array_equal(default, twenty)
    assert not np.allclose(default, more)


def test_micro_clusters_draw_one_kmeans_seed_from_the_stream():
    """One k-means++ run whose random state is rng.integers(2**31 - 1): the sampler's stream
    fixes the result (recorded runs depend on it) and advances by that one draw."""
    x = np.random.default_rng(7).normal(size=(40, 3))
    for seed in range(5):
        rng = np.random.default_rng(seed)
        labels, centroids = micro_clusters(x, 6, rng)
        ref_rng = np.random.default_rng(seed)
        ref = KMeans(n_clusters=6, init="k-means++", n_init=1, max_iter=20,
                     random_state=int(ref_rng.integers(2**31 - 1))).fit(x)
        np.testing.assert_array_equal(labels, ref.labels_)
        np.testing.assert_array_equal(centroids, ref.cluster_centers_)
        assert rng.integers(1000) == ref_rng.integers(1000)


# ---------------------------------------------------------------- weighted Ward
def test_weighted_ward_into_one_cluster_and_without_warnings():
    """M = 1 needs all m - 1 merges; building the tree raises no floating-point warning."""
    x = np.random.default_rng(2).normal(size=(7, 3))
    w = np.array([1.0, 3.0, 2.0, 1.0, 5.0, 1.0, 2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(weighted_ward(x, w, 1), np.zeros(7))
        assert len(set(weighted_ward(x, w, 3).tolist())) == 3


def test_weighted_ward_label_numbering():
    """Labels follow the clusters' representatives (the point that holds a merged pair is the
    chain's top: 2 for {0, 2}); the HiCS draw visits clusters in label order, so a renumbering
    changes a seeded run's picks."""
    np.testing.assert_array_equal(weighted_ward(np.array([[0.0], [10.0], [1.0]]), np.ones(3), 2), [1, 0, 1])


def test_weighted_ward_tie_goes_to_the_chain_predecessor():
    """Point 3 (weight 2) is equally far from points 1 and 2; the nearest-neighbour chain came
    from 2, and the standard chain rule keeps the predecessor on a tie: 3 joins 2."""
    x = np.array([[2.0, 0.0], [0.0, 2.0], [0.0, 0.0], [0.0, 1.0]])
    np.testing.assert_array_equal(weighted_ward(x, np.array([1.0, 1.0, 1.0, 2.0]), 3), [0, 1, 2, 2])


# ---------------------------------------------------------------- scalable_clusters
def _line_embedding(n: int) -> np.ndarray:
    return np.column_stack([np.ones(n), np.zeros(n), np.arange(n, dtype=np.float64)])


def test_scalable_clusters_with_as_many_clusters_as_clients():
    """num_clusters >= N: each client its own cluster, even when max_micro < N."""
    emb = hics_embedding(np.random.default_rng(1).normal(size=(10, 3)), np.zeros(10), 1.0)
    for m in (10, 12):
        labels, centroids = scalable_clusters(emb, m, np.random.default_rng(0), 1.0, max_micro=5)
        np.testing.assert_array_equal(labels, np.arange(10))
        np.testing.assert_array_equal(centroids, emb)


def test_scalable_clusters_at_max_micro_clients_leave_the_stream_alone():
    """N == max_micro: every client is its own micro-cluster, no landmark k-means runs (it would
    draw a seed from the sampler's stream), and the result is the exact clustering."""
    emb = hics_embedding(np.random.default_rng(5).normal(size=(12, 3)), np.linspace(0.0, 1.0, 12), 2.0)
    rng = np.random.default_rng(0)
    labels, _ = scalable_clusters(emb, 3, rng, 2.0, max_micro=12, num_landmarks=2)
    assert rng.integers(2**31 - 1) == np.random.default_rng(0).integers(2**31 - 1)
    exact = weighted_ward(cross_distances(emb, emb), np.ones(12), 3)
    assert adjusted_rand_score(labels, exact) == 1.0


def test_scalable_clusters_pass_the_warm_start_to_kmeans():
    labels, centroids = scalable_clusters(STUCK, 3, np.random.default_rng(0), 1.0, init=STUCK_INIT,
                                          max_micro=3, direct_factor=1.0)
    np.testing.assert_allclose(centroids, [[1.0, 0.0, 0.0], [1.0, 0.0, 0.1], [1.0, 0.0, 15.05]])
    np.testing.assert_array_equal(labels, [0, 1, 2, 2, 2, 2])


def test_scalable_clusters_skip_empty_kmeans_micro_clusters():
    """Three distinct embeddings, four clients each, five k-means micro-clusters (two stay
    empty): Ward on the three used ones joins the two closest (B, C), as the exact mode does."""
    emb = np.repeat(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.5], [0.6, 0.8, 1.0]]), 4, axis=0)
    for seed in range(3):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=Warning)  # fewer distinct points than clusters
            labels, _ = scalable_clusters(emb, 2, np.random.default_rng(seed), 1.0, max_micro=5,
                                          direct_factor=1.0)
        assert adjusted_rand_score(labels, [0] * 4 + [1] * 8) == 1.0, labels


def test_scalable_clusters_with_lam_zero_on_the_kmeans_path():
    """lam = 0: the entropy column is 0 and is not divided by lam (0 / 0); two direction groups."""
    dirs = np.array([[1.0, 0.0], [0.9, 0.1], [0.8, 0.2], [0.0, 1.0], [0.1, 0.9], [0.2, 0.8]] * 2)
    emb = hics_embedding(dirs, np.zeros(12), 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        labels, _ = scalable_clusters(emb, 2, np.random.default_rng(0), 0.0, max_micro=4, direct_factor=1.0)
    assert adjusted_rand_score(labels, [0, 0, 0, 1, 1, 1] * 2) == 1.0


class _Spy:
    """Stand-ins for the micro-cluster steps that record their arguments (two groups: even, odd)."""

    def __init__(self):
        self.calls: list[tuple] = []

    def landmark_profiles(self, embedding, num_landmarks, rng):
        self.calls.append(("landmarks", num_landmarks))
        return np.zeros((len(embedding), 1))

    def ward_micro_clusters(self, profiles, num_micro, neighbors=None):
        self.calls.append(("ward", num_micro, neighbors))
        return np.arange(len(profiles)) % 2

    def micro_clusters(self, embedding, num_micro, rng, init=None, max_iter=None):
        self.calls.append(("kmeans", num_micro))
        return np.arange(len(embedding)) % 2, np.array([embedding[0], embedding[1]])


@pytest.fixture
def spy(monkeypatch):
    s = _Spy()
    for name in ("landmark_profiles", "ward_micro_clusters", "micro_clusters"):
        monkeypatch.setattr(hs, name, getattr(s, name))
    return s


@pytest.mark.parametrize("n, calls", [
    (501, [("landmarks", 500), ("ward", 500, 10)]),  # defaults: max_micro DEFAULT_MICRO_CLUSTERS = 500, 10 neighbours
    (2000, [("landmarks", 500), ("ward", 500, 10)]),  # up to direct_factor 4 * max_micro: Ward
    (2001, [("kmeans", 500)]),  # above: k-means
])
def test_scalable_clusters_choose_the_micro_cluster_step_by_size(spy, n, calls):
    labels, _ = scalable_clusters(_line_embedding(n), 2, np.random.default_rng(0), 1.0)
    assert spy.calls == calls
    assert adjusted_rand_score(labels, np.arange(n) % 2) == 1.0


def test_scalable_clusters_pass_neighbours_and_landmarks_on(spy):
    scalable_clusters(_line_embedding(12), 2, np.random.default_rng(0), 1.0, max_micro=4,
                      num_landmarks=3, neighbors=2)
    assert spy.calls == [("landmarks", 3), ("ward", 4, 2)]
