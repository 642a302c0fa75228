"""Focused tests that kill single-line mutants of core logic the rest of the suite let live.

Each test names the mutant(s) it kills. They go through public behaviour (sampler classes'
``setup`` / ``observe`` / ``probe_candidates`` / ``select``, ``average_arrays``,
``SamplingFedAvg.aggregate_train``, ``fraboni_distributions``) with unequal client sizes
and vectors of norm != 1, so a probability, weight or norm that is silently dropped,
squared or swapped changes the observed result. Random behaviour is checked by empirical
frequencies over many seeded draws, with bounds many standard deviations wide.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, MetricRecord, RecordDict

from fedsim.selection.base import ClientReport
from fedsim.selection.clustered import ClusteredSampler, fraboni_distributions
from fedsim.selection.hics import HiCSSampler
from fedsim.selection.powd import PowerOfChoiceSampler
from fedsim.server.aggregation import average_arrays

try:  # the helpers move between modules during the selection refactor
    from fedsim.selection.geometry import angles_from_gram as update_angles
except ImportError:  # pragma: no cover - older layout
    try:
        from fedsim.selection.geometry import update_angles
    except ImportError:
        try:
            from fedsim.selection.clustered import update_angles
        except ImportError:
            from fedsim.selection.hics import update_angles

try:
    from fedsim.selection.draws import draw_from_clusters
except ImportError:  # pragma: no cover - older layout
    from fedsim.selection.hics import draw_from_clusters

try:
    from fedsim.selection.geometry import hics_distance_matrix
except ImportError:  # pragma: no cover - older layout
    from fedsim.selection.hics import hics_distance_matrix


def _report(pid: int, bias, model_update=None, num_examples: int = 10) -> ClientReport:
    bias = np.asarray(bias, dtype=np.float64)
    return ClientReport(
        partition_id=pid,
        num_examples=num_examples,
        train_loss=1.0,
        num_steps=1,
        bias_update=bias,
        weight_update=np.tile(bias[:, None], (1, 2)),
        model_update=None if model_update is None else np.asarray(model_update, dtype=np.float64),
    )


def _frequencies(picks: list[int], n: int) -> np.ndarray:
    return np.bincount(np.asarray(picks), minlength=n) / len(picks)


# ---------------------------------------------------------------- (a) HiCS within-cluster draw
SIZES = np.array([10.0, 10.0, 10.0, 70.0])  # client 3 holds 70% of the data


def _hics_single_cluster_freqs(within_cluster: str, draws: int = 600) -> np.ndarray:
    """All four clients reported, one cluster, one client per round: who is drawn how often."""
    sampler = HiCSSampler(within_cluster=within_cluster, num_clusters=1, warmup_order="index")
    sampler.setup(SIZES, clients_per_round=1, num_rounds=100, rng=np.random.default_rng(0))
    biases = [[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.0, 1.0, 0.2], [0.3, 0.3, 0.3]]
    sampler.observe(1, [_report(k, b) for k, b in enumerate(biases)])
    picks = []
    for _ in range(draws):
        chosen = sampler.select(5, np.arange(4), 1, {})
        assert len(chosen) == 1
        picks.append(chosen[0])
    return _frequencies(picks, 4)


def test_hics_within_cluster_data_size_draws_by_data_share():
    """Kills: within_cluster="data_size" drawing uniformly inside the cluster."""
    freqs = _hics_single_cluster_freqs("data_size")
    assert 0.6 < freqs[3] < 0.8, freqs  # p_3 = 0.7; uniform would give 0.25
    assert np.all(freqs[:3] > 0.03), freqs


def test_hics_within_cluster_uniform_ignores_data_size():
    """Kills the reverse swap: within_cluster="uniform" drawing by data size."""
    freqs = _hics_single_cluster_freqs("uniform")
    assert np.all(np.abs(freqs - 0.25) < 0.08), freqs  # by data size client 3 would get 0.7


def test_draw_from_clusters_weights_inside_a_cluster():
    """Kills weights dropped / forced in the shared cluster draw itself."""
    labels = np.array([0, 0, 1, 1])
    probs = np.array([0.5, 0.5])
    rng = np.random.default_rng(1)
    weighted = [draw_from_clusters(rng, labels, probs, 1, np.array([1.0, 3.0, 1.0, 1.0]))[0] for _ in range(4000)]
    plain = [draw_from_clusters(rng, labels, probs, 1, None)[0] for _ in range(4000)]
    f_w, f_u = _frequencies(weighted, 4), _frequencies(plain, 4)
    assert abs(f_w[1] - 0.375) < 0.03 and abs(f_w[0] - 0.125) < 0.03, f_w
    assert np.all(np.abs(f_u - 0.25) < 0.03), f_u


# ---------------------------------------------------------------- (b) HiCS warm-up order
def _first_round(order: str, seed: int) -> list[int]:
    sampler = HiCSSampler(warmup_order=order)
    sampler.setup(np.full(20, 5.0), clients_per_round=5, num_rounds=10, rng=np.random.default_rng(seed))
    return sampler.select(1, np.arange(20), 5, {})


def test_hics_random_warmup_order_is_random():
    """Kills: warmup_order="random" ignored (always index order)."""
    rounds = [_first_round("random", seed) for seed in range(20)]
    assert all(len(set(r)) == 5 for r in rounds)
    assert sum(sorted(r) == [0, 1, 2, 3, 4] for r in rounds) <= 1  # P = 1/15504 per seed
    assert len(set().union(*map(set, rounds))) >= 15  # late indices are drawn in round 1 too


def test_hics_index_warmup_order_is_index_order():
    """Kills the reverse: warmup_order="index" drawing at random."""
    sampler = HiCSSampler(warmup_order="index")
    sampler.setup(np.full(20, 5.0), clients_per_round=5, num_rounds=10, rng=np.random.default_rng(3))
    assert sampler.select(1, np.arange(20), 5, {}) == [0, 1, 2, 3, 4]


# ---------------------------------------------------------------- (c) weighted aggregation
def _record(value: float) -> ArrayRecord:
    return ArrayRecord({"w": Array(np.full((2, 2), value, dtype=np.float32)), "n": Array(np.array([int(value * 4)]))})


def test_average_arrays_weights_are_linear():
    """Kills: weighted mean turned into a plain mean, or its weights squared."""
    out = average_arrays([_record(0.0), _record(1.0)], weights=[1, 3])
    np.testing.assert_allclose(out["w"].numpy(), 0.75)  # plain mean 0.5, squared 0.9
    assert out["w"].numpy().dtype == np.float32
    three = average_arrays([_record(0.0), _record(1.0), _record(2.0)], weights=[2, 1, 1])
    np.testing.assert_allclose(three["w"].numpy(), 0.75)  # (0*2 + 1 + 2) / 4; plain 1.0, squared 0.5
    plain = average_arrays([_record(0.0), _record(1.0), _record(2.0)])
    np.testing.assert_allclose(plain["w"].numpy(), 1.0)
    assert average_arrays([_record(0.0), _record(1.0)], weights=[1, 3])["n"].numpy().dtype == np.array([1]).dtype


def test_average_arrays_edge_cases():
    """One record is returned as is (integer dtype kept); none is a clear error."""
    single = average_arrays([_record(2.0)], weights=[5])
    np.testing.assert_allclose(single["w"].numpy(), 2.0)
    assert single["n"].numpy().tolist() == [8]
    with pytest.raises(ValueError, match="^average_arrays needs at least one record$"):
        average_arrays([])


def _strategy_aggregate(weighted: bool) -> float:
    from fedsim.models.networks import output_layer_names
    from fedsim.selection.random import RandomSampler
    from fedsim.server.strategy import RoundLog, SamplingFedAvg

    weight_key, bias_key = output_layer_names()
    strategy = SamplingFedAvg(RandomSampler(), clients_per_round=2, weighted_aggregation=weighted, client_sizes=[10, 30])
    strategy.partition_of = {101: 0, 102: 1}
    strategy.node_of = {0: 101, 1: 102}
    strategy._global = {weight_key: np.zeros((3, 2), np.float32), bias_key: np.zeros(3, np.float32)}
    strategy.last_round = RoundLog(server_round=1, selected=[0, 1])

    def reply(node: int, value: float, examples: int):
        content = RecordDict(
            {
                "arrays": ArrayRecord(
                    {weight_key: Array(np.full((3, 2), value, np.float32)), bias_key: Array(np.full(3, value, np.float32))}
                ),
                "output_update": ArrayRecord(
                    {"weight": Array(np.full((3, 2), value, np.float32)), "bias": Array(np.full(3, value, np.float32))}
                ),
                "metrics": MetricRecord({"num-examples": examples, "train-loss": 1.0, "num-steps": 1}),
            }
        )
        return SimpleNamespace(metadata=SimpleNamespace(src_node_id=node), content=content, has_error=lambda: False)

    arrays, _ = strategy.aggregate_train(1, [reply(101, 0.0, 10), reply(102, 1.0, 30)])
    assert strategy.last_round.rejected == {}
    return float(arrays[weight_key].numpy().mean())


def test_sampling_fedavg_weighted_aggregation_uses_num_examples():
    """Kills: weighted_aggregation=True ignored (or weights squared) in SamplingFedAvg."""
    assert _strategy_aggregate(True) == pytest.approx(0.75)  # 30 / (10 + 30); squared: 0.9
    assert _strategy_aggregate(False) == pytest.approx(0.5)


# ---------------------------------------------------------------- (d) pow-d candidates
POWD_SIZES = np.array([5.0, 5.0, 5.0, 85.0])  # client 3 holds 85% of the data


def test_powd_candidates_are_drawn_by_data_share():
    """Kills: pow-d drawing its d candidates uniformly instead of by data share."""
    sampler = PowerOfChoiceSampler(d=1)
    sampler.setup(POWD_SIZES, clients_per_round=1, num_rounds=10, rng=np.random.default_rng(0))
    picks = []
    for _ in range(2000):
        candidates = sampler.probe_candidates(2, np.arange(4))
        assert len(candidates) == 1
        picks.append(candidates[0])
    freqs = _frequencies(picks, 4)
    assert abs(freqs[3] - 0.85) < 0.04, freqs  # uniform: 0.25


def test_powd_first_round_is_drawn_by_data_share():
    """Kills: the probe-free round-1 draw made uniform."""
    sampler = PowerOfChoiceSampler(d=2)
    sampler.setup(POWD_SIZES, clients_per_round=1, num_rounds=10, rng=np.random.default_rng(1))
    assert sampler.probe_candidates(1, np.arange(4)) == []
    freqs = _frequencies([sampler.select(1, np.arange(4), 1, {})[0] for _ in range(2000)], 4)
    assert abs(freqs[3] - 0.85) < 0.04, freqs


def test_powd_keeps_the_highest_losses():
    from fedsim.selection.base import ProbeReport

    sampler = PowerOfChoiceSampler(d=4)
    sampler.setup(POWD_SIZES, clients_per_round=2, num_rounds=10, rng=np.random.default_rng(2))
    probes = {k: ProbeReport(k, loss, 5) for k, loss in enumerate([0.5, 2.0, 0.1, 1.0])}
    assert sampler.select(2, np.arange(4), 2, probes) == [1, 3]


# ---------------------------------------------------------------- (e) angles between updates
def test_update_angles_divides_by_both_norms():
    """Kills: the Gram cosine divided by one norm only (or one norm twice)."""
    a = np.array([2.0, 0.0, 0.0])  # norm 2
    b = 3.0 * np.array([np.cos(np.pi / 3), np.sin(np.pi / 3), 0.0])  # norm 3, 60 degrees from a
    c = np.array([0.0, 0.0, 0.5])  # norm 0.5, orthogonal to both
    z = np.zeros(3)  # never seen
    vectors = np.stack([a, b, c, z])
    angles = update_angles(vectors @ vectors.T)
    expected = np.array(
        [
            [0.0, np.pi / 3, np.pi / 2, np.pi / 2],
            [np.pi / 3, 0.0, np.pi / 2, np.pi / 2],
            [np.pi / 2, np.pi / 2, 0.0, np.pi / 2],
            [np.pi / 2, np.pi / 2, np.pi / 2, 0.0],
        ]
    )
    np.testing.assert_allclose(angles, expected, atol=1e-7)
    # 120 degrees: a one-sided norm gives cos -1.5 or -0.67 instead of -0.5.
    d = 0.5 * np.array([np.cos(2 * np.pi / 3), np.sin(2 * np.pi / 3), 0.0])
    pair = np.stack([a, d])
    np.testing.assert_allclose(update_angles(pair @ pair.T)[0, 1], 2 * np.pi / 3, atol=1e-7)


def test_hics_distance_angles_use_both_norms():
    """The same mutant in HiCS-FL's own distance (angle + lam * entropy gap), lam = 0."""
    directions = np.array([[2.0, 0.0], [3.0 * np.cos(np.pi / 3), 3.0 * np.sin(np.pi / 3)], [0.0, 0.25]])
    dist = hics_distance_matrix(directions, np.array([0.1, 0.5, 0.9]), lam=0.0)
    np.testing.assert_allclose(dist[0, 1], np.pi / 3, atol=1e-7)
    np.testing.assert_allclose(dist[1, 2], np.pi / 6, atol=1e-7)
    with_gap = hics_distance_matrix(directions, np.array([0.1, 0.5, 0.9]), lam=2.0)
    np.testing.assert_allclose(with_gap[0, 2], np.pi / 2 + 2.0 * 0.8, atol=1e-7)


