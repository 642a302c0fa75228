"""HiCS-FL sampler: formulas on hand-made inputs and selection behaviour on fake reports."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fedsim.selection.base import ClientReport
from fedsim.results.state import capture, restore_into
from fedsim.selection.draws import draw_from_clusters
from fedsim.selection.geometry import hics_distance_matrix
from fedsim.selection.hics import (
    HiCSSampler,
    annealed_gamma,
    cluster_probabilities,
    estimate_entropy,
    ward_clusters,
)

C, L = 10, 4


# ------------------------------------------------------------------ helpers
def report(pid: int, bias: np.ndarray, num_steps: int = 10) -> ClientReport:
    """A fake training reply whose weight-row means equal the bias update."""
    return ClientReport(pid, 100, 1.0, num_steps, bias, np.repeat(bias[:, None], L, axis=1))


def skewed_population(n_one_class: int, n_balanced: int, seed: int = 0) -> np.ndarray:
    """Bias updates ~ s * (D - 1/C): one-class clients first, then near-balanced ones."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_one_class):
        d = np.eye(C)[i % C]
        rows.append(0.05 * (d - 1 / C) + rng.normal(0, 1e-4, C))
    for _ in range(n_balanced):
        d = rng.dirichlet(np.full(C, 100.0))
        rows.append(0.05 * (d - 1 / C) + rng.normal(0, 1e-4, C))
    return np.array(rows)


def make_sampler(n: int, k: int, rounds: int = 200, seed: int = 0, **kw) -> HiCSSampler:
    sampler = HiCSSampler(**kw)
    sampler.setup(np.full(n, 100), k, rounds, np.random.default_rng(seed))
    return sampler


def run_rounds(sampler, updates, rounds, available=None, start=1):
    """Select and report back for ``rounds`` rounds; returns the selections."""
    n = len(updates)
    selections = []
    for t in range(start, start + rounds):
        avail = np.arange(n) if available is None else available(t)
        chosen = sampler.select(t, avail, sampler.clients_per_round, {})
        selections.append(chosen)
        sampler.observe(t, [report(k, updates[k]) for k in chosen])
    return selections


# --------------------------------------------------------------- estimate
def test_entropy_matches_direct_computation():
    rng = np.random.default_rng(1)
    u = rng.normal(0, 0.003, size=(3, C))
    T = 0.0025
    p = np.exp(u / T) / np.exp(u / T).sum(axis=1, keepdims=True)
    direct = -(p * np.log(p)).sum(axis=1)
    np.testing.assert_allclose(estimate_entropy(u, T), direct, rtol=1e-12)
    assert estimate_entropy(u[0], T) == pytest.approx(direct[0], rel=1e-12)


def test_entropy_of_zero_update_is_ln_c_and_huge_updates_do_not_overflow():
    assert estimate_entropy(np.zeros(C), 0.001) == pytest.approx(math.log(C))
    peaked = np.eye(C)[3] * 10.0  # 10 / 0.001 would overflow exp without max-subtraction
    assert estimate_entropy(peaked, 0.001) == pytest.approx(0.0, abs=1e-12)


# --------------------------------------------------------------- distance
def test_distance_is_angle_in_radians_plus_lambda_entropy_gap():
    d = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, 0.0]])
    h = np.array([0.5, 1.0, 2.0, 0.0])
    D = hics_distance_matrix(d, h, lam=10.0)
    assert D[0, 1] == pytest.approx(math.pi / 2 + 10 * 0.5)
    assert D[0, 2] == pytest.approx(math.pi + 10 * 1.5)
    assert D[1, 2] == pytest.approx(math.pi / 2 + 10 * 1.0)
    # zero norm: orthogonal to any direction (the geometry module's zero-update rule)
    assert D[0, 3] == pytest.approx(math.pi / 2 + 10 * 0.5)
    assert D[3, 3] == 0.0
    np.testing.assert_allclose(D, D.T)
    np.testing.assert_array_equal(np.diag(D), 0.0)


