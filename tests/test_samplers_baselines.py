"""Unit tests of the baseline samplers (pow-d, clustered sampling, DivFL, FedCor) on hand-made states."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import check_grad

from fedsim.selection.base import ClientReport, ProbeReport, Sampler
from fedsim.selection.clustered import ClusteredSampler, fraboni_distributions
from fedsim.selection.divfl import DivFLSampler, facility_location_cost, facility_location_greedy
from fedsim.selection.geometry import angles_between, angles_from_gram, pairwise_distances
from fedsim.selection.fedcor import FedCorSampler, condition_on, fedcor_greedy, gp_objective
from fedsim.selection.powd import PowerOfChoiceSampler

N, K, DIM = 20, 4, 6


def _sizes(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(20, 200, size=N).astype(float)


# ---------------------------------------------------------------------- a fake federation
class FakeFederation:
    """Deterministic fake probes and reports (depend only on round and client id)."""

    def __init__(self, seed: int = 123) -> None:
        rng = np.random.default_rng(seed)
        self.directions = rng.normal(size=(N, DIM))
        self.loss_base = rng.uniform(0.5, 3.0, size=N)

    def loss(self, server_round: int, pid: int) -> float:
        return float(self.loss_base[pid] * np.exp(-0.02 * server_round) + 0.01 * np.sin(pid * server_round))

    def vector(self, server_round: int, pid: int) -> np.ndarray:
        return self.directions[pid] * (1.0 + 0.1 * np.cos(server_round + pid))

    def probes(self, sampler: Sampler, server_round: int, ids: list[int], fail: set[int] = frozenset()) -> dict:
        want_grad = sampler.needs.probe_gradients
        return {
            p: ProbeReport(p, self.loss(server_round, p), 50, self.vector(server_round, p) if want_grad else None)
            for p in ids
            if p not in fail
        }

    def reports(self, sampler: Sampler, server_round: int, ids: list[int]) -> list[ClientReport]:
        full = sampler.needs.full_updates
        return [
            ClientReport(p, 50, self.loss(server_round, p), 5, np.zeros(3), np.zeros((3, 2)),
                         self.vector(server_round, p) if full else None)
            for p in ids
        ]


def run_rounds(sampler: Sampler, seed: int, rounds: int, availability: str = "all") -> list[list[int]]:
    """Drive a sampler through ``rounds`` rounds; check every selection on the way."""
    fed = FakeFederation()
    sampler.setup(_sizes(), K, rounds, np.random.default_rng(seed))
    avail_rng = np.random.default_rng(999)  # availability does not depend on the sampler's seed
    history = []
    for r in range(1, rounds + 1):
        if availability == "all":
            available = np.arange(N)
        else:
            available = np.sort(avail_rng.choice(N, size=int(avail_rng.integers(K + 2, N)), replace=False))
        candidates = sampler.probe_candidates(r, available)
        assert set(candidates) <= set(available.tolist()), "probed an unavailable client"
        selected = sampler.select(r, available, K, fed.probes(sampler, r, candidates))
        assert all(isinstance(s, int) for s in selected)
        assert set(selected) <= set(available.tolist()), "selected an unavailable client"
        assert len(selected) == len(set(selected)), "duplicate ids"
        assert 0 < len(selected) <= K
        sampler.observe(r, fed.reports(sampler, r, selected))
        history.append(selected)
    return history


SAMPLER_FACTORIES = {
    "powd": lambda: PowerOfChoiceSampler(),
    "powd_2k": lambda: PowerOfChoiceSampler(d_factor=2),
    "clustered": lambda: ClusteredSampler(),
    "divfl_ideal": lambda: DivFLSampler("ideal", stochastic=False),
    "divfl_ideal_stochastic": lambda: DivFLSampler("ideal", stochastic=True, subset_fraction=0.3),
    "divfl_stale": lambda: DivFLSampler("stale", stochastic=True),
    "fedcor": lambda: FedCorSampler(warmup_rounds=4, refit_every=3, embedding_dim=3, fit_iterations=20),
    "fedcor_marginal": lambda: FedCorSampler(
        warmup_rounds=4, refit_every=3, embedding_dim=3, fit_iterations=20, objective="marginal"
    ),
}

# Exact greedy on fresh gradients has no randomness (the rng only breaks exact ties).
DETERMINISTIC = {"divfl_ideal"}


@pytest.mark.parametrize("name", sorted(SAMPLER_FACTORIES))
def test_reproducible_under_seed(name: str) -> None:
    first = run_rounds(SAMPLER_FACTORIES[name](), seed=7, rounds=12)
    again = run_rounds(SAMPLER_FACTORIES[name](), seed=7, rounds=12)
    assert first == again
    if name not in DETERMINISTIC:
        other = run_rounds(SAMPLER_FACTORIES[name](), seed=8, rounds=12)
        assert other != first, "the seed has no effect"


@pytest.mark.parametrize("name", sorted(SAMPLER_FACTORIES))
def test_only_available_ids(name: str) -> None:
    run_rounds(SAMPLER_FACTORIES[name](), seed=3, rounds=12, availability="random")


# ---------------------------------------------------------------------- pow-d
def test_powd_keeps_highest_loss_candidates() -> None:
    sampler = PowerOfChoiceSampler(d=8)
    sampler.setup(_sizes(), K, 10, np.random.default_rng(0))
    available = np.arange(N)
    candidates = sampler.probe_candidates(2, available)
    assert len(candidates) == 8 and len(set(candidates)) == 8
    losses = {p: float((p * 7) % 11) + 0.1 * p for p in candidates}  # distinct losses
    probes = {p: ProbeReport(p, losses[p], 10) for p in candidates}
    selected = sampler.select(2, available, K, probes)
    expected = sorted(candidates, key=lambda p: -losses[p])[:K]
    assert sorted(selected) == sorted(expected)


def test_powd_failed_probes_are_not_candidates_and_round1_random() -> None:
    sampler = PowerOfChoiceSampler()
    sampler.setup(_sizes(), K, 10, np.random.default_rng(0))
    available = np.arange(N)
    assert sampler.probe_candidates(1, available) == []
    assert len(sampler.select(1, available, K, {})) == K
    candidates = sampler.probe_candidates(2, available)
    assert sorted(candidates) == list(range(N))  # d = N
    losses = {p: float(p) for p in candidates}
    failed = {N - 1, N - 2}  # the two highest losses never answered
    probes = {p: ProbeReport(p, losses[p], 10) for p in candidates if p not in failed}
    assert sorted(sampler.select(2, available, K, probes)) == [N - 6, N - 5, N - 4, N - 3]


def test_powd_2k_probes_2k_candidates() -> None:
    sampler = PowerOfChoiceSampler(d_factor=2)
    sampler.setup(_sizes(), K, 10, np.random.default_rng(0))
    assert len(set(sampler.probe_candidates(3, np.arange(N)))) == 2 * K


# ---------------------------------------------------------------------- clustered sampling
@pytest.mark.parametrize("seed", range(5))
def test_fraboni_distributions_sum_to_one_and_keep_expected_weight(seed: int) -> None:
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(N, 3))
    distance = np.linalg.norm(points[:, None] - points[None], axis=-1)
    shares = rng.dirichlet(np.full(N, 0.5 if seed % 2 else 5.0))  # some p_k > 1/K when seed is odd
    r = fraboni_distributions(distance, shares, K)
    assert r.shape == (K, N)
    assert (r >= -1e-12).all()
    np.testing.assert_allclose(r.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(r.sum(axis=0), K * shares, atol=1e-9)


def test_fraboni_distributions_separate_clusters() -> None:
    # Two tight, far-apart groups of equal total weight, K = 2: each group is one distribution.
    points = np.concatenate([np.zeros((5, 2)), np.full((5, 2), 10.0)]) + np.arange(10)[:, None] * 1e-3
    distance = np.linalg.norm(points[:, None] - points[None], axis=-1)
    r = fraboni_distributions(distance, np.full(10, 0.1), 2)
    support = sorted(tuple(np.flatnonzero(row > 1e-12)) for row in r)
    assert support == [(0, 1, 2, 3, 4), (5, 6, 7, 8, 9)]


def test_update_angles() -> None:
    g = np.array([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0], [0.0, 0.0], [0.0, 0.0], [2.0, 2.0]])
    for angles in (angles_from_gram(g @ g.T), angles_between(g)):
        np.testing.assert_allclose(angles[0, 1], np.pi / 2)
        np.testing.assert_allclose(angles[0, 2], np.pi)
        np.testing.assert_allclose(angles[3, 4], 0.0)  # two never-seen clients: identical
        np.testing.assert_allclose(angles[0, 3], np.pi / 2)  # zero vs non-zero: orthogonal
        np.testing.assert_allclose(angles[1, 5], np.pi / 4)  # norms 2 and 2.83: both divided out
        np.testing.assert_allclose(angles[2, 5], 3 * np.pi / 4)
        np.testing.assert_allclose(np.diag(angles), 0.0)


# ---------------------------------------------------------------------- DivFL
@pytest.mark.parametrize("stochastic", [False, True])
def test_divfl_greedy_cost_never_increases_and_distinct(stochastic: bool) -> None:
    rng = np.random.default_rng(1)
    features = np.concatenate([rng.normal(c, 0.3, size=(6, 4)) for c in (-5.0, 0.0, 5.0)])
    distances = pairwise_distances(features)
    chosen = facility_location_greedy(
        features, 5, rng=np.random.default_rng(2) if stochastic else None, subset_size=4 if stochastic else None
    )
    assert len(chosen) == 5 and len(set(chosen)) == 5
    costs = [facility_location_cost(distances, chosen[: i + 1]) for i in range(len(chosen))]
    assert all(b <= a + 1e-12 for a, b in zip(costs, costs[1:]))
    if not stochastic:
        # the first pick is the 1-medoid, and three picks cover the three groups
        assert chosen[0] == int(np.argmin(distances.sum(axis=0)))
        assert {c // 6 for c in chosen[:3]} == {0, 1, 2}


def test_divfl_greedy_each_step_is_the_best_addition() -> None:
    rng = np.random.default_rng(4)
    features = rng.normal(size=(12, 3))
    distances = pairwise_distances(features)
    chosen = facility_location_greedy(features, 4)
    for i in range(1, 4):
        best = min(facility_location_cost(distances, chosen[:i] + [j]) for j in range(12) if j not in chosen[:i])
        assert facility_location_cost(distances, chosen[: i + 1]) == pytest.approx(best)


def test_divfl_stale_uses_observed_updates() -> None:
    sampler = DivFLSampler("stale", stochastic=False)
    sampler.setup(np.ones(6), 2, 5, np.random.default_rng(0))
    ups = [np.array([1.0, 0.0]), np.array([1.1, 0.0]), np.array([0.0, 1.0]),
           np.array([0.0, 1.1]), np.array([1.0, 0.05]), np.array([0.05, 1.0])]
    sampler.observe(1, [ClientReport(i, 1, 0.0, 1, np.zeros(1), np.zeros((1, 1)), ups[i]) for i in range(6)])
    selected = sampler.select(2, np.arange(6), 2, {})
    assert {s in (0, 1, 4) for s in selected} == {True, False}  # one from each direction


# ---------------------------------------------------------------------- FedCor
def _random_cov(n: int, rank: int, seed: int) -> np.ndarray:
    e = np.random.default_rng(seed).normal(size=(n, rank))
    return e @ e.T + 0.01 * np.eye(n)


@pytest.mark.parametrize("seed", range(3))
def test_fedcor_conditioning_keeps_psd(seed: int) -> None:
    sigma = _random_cov(N, 5, seed)
    weights = np.random.default_rng(seed).dirichlet(np.ones(N))
    chosen, final = fedcor_greedy(sigma, weights, np.ones(N), K)
    assert len(chosen) == K and len(set(chosen)) == K
    current = sigma
    for k in chosen:
        current = condition_on(current, k)
        np.testing.assert_allclose(current, current.T)
        assert np.linalg.eigvalsh(current).min() > -1e-9
        assert current[k, k] == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(final, current, atol=1e-12)


def test_fedcor_greedy_first_pick_and_discount() -> None:
    sigma = _random_cov(8, 3, 0)
    weights = np.full(8, 1 / 8)
    scores = (weights @ sigma) / np.sqrt(np.diag(sigma))
    chosen, _ = fedcor_greedy(sigma, weights, np.ones(8), 1)
    assert chosen == [int(np.argmax(scores))]
    beta = np.ones(8)
    beta[chosen[0]] = 1e-6  # a heavily discounted client is not picked first
    chosen2, _ = fedcor_greedy(sigma, weights, beta, 1)
    assert chosen2[0] != chosen[0]
    only, _ = fedcor_greedy(sigma, weights, np.ones(8), 3, candidates=np.array([1, 5, 6]))
    assert sorted(only) == [1, 5, 6]


@pytest.mark.parametrize("objective", ["loo", "marginal"])
def test_fedcor_gp_gradient(objective: str) -> None:
    rng = np.random.default_rng(0)
    n, dim = 7, 2
    groups = [(np.arange(n), rng.normal(size=(n, 4))), (np.array([0, 2, 5]), rng.normal(size=(3, 2)))]
    x = np.concatenate([rng.normal(size=n * dim) * 0.5, [np.log(0.2)]])
    err = check_grad(lambda v: gp_objective(v, groups, n, dim, objective)[0],
                     lambda v: gp_objective(v, groups, n, dim, objective)[1], x)
    assert err < 1e-4 * max(1.0, np.linalg.norm(gp_objective(x, groups, n, dim, objective)[1]))


def test_fedcor_schedule() -> None:
    sampler = FedCorSampler(warmup_rounds=4, refit_every=3, embedding_dim=2, fit_iterations=10)
    sampler.setup(np.ones(N), K, 20, np.random.default_rng(0))
    random_rounds = [r for r in range(1, 15) if sampler.is_random_round(r)]
    probe_rounds = [r for r in range(1, 15) if sampler.is_probe_round(r)]
    assert random_rounds == [1, 2, 3, 4, 7, 10, 13]
    assert probe_rounds == [1, 2, 3, 4, 5, 7, 8, 10, 11, 13, 14]
    history = run_rounds(sampler, seed=0, rounds=6)
    assert sampler.sigma is not None and sampler.sigma.shape == (N, N)
    assert len(sampler.history) == 4  # loss changes of warm-up rounds 1..4
    assert len(history) == 6


def test_fedcor_does_not_fit_a_covariance_to_a_single_loss_change():
    # warm-up of 2 rounds: the first fit would see one loss-change vector, all zero once centred
    from fedsim.selection.base import ProbeReport
    from fedsim.selection.fedcor import FedCorSampler

    sampler = FedCorSampler(warmup_rounds=2, refit_every=3, embedding_dim=2)
    sampler.setup(np.full(4, 10.0), 2, 20, np.random.default_rng(0))
    for t, losses in ((1, [2.0, 2.1, 1.9, 2.2]), (2, [1.5, 2.0, 1.2, 2.1]), (4, [1.4, 1.9, 1.1, 2.0])):
        sampler.learn_from_probes(t, {k: ProbeReport(k, v, 10) for k, v in enumerate(losses)})
    assert sampler.sigma is None  # nothing learned: the next rounds stay random
    assert len(set(sampler.select(4, np.arange(4), 2, {}))) == 2


def test_fedcor_objective_backs_off_from_a_singular_covariance():
    from fedsim.selection.fedcor import gp_objective

    params = np.concatenate([np.ones(4 * 2), [-800.0]])  # identical embeddings, zero noise: K singular
    value, grad = gp_objective(params, [(np.arange(4), np.ones((4, 1)))], 4, 2)
    assert value == np.inf and not grad.any()


def test_sign_flip_p_is_nan_when_a_difference_is_missing():
    from fedsim.compare.stats import sign_flip_p

    assert np.isnan(sign_flip_p([0.1, np.nan, 0.2])) and np.isnan(sign_flip_p([]))
    assert sign_flip_p([0.1, 0.2, 0.3]) == 0.25


def test_clustered_sampling_tree_from_rows_is_the_codes_tree(monkeypatch) -> None:
    """``tree_from`` reaches fraboni_distributions (the code's linkage on the square matrix: "rows")."""
    seen = []
    real = fraboni_distributions

    def spy(distance, shares, count, tree_from="distances"):
        seen.append(tree_from)
        return real(distance, shares, count, tree_from=tree_from)

    monkeypatch.setattr("fedsim.selection.clustered.fraboni_distributions", spy)
    run_rounds(ClusteredSampler(tree_from="rows"), seed=7, rounds=3)
    run_rounds(ClusteredSampler(), seed=7, rounds=3)
    assert seen and set(seen[: len(seen) // 2]) == {"rows"} and set(seen[len(seen) // 2:]) == {"distances"}
    with pytest.raises(ValueError, match="tree_from"):
        ClusteredSampler(tree_from="columns")