# ---------------------------------------------------------------- (f) Fraboni tree cut at 1/K
PAIRS = np.array([[0.0, 0.0], [0.0, 1.0], [10.0, 0.0], [10.0, 1.0], [20.0, 0.0], [20.0, 1.0]])


def _pair_distances(points: np.ndarray) -> np.ndarray:
    return np.linalg.norm(points[:, None] - points[None], axis=-1)


@pytest.mark.parametrize("num_pairs", [2, 3])
def test_fraboni_distributions_keep_similar_clients_in_one_row(num_pairs):
    """Kills: the tree cut at 1/(K+1) instead of 1/K (rows would mix the pairs).

    K pairs of near-identical clients with equal shares: cut at 1/K, each pair (mass
    K * 2/(2K) = 1) is one flat cluster and one row, 1/2 on each of its two clients.
    Row and column sums are the same under the mutant; only the matrix itself differs.
    """
    points = PAIRS[: 2 * num_pairs]
    n = len(points)
    r = fraboni_distributions(_pair_distances(points), np.full(n, 1.0 / n), num_pairs)
    assert r.shape == (num_pairs, n)
    np.testing.assert_allclose(r.sum(axis=0), np.full(n, num_pairs / n))
    rows = sorted(tuple(np.flatnonzero(row > 1e-12)) for row in r)
    assert rows == [(2 * i, 2 * i + 1) for i in range(num_pairs)], r
    np.testing.assert_allclose(r[r > 1e-12], 0.5)