def test_distance_clips_cosine_of_parallel_vectors():
    v = np.array([-1.01, -0.21, -0.16])  # its naive cosine with 3v rounds to 1 + 2e-16
    D = hics_distance_matrix(np.stack([v, 3 * v, -v]), np.array([1.0, 1.2, 1.0]), lam=10.0)
    assert np.all(np.isfinite(D))
    assert D[0, 1] == pytest.approx(10 * 0.2, abs=1e-7)
    assert D[0, 2] == pytest.approx(math.pi, abs=1e-7)


def test_ward_clusters_separates_groups_and_copes_with_many_clusters():
    points = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [5.0, 5.0], [5.1, 5.0]])
    D = hics_distance_matrix(points, np.zeros(5), lam=0.0) + np.abs(points[:, :1] - points[:, :1].T)
    labels = ward_clusters(D, 2)
    assert len(set(labels[:3])) == 1 and len(set(labels[3:])) == 1 and labels[0] != labels[3]
    np.testing.assert_array_equal(ward_clusters(D, 5), np.arange(5))
    np.testing.assert_array_equal(ward_clusters(D, 9), np.arange(5))


# -------------------------------------------------------- probabilities
def test_cluster_probabilities_are_softmax_of_gamma_times_mean_entropy():
    h = np.array([0.1, 1.0, 2.0])
    expected = np.exp(4 * h) / np.exp(4 * h).sum()
    np.testing.assert_allclose(cluster_probabilities(h, 4.0), expected)
    np.testing.assert_allclose(cluster_probabilities(h, 0.0), np.full(3, 1 / 3))


def test_annealing_at_first_and_last_round():
    assert annealed_gamma(4.0, 1, 200) == pytest.approx(4.0 * 199 / 200)
    assert annealed_gamma(4.0, 100, 200) == pytest.approx(2.0)
    assert annealed_gamma(4.0, 200, 200) == 0.0
    assert annealed_gamma(4.0, 250, 200) == 0.0


def test_draw_from_clusters_skips_exhausted_clusters_and_weights_by_size():
    rng = np.random.default_rng(0)
    labels = np.array([0, 1, 1, 1])
    # cluster 0 has almost all the mass but one client: the other picks must come from 1
    for _ in range(20):
        picked = draw_from_clusters(rng, labels, np.array([0.999, 0.001]), 3)
        assert len(set(picked)) == 3 and 0 in picked
    weights = np.array([1.0, 1000.0, 1.0, 1.0])
    counts = np.zeros(4)
    for _ in range(200):
        counts[draw_from_clusters(rng, labels, np.array([0.0, 1.0]), 1, weights)] += 1
    assert counts[1] > 180



def test_draw_from_clusters_when_the_open_clusters_probabilities_underflowed():
    # strong annealing: cluster 1 (three clients) takes all the mass, cluster 0 none; once
    # cluster 1 is exhausted the draw goes on uniformly over what is left instead of 0/0
    labels = np.array([0, 0, 0, 1])
    probs = cluster_probabilities(np.array([0.0, 2.3]), 400.0)
    assert probs[0] == 0.0
    rng = np.random.default_rng(0)
    for _ in range(20):
        picked = draw_from_clusters(rng, labels, probs, 3)
        assert len(set(picked)) == 3 and picked[0] == 3
    assert draw_from_clusters(rng, np.array([0, 0]), np.array([1.0]), 2, np.zeros(2)) in ([0, 1], [1, 0])

# ------------------------------------------------------------- selection
@pytest.mark.parametrize("order", ["random", "index"])
def test_warmup_covers_every_client_once(order):
    updates = skewed_population(10, 10)
    sampler = make_sampler(20, 5, warmup_order=order)
    selections = run_rounds(sampler, updates, 4)
    flat = [k for s in selections for k in s]
    assert sorted(flat) == list(range(20))
    if order == "index":
        assert selections == [list(range(i, i + 5)) for i in range(0, 20, 5)]
    assert sampler.diagnostics()["phase"] == "warmup"
    run_rounds(sampler, updates, 1, start=5)
    assert sampler.diagnostics()["phase"] == "cluster"


def test_warmup_with_n_not_a_multiple_of_k():
    updates = skewed_population(12, 11)
    sampler = make_sampler(23, 5)
    selections = run_rounds(sampler, updates, math.ceil(23 / 5))
    first_four = [k for s in selections[:4] for k in s]
    assert len(set(first_four)) == 20
    assert set(first_four) | set(selections[4]) == set(range(23))
    assert len(set(selections[4])) == 5


def test_selects_distinct_available_clients_never_more_than_exist():
    updates = skewed_population(15, 15)
    sampler = make_sampler(30, 6)
    rng = np.random.default_rng(5)
    for t in range(1, 40):
        avail = np.sort(rng.choice(30, size=rng.integers(1, 31), replace=False))
        chosen = sampler.select(t, avail, 6, {})
        assert len(chosen) == min(6, len(avail)) == len(set(chosen))
        assert set(chosen) <= set(avail.tolist())
        sampler.observe(t, [report(k, updates[k]) for k in chosen])
    assert sorted(sampler.select(40, np.array([3, 7]), 6, {})) == [3, 7]
    assert sampler.select(41, np.array([], dtype=int), 6, {}) == []


def test_client_joining_later_is_sampled_next_round():
    updates = skewed_population(8, 8)
    sampler = make_sampler(16, 4)
    run_rounds(sampler, updates, 6, available=lambda t: np.arange(15))
    assert sampler.diagnostics()["phase"] == "cluster"
    assert sampler.diagnostics()["entropy"][15] is None
    chosen = sampler.select(7, np.arange(16), 4, {})
    assert 15 in chosen
    assert sampler.diagnostics()["phase"] == "warmup"


def test_same_seed_same_selections():
    updates = skewed_population(10, 10)
    a = run_rounds(make_sampler(20, 5, seed=3), updates, 15)
    b = run_rounds(make_sampler(20, 5, seed=3), updates, 15)
    c = run_rounds(make_sampler(20, 5, seed=4), updates, 15)
    assert a == b
    assert a != c


def test_checkpointed_state_resumes_the_same_stream():
    updates = skewed_population(10, 10)
    full = make_sampler(20, 5, seed=8)
    expected = run_rounds(full, updates, 12)
    first = make_sampler(20, 5, seed=8)
    head = run_rounds(first, updates, 6)
    resumed = make_sampler(20, 5, seed=999)
    tree, arrays = capture(first)
    restore_into(resumed, tree, arrays)
    assert head + run_rounds(resumed, updates, 6, start=7) == expected


@pytest.mark.parametrize(
    "kw", [{}, {"estimator": "weight_rows", "distance_on": "output_layer", "within_cluster": "uniform"}]
)
def test_balanced_cluster_is_most_likely_early(kw):
    updates = skewed_population(15, 5)  # clients 15..19 are balanced
    sampler = make_sampler(20, 5, **kw)
    run_rounds(sampler, updates, 4)
    sampler.select(5, np.arange(20), 5, {})
    diag = sampler.diagnostics()
    h = np.array(diag["entropy"])
    assert h[15:].min() > h[:15].max()
    labels = np.array(diag["cluster"])
    probs = np.array(diag["cluster_probabilities"])
    balanced = set(labels[15:])
    assert int(np.argmax(probs)) in balanced
    assert min(probs[m] for m in balanced) > max(probs[m] for m in set(labels[:15]) - balanced)
    # and the draw follows: balanced clients are picked well above their 25% share
    picks = [k for s in run_rounds(sampler, updates, 30, start=6) for k in s]
    assert np.mean(np.array(picks) >= 15) > 0.4


def test_refresh_switch_and_step_normalisation():
    updates = skewed_population(5, 5)
    for refresh in (True, False):
        sampler = make_sampler(10, 5, refresh=refresh)
        run_rounds(sampler, updates, 2)
        before = sampler.entropies()[0]
        sampler.observe(3, [report(0, np.zeros(C))])
        after = sampler.entropies()[0]
        assert (after == pytest.approx(math.log(C))) if refresh else (after == before)
    plain = make_sampler(2, 1, temperature=0.01)
    scaled = make_sampler(2, 1, temperature=0.01, normalize_by_steps=True)
    plain.observe(1, [report(0, updates[0], num_steps=1)])
    scaled.observe(1, [report(0, updates[0] * 7, num_steps=7)])
    assert scaled.entropies()[0] == pytest.approx(plain.entropies()[0])