def test_fraboni_cut_with_unequal_shares():
    """Two tight groups: {0,1,2} with shares 0.2+0.2+0.1 = 0.5 and {3,4} with 0.25+0.25, K = 2."""
    points = np.array([[0.0, 0.0], [0.0, 0.5], [0.5, 0.0], [30.0, 0.0], [30.0, 0.5]])
    shares = np.array([0.2, 0.2, 0.1, 0.25, 0.25])
    r = fraboni_distributions(_pair_distances(points), shares, 2)
    expected = {(0, 1, 2): [0.4, 0.4, 0.2], (3, 4): [0.5, 0.5]}
    for row in r:
        support = tuple(np.flatnonzero(row > 1e-12))
        assert support in expected, r
        np.testing.assert_allclose(row[list(support)], expected[support])


def test_clustered_sampler_never_draws_two_similar_clients_together():
    """The cut through the sampler: updates in two directions, K = 2, one per direction."""
    sampler = ClusteredSampler()
    sampler.setup(np.full(4, 25.0), clients_per_round=2, num_rounds=10, rng=np.random.default_rng(0))
    updates = [[1.0, 0.0], [2.0, 0.1], [0.0, 3.0], [0.1, 0.5]]
    sampler.observe(1, [_report(k, [0.0, 0.0, 0.0], model_update=u) for k, u in enumerate(updates)])
    for _ in range(200):
        chosen = sampler.select(2, np.arange(4), 2, {})
        assert len(chosen) == 2
        assert {c // 2 for c in chosen} == {0, 1}, chosen