# ------------------------------------------------------ variance fallback
@pytest.fixture
def fake_fraboni(monkeypatch):
    """Stand-in for fedsim.selection.clustered.fraboni_distributions: K uniform rows."""
    calls = []

    def fraboni_distributions(distance, data_shares, num_to_select, tree_from="distances"):
        calls.append((distance.shape, data_shares.copy(), num_to_select, tree_from))
        n = len(data_shares)
        return np.full((num_to_select, n), 1.0 / n)

    monkeypatch.setattr("fedsim.selection.hics.fraboni_distributions", fraboni_distributions)
    return calls


def test_variance_fallback_switch(fake_fraboni):
    skewed = skewed_population(10, 10)
    assert np.var(estimate_entropy(skewed, 0.0025)) >= 0.1
    off = make_sampler(20, 5)
    run_rounds(off, skewed, 5)
    assert off.diagnostics()["phase"] == "cluster" and not fake_fraboni

    on = make_sampler(20, 5, variance_fallback=True)
    run_rounds(on, skewed, 4)
    chosen = on.select(5, np.arange(20), 5, {})
    assert on.diagnostics()["phase"] == "fallback"
    assert len(set(chosen)) == 5
    shape, shares, k, tree_from = fake_fraboni[-1]
    assert shape == (20, 20) and k == 5 and shares.sum() == pytest.approx(1.0) and tree_from == "distances"
    as_the_code = make_sampler(20, 5, variance_fallback=True, fallback_tree="rows")
    run_rounds(as_the_code, skewed, 5)
    assert fake_fraboni[-1][3] == "rows"

    balanced = skewed_population(0, 20)  # low variance: HiCS sampling even with the switch on
    calm = make_sampler(20, 5, variance_fallback=True)
    calls_before = len(fake_fraboni)
    run_rounds(calm, balanced, 5)
    assert calm.diagnostics()["phase"] == "cluster" and len(fake_fraboni) == calls_before


def test_fallback_tree_rows_is_ward_on_the_matrix_rows():
    """``tree_from="rows"`` reads each client's row as a point (the authors' ``linkage(matrix, "ward")``):
    the same distributions as the condensed tree of the Euclidean distances between the rows."""
    from scipy.spatial.distance import pdist, squareform

    from fedsim.selection.clustered import fraboni_distributions

    rng = np.random.default_rng(3)
    differ = 0
    for _ in range(20):
        raw = rng.random((12, 12))
        distance = raw + raw.T
        np.fill_diagonal(distance, 0.0)
        shares = rng.random(12)
        rows = fraboni_distributions(distance, shares, 4, tree_from="rows")
        np.testing.assert_allclose(
            rows, fraboni_distributions(squareform(pdist(distance)), shares, 4, tree_from="distances"))
        np.testing.assert_allclose(rows.sum(axis=0), 4 * shares / shares.sum())
        differ += not np.allclose(rows, fraboni_distributions(distance, shares, 4))
    assert differ  # the two trees do differ: the switch changes numbers
    with pytest.raises(ValueError, match="tree_from"):
        fraboni_distributions(distance, shares, 4, tree_from="columns")
    with pytest.raises(ValueError, match="fallback_tree"):
        HiCSSampler(fallback_tree="columns")
    assert "fallback_tree" in HiCSSampler.unread_params({"variance_fallback": False})
    assert "fallback_tree" not in HiCSSampler.unread_params({"variance_fallback": True})


def test_clients_after_warmup_num_clusters_trains_m_clients_once_all_reported():
    """The oldest stored version of the code trains K clients in warm-up, then M (one per cluster)."""
    population = skewed_population(10, 10)
    as_fc48 = run_rounds(make_sampler(20, 5, num_clusters=3, clients_after_warmup="num_clusters"), population, 8)
    assert [len(c) for c in as_fc48] == [5, 5, 5, 5, 3, 3, 3, 3]  # warm-up: 20 clients / 5 per round
    assert all(len(set(c)) == len(c) for c in as_fc48)
    usual = run_rounds(make_sampler(20, 5, num_clusters=3), population, 8)
    assert [len(c) for c in usual] == [5] * 8
    with pytest.raises(ValueError, match="clients_after_warmup"):
        HiCSSampler(clients_after_warmup="all")


def test_variance_fallback_with_real_clustered_sampling():
    skewed = skewed_population(10, 10)
    sampler = make_sampler(20, 5, variance_fallback=True)
    for chosen in run_rounds(sampler, skewed, 10)[4:]:
        assert len(set(chosen)) == 5
    assert sampler.diagnostics()["phase"] == "fallback"


# ------------------------------------------------------ the diverse variant
def test_positive_part_entropy_is_scale_free_and_reads_the_label_mix():
    from fedsim.selection.hics import positive_part_entropy

    one_class = np.array([0.9, -0.1, -0.3, -0.5])
    two_classes = np.array([0.4, 0.4, -0.3, -0.5])
    assert positive_part_entropy(one_class) == pytest.approx(0.0)
    assert positive_part_entropy(two_classes) == pytest.approx(math.log(2))
    assert positive_part_entropy(two_classes * 1e-4) == pytest.approx(positive_part_entropy(two_classes))
    assert positive_part_entropy(-np.abs(one_class)) == pytest.approx(math.log(4))  # no positive part: no information
    # the softmax estimate drifts with the scale instead
    assert estimate_entropy(two_classes * 1e-4, 0.0025) > estimate_entropy(two_classes, 0.0025) + 0.5


def test_relative_annealing_bounds_the_cluster_probability_ratio():
    updates = skewed_population(15, 5)
    for annealing, bounded in (("absolute", False), ("relative", True)):
        sampler = make_sampler(20, 5, gamma0=1.0 if bounded else 40.0, annealing=annealing)
        run_rounds(sampler, updates, 4)
        sampler.select(5, np.arange(20), 5, {})
        probs = np.array(sampler.diagnostics()["cluster_probabilities"])
        ratio = probs.max() / probs.min()
        if bounded:
            assert ratio <= math.exp(1.0 * (1 - 5 / 200)) + 1e-9
        else:
            assert ratio > math.exp(1.0)


def test_least_recently_picked_takes_the_oldest_and_breaks_ties_at_random():
    from fedsim.selection.draws import least_recently_picked

    last = np.array([5, -1, 3, -1, 9, 3])
    assert least_recently_picked(np.random.default_rng(0), np.arange(6), last, 2) in ([1, 3], [3, 1])
    assert sorted(least_recently_picked(np.random.default_rng(0), np.arange(6), last, 4)) == [1, 2, 3, 5]
    assert least_recently_picked(np.random.default_rng(0), np.array([0, 4]), last, 5) == [0, 4]
    ties = {tuple(least_recently_picked(np.random.default_rng(s), np.arange(6), np.zeros(6, int), 1)) for s in range(30)}
    assert len(ties) > 2  # not always the lowest id


@pytest.mark.parametrize("rate", [0.5, 1, 2])
def test_exploration_rate_trains_min_n_floor_w_r_distinct_clients_in_every_window(rate):
    # one balanced client among one-class ones, a steep annealing: without exploration the
    # draw keeps returning to the same few clients
    n, k, window = 40, 5, 12
    updates = skewed_population(35, 5)
    locked = make_sampler(n, k, gamma0=400.0)
    base = run_rounds(locked, updates, 120)[20:]
    sampler = make_sampler(n, k, gamma0=400.0, exploration_rate=rate)
    picks = run_rounds(sampler, updates, 120)[20:]
    fewest = lambda sel: min(len({c for s in sel[i:i + window] for c in s}) for i in range(len(sel) - window + 1))
    assert fewest(picks) >= min(n, math.floor(window * rate))
    assert fewest(base) < math.floor(window * rate)
    assert all(len(set(s)) == k for s in picks)
    slots = [sampler.exploration_slots(t) for t in range(1, 101)]
    assert sum(slots) == round(100 * rate) and max(slots) - min(slots) <= 1  # spread evenly


def test_exploration_rate_0_7_gives_35_picks_in_every_50_rounds():
    sampler = make_sampler(50, 5, exploration_rate=0.7)
    slots = np.array([sampler.exploration_slots(t) for t in range(1, 301)])
    assert min(slots[i:i + 50].sum() for i in range(251)) == 35


def test_exploration_rate_must_fit_in_a_round():
    with pytest.raises(ValueError, match="exploration_rate"):
        make_sampler(10, 3, exploration_rate=3.5)
    for bad in (-1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="exploration_rate"):
            HiCSSampler(exploration_rate=bad)
