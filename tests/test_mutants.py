"""Focused tests that kill single-line mutants of core logic the rest of the suite let live.

Found with ``make mutation`` (docs/mutation.md); each test says what it pins down. They go through public behaviour (sampler classes'
``setup`` / ``observe`` / ``probe_candidates`` / ``select``, ``average_arrays``,
``SamplingFedAvg.aggregate_train``, ``fraboni_distributions``) with unequal client sizes
and vectors of norm != 1, so a probability, weight or norm that is silently dropped,
squared or swapped changes the observed result. Random behaviour is checked by empirical
frequencies over many seeded draws, with bounds many standard deviations wide.
"""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, MetricRecord, RecordDict

from fedsim.selection.base import ClientReport
from fedsim.selection.clustered import ClusteredSampler, fraboni_distributions
from fedsim.selection.draws import draw_from_clusters
from fedsim.selection.geometry import angles_from_gram as update_angles
from fedsim.selection.geometry import hics_distance_matrix
from fedsim.selection.hics import HiCSSampler
from fedsim.selection.powd import PowerOfChoiceSampler
from fedsim.server.aggregation import average_arrays


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


# ---------------------------------------------------------------- (g) reply validation
from fedsim.errors import NON_FINITE  # noqa: E402
from fedsim.server.validation import reply_problem  # noqa: E402

GLOBAL = {"body.w": np.zeros((2, 3), np.float32), "out.weight": np.zeros((4, 2), np.float32),
          "out.bias": np.zeros(4, np.float32), "bn.count": np.zeros((), np.int64)}
OUT_KEYS = ("out.weight", "out.bias")


def _content(metrics=None, arrays=None, update=None, drop=()) -> RecordDict:
    """A sound reply (examples 5 of at most 10), with parts replaced or dropped."""
    parts = {
        "metrics": MetricRecord({"num-examples": 5, "train-loss": 0.5, "num-steps": 2, **(metrics or {})}),
        "arrays": ArrayRecord({k: Array(v.copy()) for k, v in {**GLOBAL, **(arrays or {})}.items()}),
        "output_update": ArrayRecord({k: Array(v) for k, v in {
            "weight": np.zeros((4, 2), np.float32), "bias": np.zeros(4, np.float32), **(update or {})}.items()}),
    }
    return RecordDict({k: v for k, v in parts.items() if k not in drop})


def _problem(**kwargs) -> str | None:
    return reply_problem(_content(**kwargs), GLOBAL, OUT_KEYS, max_examples=10)


def test_reply_problem_accepts_a_sound_reply_at_the_bounds():
    """Kills: the [1, max_examples] bounds or the num-steps >= 0 check made strict or shifted."""
    assert _problem() is None
    assert _problem(metrics={"num-examples": 1}) is None
    assert _problem(metrics={"num-examples": 10}) is None
    assert _problem(metrics={"num-steps": 0}) is None
    assert _problem(metrics={"train-loss": 3}) is None  # an int loss is a finite number
    assert _problem(metrics={"train-loss": -2.5}) is None


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"drop": ("metrics",)}, "missing metrics"),
        ({"metrics": {"num-examples": 0}}, "metrics: num-examples=0 outside [1, 10]"),
        ({"metrics": {"num-examples": 11}}, "metrics: num-examples=11 outside [1, 10]"),
        ({"metrics": {"num-examples": 5.0}}, "metrics: num-examples=5.0 outside [1, 10]"),
        ({"metrics": {"train-loss": float("nan")}}, "metrics: train-loss=nan is not a finite number"),
        ({"metrics": {"train-loss": float("-inf")}}, "metrics: train-loss=-inf is not a finite number"),
        ({"metrics": {"train-loss": [0.5]}}, "metrics: train-loss=[0.5] is not a finite number"),
        ({"metrics": {"num-steps": -1}}, "metrics: num-steps=-1 is not a count"),
        ({"metrics": {"num-steps": 2.0}}, "metrics: num-steps=2.0 is not a count"),
        ({"drop": ("arrays",)}, "missing arrays"),
        ({"drop": ("output_update",)}, "missing output_update"),
        ({"arrays": {"extra": np.zeros(1, np.float32)}},
         "arrays: keys ['bn.count', 'body.w', 'extra', 'out.bias', 'out.weight'] != expected "
         "['bn.count', 'body.w', 'out.bias', 'out.weight']"),
        ({"arrays": {"body.w": np.zeros((3, 2), np.float32)}}, "arrays.body.w: shape (3, 2) != (2, 3)"),
        ({"arrays": {"body.w": np.zeros((2, 3), np.float64)}}, "arrays.body.w: dtype float64 != float32"),
        ({"arrays": {"out.bias": np.array([0, 0, np.inf, 0], np.float32)}}, f"arrays.out.bias: {NON_FINITE}"),
        ({"arrays": {"body.w": np.full((2, 3), np.nan, np.float32)}}, f"arrays.body.w: {NON_FINITE}"),
        ({"update": {"bias": np.zeros(3, np.float32)}}, "output_update.bias: shape (3,) != (4,)"),
        ({"update": {"weight": np.zeros((4, 2), np.float16)}}, "output_update.weight: dtype float16 != float32"),
        ({"update": {"weight": np.array([[0, 0]] * 3 + [[0, np.nan]], np.float32)}},
         f"output_update.weight: {NON_FINITE}"),
    ],
)
def test_reply_problem_names_the_first_problem(kwargs, expected):
    """Kills: any check dropped, negated or reordered, and any reason text changed."""
    assert _problem(**kwargs) == expected


@pytest.mark.parametrize("key", ["num-examples", "train-loss", "num-steps"])
def test_reply_problem_missing_metric(key):
    content = _content()
    del content.metric_records["metrics"][key]
    assert reply_problem(content, GLOBAL, OUT_KEYS, max_examples=10) == f"metrics: missing {key}"


def test_reply_problem_output_update_keys_follow_output_keys():
    """The update is checked against the output layer named by output_keys, weight and bias not swapped."""
    assert _problem(update={"other": np.zeros(1, np.float32)}) == (
        "output_update: keys ['bias', 'other', 'weight'] != expected ['bias', 'weight']")
    swapped = reply_problem(_content(), GLOBAL, ("out.bias", "out.weight"), max_examples=10)
    assert swapped == "output_update.bias: shape (4,) != (4, 2)"
    # Integer arrays are not checked for finiteness (and cannot be non-finite): a big count passes.
    assert _problem(arrays={"bn.count": np.array(2**62, np.int64)}) is None


# ---------------------------------------------------------------- (h) pow-d settings and rounds
from fedsim.selection.base import ProbeReport  # noqa: E402


def _powd(seed: int = 0, sizes=POWD_SIZES, k: int = 2, **kwargs) -> PowerOfChoiceSampler:
    sampler = PowerOfChoiceSampler(**kwargs)
    sampler.setup(sizes, clients_per_round=k, num_rounds=10, rng=np.random.default_rng(seed))
    return sampler


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"d": 2, "d_factor": 2.0}, "give d or d_factor, not both"),
        ({"d": 0}, "d must be >= 1"),
        ({"d_factor": 0.0}, "sampler.d_factor=0.0: must be a finite number > 0"),
        ({"d_factor": -1.0}, "sampler.d_factor=-1.0: must be a finite number > 0"),
        ({"d_factor": float("inf")}, "sampler.d_factor=inf: must be a finite number > 0"),
        ({"d_factor": float("nan")}, "sampler.d_factor=nan: must be a finite number > 0"),
    ],
)
def test_powd_refuses_bad_settings_with_its_message(kwargs, message):
    with pytest.raises(ValueError) as error:
        PowerOfChoiceSampler(**kwargs)
    assert str(error.value) == message


def test_powd_candidate_counts():
    """d = ceil(d_factor * K), at least K and at most the available clients; d_factor < 1 is allowed."""
    assert _powd(d_factor=0.5, k=2).num_candidates(10) == 2  # ceil(1) -> raised to K
    assert _powd(d_factor=1.6, k=2).num_candidates(10) == 4  # ceil(3.2)
    assert _powd(d_factor=2.0, k=3).num_candidates(5) == 5
    assert _powd(d=1, k=2).num_candidates(10) == 2
    assert _powd(d=3, k=2).num_candidates(10) == 3
    assert _powd(k=2).num_candidates(7) == 7


def test_powd_probes_everyone_in_order_when_d_covers_them():
    """d >= available: every available client in id order, even a single one; none in round 1."""
    for seed in range(5):
        assert _powd(seed, d=4).probe_candidates(2, np.arange(4)) == [0, 1, 2, 3]
        assert _powd(seed, d=3).probe_candidates(2, np.array([1, 2, 3])) == [1, 2, 3]
    assert _powd(d=1, k=1).probe_candidates(2, np.array([2])) == [2]
    assert _powd(d=1, k=1).probe_candidates(2, np.array([], dtype=int)) == []
    assert _powd(d=4).probe_candidates(1, np.arange(4)) == []
    # Ids given as floats are used as integer ids.
    assert _powd(d=1, k=1).probe_candidates(2, [0.0, 1.0, 2.0, 3.0])[0] in range(4)


def test_powd_choose_skips_unavailable_and_failed_probes():
    sampler = _powd(d=4, k=2)
    probes = {0: ProbeReport(0, 0.5, 5), 1: ProbeReport(1, float("nan"), 5), 2: ProbeReport(2, 9.0, 5),
              3: ProbeReport(3, 1.0, 5)}
    assert sampler.select(2, np.array([0, 1, 3]), 2, probes) == [3, 0]  # 2 not available, 1 failed
    assert sampler.diagnostics() == {"random_round": False, "num_candidates": 2}
    assert sampler.select(3, np.array([1, 2]), 2, probes) == [2]  # one usable probe: one client


def test_powd_random_rounds_and_their_diagnostics():
    """Round 1 (probes or not) and a later round without probes draw K clients at random."""
    sampler = _powd(d=4, k=2)
    probes = {k: ProbeReport(k, float(k), 5) for k in range(4)}
    picks = [tuple(sorted(sampler.select(1, np.arange(4), 2, probes))) for _ in range(30)]
    assert sampler.diagnostics() == {"random_round": True}
    assert len(set(picks)) > 1  # random, not the two highest losses every time
    later = sampler.select(5, np.arange(4), 2, {})
    assert len(later) == 2 and sampler.diagnostics() == {"random_round": True}


# ---------------------------------------------------------------- (i) random sampler
def _random_freqs(**kwargs) -> np.ndarray:
    from fedsim.selection.random import RandomSampler

    sampler = RandomSampler(**kwargs)
    sampler.setup(POWD_SIZES, clients_per_round=1, num_rounds=10, rng=np.random.default_rng(4))
    return _frequencies([sampler.select(1, np.arange(4), 1, {})[0] for _ in range(2000)], 4)


def test_random_sampler_is_uniform_by_default_and_by_size_when_proportional():
    assert np.all(np.abs(_random_freqs() - 0.25) < 0.04)
    assert np.all(np.abs(_random_freqs(proportional=False) - 0.25) < 0.04)
    assert abs(_random_freqs(proportional=True)[3] - 0.85) < 0.04
    assert abs(_random_freqs(proportional=1)[3] - 0.85) < 0.04
    from fedsim.selection.random import RandomSampler

    sampler = RandomSampler(proportional=True)
    sampler.setup(POWD_SIZES, clients_per_round=2, num_rounds=10, rng=np.random.default_rng(0))
    assert set(sampler.select(1, [3.0, 1.0, 3.0], 2, {})) == {1, 3}  # ids as floats, repeated: two distinct ints


def test_round_seeded_random_draws_as_the_authors_code_whatever_the_seed():
    from fedsim.selection.random import RandomSampler

    sizes = np.array([100.0, 300.0, 50.0, 250.0, 300.0])
    picks = []
    for seed in (0, 1):
        sampler = RandomSampler(proportional=True, round_seeded=True)
        sampler.setup(sizes, clients_per_round=2, num_rounds=10, rng=np.random.default_rng(seed))
        picks.append([sampler.select(r, np.arange(5), 2, {}) for r in (1, 2, 3)])
    assert picks[0] == picks[1]  # the run's own stream is not used
    assert len({tuple(p) for p in picks[0]}) > 1  # but each round draws anew
    code = np.random.RandomState(2)  # what the code's np.random.seed(epoch=2) sets up for round 3
    assert picks[0][2] == [int(c) for c in code.choice(5, size=2, replace=False, p=sizes / sizes.sum())]
    free = RandomSampler(proportional=True)
    free.setup(sizes, clients_per_round=2, num_rounds=10, rng=np.random.default_rng(1))
    assert [free.select(r, np.arange(5), 2, {}) for r in (1, 2, 3)] != picks[0]


# ---------------------------------------------------------------- (j) the latest-updates store
def test_latest_updates_store_gram_and_seen():
    from fedsim.selection.updates import LatestUpdates

    store = LatestUpdates(4)
    assert store.seen.dtype == bool and not store.seen.any()
    store.store([_report(0, [0.0]), _report(1, [0.0], model_update=[3.0, 4.0]),
                 _report(2, [0.0], model_update=[[1.0], [0.0]])])
    assert store.updates.dtype == np.float32 and store.updates.shape == (4, 2)
    assert store.seen.tolist() == [False, True, True, False]
    np.testing.assert_array_equal(store.gram, [[0, 0, 0, 0], [0, 25, 3, 0], [0, 3, 1, 0], [0, 0, 0, 0]])
    store.store([_report(3, [0.0], model_update=[0.0, 2.0])])
    np.testing.assert_array_equal(store.gram, [[0, 0, 0, 0], [0, 25, 3, 8], [0, 3, 1, 0], [0, 8, 0, 4]])
    np.testing.assert_allclose(store.distances(np.array([1, 3])), [[0, np.sqrt(13)], [np.sqrt(13), 0]])
    np.testing.assert_allclose(store.distances(np.array([2, 1, 0])),
                               [[0, np.sqrt(20), 1], [np.sqrt(20), 0, 5], [1, 5, 0]])
    np.testing.assert_allclose(store.angles(np.array([2, 3])), [[0, np.pi / 2], [np.pi / 2, 0]])


# ---------------------------------------------------------------- (k) the HiCS oracle
def _oracle(histograms, **kwargs):
    from fedsim.selection.hics_oracle import HiCSOracleSampler

    histograms = np.asarray(histograms)
    sampler = HiCSOracleSampler(**kwargs)
    sampler.setup(histograms.sum(axis=1), 2, 100, np.random.default_rng(0))
    sampler.receive_label_distributions(histograms)
    return sampler


def test_hics_oracle_direction_is_label_share_minus_uniform():
    """Clients on either side of 50/50 point in opposite directions (p - 1/C): 51/49 and 49/51
    fall in different clusters although their label mixes are close."""
    import warnings

    sampler = _oracle([[99, 1], [51, 49], [49, 51], [1, 99]], lam=0.0, num_clusters=2)
    sampler.select(2, np.arange(4), 2, {})
    cluster = sampler.diagnostics()["cluster"]
    assert cluster[0] == cluster[1] != cluster[2] == cluster[3], cluster
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a class with no examples must not take log(0)
        one_class = _oracle([[50, 0, 0], [10, 10, 10], [0, 20, 20]])
    np.testing.assert_allclose(one_class.entropies(), [0.0, np.log(3), np.log(2)])


# ---------------------------------------------------------------- (l) HiCS settings
from fedsim.selection.hics import estimate_entropy, positive_part_entropy  # noqa: E402


def test_hics_defaults_are_the_papers_and_settings_are_kept():
    s = HiCSSampler()
    assert (s.temperature, s.gamma0, s.lam, s.num_clusters, s.estimator, s.annealing, s.warmup_order, s.refresh,
            s.within_cluster, s.distance_on, s.variance_fallback, s.variance_threshold, s.normalize_by_steps,
            s.mode, s.micro_clusters, s.exploration_rate) == (
        0.0025, 4.0, 10.0, None, "bias", "absolute", "random", True, "data_size", "bias", False, 0.1, False,
        "exact", 500, 0.0)
    t = HiCSSampler(num_clusters=3, estimator="positive_part", distance_on="output_layer", gamma0=0.5, lam=0.5,
                    micro_clusters=1, variance_threshold=2.0, exploration_rate=0.0)
    assert (t.num_clusters, t.estimator, t.distance_on, t.gamma0, t.lam, t.micro_clusters) == (
        3, "positive_part", "output_layer", 0.5, 0.5, 1)
    assert HiCSSampler(gamma0=0, lam=0, num_clusters=2.0).gamma0 == 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"estimator": "x"}, "HiCSSampler: estimator='x', expected one of ('bias', 'weight_rows', 'positive_part')"),
        ({"annealing": "x"}, "HiCSSampler: annealing='x', expected one of ('absolute', 'relative')"),
        ({"warmup_order": "x"}, "HiCSSampler: warmup_order='x', expected one of ('random', 'index')"),
        ({"within_cluster": "x"}, "HiCSSampler: within_cluster='x', expected one of ('data_size', 'uniform')"),
        ({"distance_on": "x"}, "HiCSSampler: distance_on='x', expected one of ('bias', 'output_layer')"),
        ({"mode": "x"}, "HiCSSampler: mode='x', expected one of ('exact', 'scalable')"),
        ({"temperature": 0}, "hics.temperature=0.0: must be a finite number > 0"),
        ({"temperature": float("inf")}, "hics.temperature=inf: must be a finite number > 0"),
        ({"gamma0": -0.5}, "hics.gamma0=-0.5: must be a finite number >= 0"),
        ({"gamma0": float("nan")}, "hics.gamma0=nan: must be a finite number >= 0"),
        ({"lam": -1}, "hics.lam=-1.0: must be a finite number >= 0"),
        ({"num_clusters": True}, "hics.num_clusters=True: must be a whole number >= 1 or null (= K)"),
        ({"num_clusters": 2.5}, "hics.num_clusters=2.5: must be a whole number >= 1 or null (= K)"),
        ({"num_clusters": 0}, "hics.num_clusters=0: must be a whole number >= 1 or null (= K)"),
        ({"variance_threshold": 0}, "variance_threshold=0: must be a finite number > 0"),
        ({"variance_threshold": float("inf")}, "variance_threshold=inf: must be a finite number > 0"),
        ({"micro_clusters": 0}, "micro_clusters=0: must be >= 1"),
        ({"exploration_rate": -0.5}, "sampler.exploration_rate=-0.5: must be a finite number >= 0"),
        ({"exploration_rate": float("inf")}, "sampler.exploration_rate=inf: must be a finite number >= 0"),
        ({"mode": "scalable", "variance_fallback": True},
         "HiCSSampler: mode='scalable' cannot be combined with variance_fallback=True "
         "(the Clustered-Sampling fallback needs the N x N distance matrix)"),
    ],
)
def test_hics_refuses_bad_settings_with_its_message(kwargs, message):
    with pytest.raises(ValueError) as error:
        HiCSSampler(**kwargs)
    assert str(error.value) == message


def test_hics_setup_checks_against_the_federation():
    HiCSSampler(num_clusters=4).setup(np.full(4, 5.0), 2, 10, np.random.default_rng(0))  # M = N is fine
    HiCSSampler(exploration_rate=2).setup(np.full(4, 5.0), 2, 10, np.random.default_rng(0))  # r = K is fine
    with pytest.raises(ValueError) as error:
        HiCSSampler(num_clusters=5).setup(np.full(4, 5.0), 2, 10, np.random.default_rng(0))
    assert str(error.value) == ("hics.num_clusters=5 exceeds the 4 clients; "
                                "set hics.num_clusters <= num_clients (or null for K)")
    with pytest.raises(ValueError) as error:
        HiCSSampler(exploration_rate=2.5).setup(np.full(4, 5.0), 2, 10, np.random.default_rng(0))
    assert str(error.value) == ("sampler.exploration_rate=2.5 exceeds the 2 clients per round; "
                                "set it to at most clients_per_round")


# ---------------------------------------------------------------- (m) HiCS entropy estimates
def test_entropy_estimates_one_update_or_a_stack():
    single = estimate_entropy(np.zeros(3), 1.0)
    assert isinstance(single, float) and single == pytest.approx(np.log(3))
    # Each row is shifted by its own maximum: a row far below another must not underflow.
    np.testing.assert_allclose(estimate_entropy(np.array([[0.0, 0.0], [1000.0, 1000.0]]), 1.0), [np.log(2)] * 2)
    one = positive_part_entropy([3, 1, 0, -2])  # integers, a negative part and a zero class
    assert isinstance(one, float)
    assert one == pytest.approx(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25)))
    assert positive_part_entropy([-1.0, -2.0, 0.0]) == pytest.approx(np.log(3))  # no positive part: ln C
    stack = positive_part_entropy(np.array([[1.0, 1.0, 0.0], [5.0, 0.0, 0.0]]))
    assert isinstance(stack, np.ndarray)
    np.testing.assert_allclose(stack, [np.log(2), 0.0], atol=1e-12)


def _observed(estimator="bias", normalize=False, refresh=True, steps=(1, 4)):
    sampler = HiCSSampler(estimator=estimator, normalize_by_steps=normalize, refresh=refresh, temperature=0.5)
    sampler.setup(np.full(3, 10.0), 1, 10, np.random.default_rng(0))
    bias = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    weight = np.array([[[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]], [[3.0, 3.0], [0.0, 0.0], [1.0, 1.0]]])
    sampler.observe(1, [ClientReport(k, 10, 1.0, steps[k], bias[k], weight[k]) for k in range(2)])
    return sampler, bias, weight


def test_hics_entropy_follows_the_estimator_and_step_normalisation():
    s, bias, weight = _observed("bias")
    np.testing.assert_allclose(s.entropies()[:2], estimate_entropy(bias, 0.5))
    assert np.isnan(s.entropies()[2])
    s, bias, weight = _observed("positive_part")
    np.testing.assert_allclose(s.entropies()[:2], positive_part_entropy(bias))
    s, bias, weight = _observed("weight_rows")
    np.testing.assert_allclose(s.entropies()[:2], estimate_entropy(weight.mean(axis=2), 0.5))
    s, bias, weight = _observed("bias", normalize=True)
    np.testing.assert_allclose(s.entropies()[:2], estimate_entropy(bias / np.array([[1.0], [4.0]]), 0.5))
    s, bias, weight = _observed("weight_rows", normalize=True)
    np.testing.assert_allclose(s.entropies()[:2], estimate_entropy(weight.mean(axis=2) / np.array([[1.0], [4.0]]), 0.5))


def test_hics_without_refresh_still_stores_new_clients_after_a_repeat():
    s, bias, _ = _observed("bias", refresh=False)
    s.observe(2, [ClientReport(0, 10, 1.0, 1, np.array([0.0, 0.0, 9.0]), np.zeros((3, 2))),
                  ClientReport(2, 10, 1.0, 1, np.array([0.0, 0.0, 1.0]), np.zeros((3, 2)))])
    h = s.entropies()
    assert h[0] == pytest.approx(estimate_entropy(bias[0], 0.5))  # first report kept
    assert h[2] == pytest.approx(estimate_entropy(np.array([0.0, 0.0, 1.0]), 0.5))


# ---------------------------------------------------------------- (n) HiCS selection internals
def _hics(n, k, seed=0, rounds=100, **kwargs):
    sampler = HiCSSampler(**kwargs)
    sampler.setup(np.full(n, 10.0), k, rounds, np.random.default_rng(seed))
    return sampler


def _warm(sampler, biases, weights=None):
    reports = [ClientReport(k, 10, 1.0, 1, np.asarray(b, float),
                            np.zeros((len(b), 2)) if weights is None else np.asarray(weights[k], float))
               for k, b in enumerate(biases)]
    sampler.observe(1, reports)


FOUR = [[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.0, 1.0, 0.0], [0.1, 0.9, 0.05]]


def test_hics_diagnostics_of_a_warmup_round_and_of_no_selection():
    sampler = _hics(4, 2)
    assert sampler.diagnostics() == {}
    assert sampler.select(1, np.arange(4), 0, {}) == []
    assert sampler.diagnostics() == {}
    sampler.select(1, np.arange(4), 2, {})
    diag = sampler.diagnostics()
    assert diag.pop("explored", []) == []  # recorded (empty) or left out when exploration is off
    assert diag == {"entropy": [None] * 4, "cluster": [None] * 4, "cluster_probabilities": [],
                    "gamma_t": pytest.approx(4.0 * (1 - 1 / 100)), "entropy_variance": None, "phase": "warmup"}


def test_hics_cluster_probabilities_are_softmax_of_cluster_mean_entropies():
    sampler = _hics(4, 2, lam=0.0, temperature=1.0)
    _warm(sampler, FOUR)
    sampler.select(3, np.arange(4), 2, {})
    diag = sampler.diagnostics()
    h = sampler.entropies()
    labels = np.array(diag["cluster"])
    assert sorted(map(tuple, [np.flatnonzero(labels == c) for c in range(2)])) == [(0, 1), (2, 3)]
    assert diag["entropy_variance"] == pytest.approx(np.var(h))
    mean_h = np.array([h[labels == c].mean() for c in range(2)])
    gamma = 4.0 * (1 - 3 / 100)
    np.testing.assert_allclose(diag["cluster_probabilities"], np.exp(gamma * mean_h) / np.exp(gamma * mean_h).sum())


def test_hics_relative_annealing_divides_gamma_by_the_spread():
    sampler = _hics(4, 2, lam=0.0, temperature=1.0, annealing="relative")
    _warm(sampler, FOUR)
    sampler.select(3, np.arange(4), 2, {})
    diag = sampler.diagnostics()
    h, labels = sampler.entropies(), np.array(diag["cluster"])
    mean_h = np.array([h[labels == c].mean() for c in range(2)])
    spread = mean_h.max() - mean_h.min()
    assert 0 < spread < 1
    assert diag["gamma_effective"] == pytest.approx(4.0 * (1 - 3 / 100) / spread)
    flat = _hics(4, 2, lam=0.0, temperature=1.0, annealing="relative")
    _warm(flat, [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])  # equal entropies: no spread
    flat.select(3, np.arange(4), 2, {})
    assert flat.diagnostics()["gamma_effective"] == 0.0
    np.testing.assert_allclose(flat.diagnostics()["cluster_probabilities"], [0.5, 0.5])


def test_hics_distance_on_bias_or_on_the_output_layer():
    """Biases pair {0,1} and {2,3}; the (much larger) weight updates pair {0,2} and {1,3}."""
    biases = [[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]]
    w = {0: [[50.0, 0.0], [0.0, 0.0]], 1: [[0.0, 0.0], [0.0, 50.0]]}
    weights = [w[0], w[1], w[0], w[1]]
    groups = {}
    for on in ("bias", "output_layer"):
        sampler = _hics(4, 2, lam=0.0, distance_on=on)
        _warm(sampler, biases, weights)
        sampler.select(3, np.arange(4), 2, {})
        labels = np.array(sampler.diagnostics()["cluster"])
        groups[on] = sorted(tuple(np.flatnonzero(labels == c)) for c in range(2))
    assert groups == {"bias": [(0, 1), (2, 3)], "output_layer": [(0, 2), (1, 3)]}


def test_hics_all_candidates_taken_without_clustering():
    sampler = _hics(4, 2)
    _warm(sampler, FOUR)
    assert sampler.select(3, np.array([3, 1]), 2, {}) == [1, 3]
    diag = sampler.diagnostics()
    assert diag["entropy_variance"] is None and diag["cluster"] == [None] * 4 and diag["phase"] == "cluster"


def test_hics_variance_fallback_threshold_is_inclusive_and_keeps_the_warmup_phase():
    probe = _hics(4, 2, lam=0.0, temperature=1.0)
    _warm(probe, FOUR)
    probe.select(3, np.arange(4), 2, {})
    variance = probe.diagnostics()["entropy_variance"]
    at = _hics(4, 2, lam=0.0, temperature=1.0, variance_fallback=True, variance_threshold=variance)
    _warm(at, FOUR)
    at.select(3, np.arange(4), 2, {})
    assert at.diagnostics()["phase"] == "fallback"
    # A round that is part warm-up, part informed draw stays "warmup" even when it falls back.
    mixed = _hics(5, 2, lam=0.0, temperature=1.0, variance_fallback=True, variance_threshold=1e-9,
                  warmup_order="index")
    _warm(mixed, FOUR)
    chosen = mixed.select(3, np.arange(5), 2, {})
    assert chosen[0] == 4 and len(set(chosen)) == 2
    assert mixed.diagnostics()["phase"] == "warmup"


def test_hics_exploration_waits_for_the_warmup_and_never_repeats_an_informed_pick():
    mixed = _hics(5, 2, exploration_rate=1.0, warmup_order="index")
    _warm(mixed, FOUR)
    chosen = mixed.select(3, np.arange(5), 2, {})  # client 4 still unreported: no exploration this round
    assert chosen[0] == 4 and mixed.diagnostics()["explored"] == []
    assert mixed.diagnostics()["entropy_variance"] is not None  # the other slot is an informed draw
    for seed in range(5):
        sampler = _hics(4, 3, seed=seed, exploration_rate=1.0)
        _warm(sampler, FOUR)
        for t in range(2, 12):
            chosen = sampler.select(t, np.arange(4), 3, {})
            assert len(set(chosen)) == 3, chosen
            assert len(sampler.diagnostics()["explored"]) == 1


def test_hics_exploration_prefers_clients_never_picked():
    """All slots exploring (r = K): three rounds of two cover six never-picked clients."""
    from fedsim.selection.hics_oracle import HiCSOracleSampler

    for seed in range(8):
        sampler = HiCSOracleSampler(exploration_rate=2)
        sampler.setup(np.full(6, 10.0), 2, 10, np.random.default_rng(seed))
        sampler.receive_label_distributions(np.eye(6) * 10 + 1)
        picks = [k for t in (1, 2, 3) for k in sampler.select(t, np.arange(6), 2, {})]
        assert sorted(picks) == list(range(6)), picks


def test_hics_micro_clusters_setting_reaches_the_scalable_clustering():
    """micro_clusters=2 groups six candidates by k-means (drawing its seed from the stream) before
    Ward; the default 500 leaves each its own group: the two streams part."""
    biases = [[1.0, 0.0], [0.9, 0.1], [0.8, 0.2], [0.0, 1.0], [0.1, 0.9], [0.2, 0.8]]
    streams = []
    for micro in (2, 500):
        sampler = _hics(6, 2, mode="scalable", micro_clusters=micro, lam=0.0)
        _warm(sampler, biases)
        streams.append([tuple(sampler.select(t, np.arange(6), 2, {})) for t in range(4, 14)])
    assert streams[0] != streams[1]


# ---------------------------------------------------------------- (o) draws
from fedsim.selection.draws import draw_one_per_row, draw_without_replacement  # noqa: E402


def test_draw_one_per_row_follows_each_row_and_its_fallbacks():
    for seed in range(10):
        rng = np.random.default_rng(seed)
        assert draw_one_per_row(rng, [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]) == [0, 2]  # each row its own mass
        assert draw_one_per_row(rng, [[1, 0], [1, 0]]) == [0, 1]  # no mass left anywhere: any unpicked
    # Row 2 has no mass left: the unpicked clients' total mass across rows (0.1 vs 0.9), never client 3.
    second = [draw_one_per_row(np.random.default_rng(s), [[1.0, 0, 0, 0], [1.0, 0, 0, 0], [0, 0.1, 0.9, 0]])
              for s in range(400)]
    assert all(len(set(d)) == 3 and d[0] == 0 for d in second)
    freqs = _frequencies([d[1] for d in second], 4)
    assert freqs[3] == 0.0 and 0.8 < freqs[2] < 0.97, freqs


def test_draw_without_replacement_uniform_and_weighted():
    rng = np.random.default_rng(0)
    assert sorted(draw_without_replacement(rng, np.arange(5), 5)) == [0, 1, 2, 3, 4]
    assert draw_without_replacement(rng, np.arange(3), 0) == []
    picks = [draw_without_replacement(rng, np.arange(2), 1, [1, 3])[0] for _ in range(2000)]
    assert abs(np.mean(picks) - 0.75) < 0.04


# ---------------------------------------------------------------- (p) geometry
from fedsim.selection.geometry import (  # noqa: E402
    angles_from_gram, pairwise_distances, squared_distances_from_gram, unit_rows,
)


def test_unit_rows_integers_and_zero_rows():
    scratch = np.full((3, 2), 7.0)  # leaves non-zero memory behind for an uninitialised output
    del scratch
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = unit_rows([[3, 4], [0, 0], [0, -2]])
    np.testing.assert_array_equal(out, [[0.6, 0.8], [0.0, 0.0], [0.0, -1.0]])


def test_angles_from_gram_zero_rows_without_warnings():
    vectors = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        angles = angles_from_gram(vectors @ vectors.T)
    np.testing.assert_allclose(angles, [[0, np.pi / 2, np.pi / 4], [np.pi / 2, 0, np.pi / 2],
                                        [np.pi / 4, np.pi / 2, 0]], atol=1e-12)


def test_distances_clip_round_off_and_use_float_arithmetic():
    assert squared_distances_from_gram([[1.0, 1.0 + 1e-12], [1.0 + 1e-12, 1.0]]).tolist() == [[0.0, 0.0], [0.0, 0.0]]
    gram = np.array([[200, 0], [0, 200]], dtype=np.uint8)  # sums past 255 must not wrap
    np.testing.assert_allclose(squared_distances_from_gram(gram), [[0, 400], [400, 0]])
    np.testing.assert_allclose(pairwise_distances(np.array([[200], [100]], dtype=np.uint8)), [[0, 100], [100, 0]])
    directions = np.array([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(hics_distance_matrix(directions, np.array([1, 3], dtype=np.uint8), lam=1.0),
                               [[0, np.pi / 2 + 2], [np.pi / 2 + 2, 0]])


# ---------------------------------------------------------------- (q) Fraboni's algorithm 2
def test_fraboni_sizes_and_its_message():
    np.testing.assert_array_equal(fraboni_distributions(np.zeros((1, 1)), np.array([1.0]), 3), np.ones((3, 1)))
    two = fraboni_distributions(np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([0.5, 0.5]), 2)
    assert two.shape == (2, 2)
    np.testing.assert_allclose(sorted(map(tuple, two)), [(0.0, 1.0), (1.0, 0.0)])
    one = fraboni_distributions(_pair_distances(PAIRS[:4]), np.array([0.1, 0.2, 0.3, 0.4]), 1)
    np.testing.assert_allclose(one, [[0.1, 0.2, 0.3, 0.4]])
    with pytest.raises(ValueError) as error:
        fraboni_distributions(_pair_distances(PAIRS[:4]), np.full(4, 0.25), 0)
    assert str(error.value) == "num_to_select must be >= 1"


def test_fraboni_rows_follow_the_tree_not_the_client_order():
    """Clients 0 and 2 are alike, so are 1 and 3: a cut at 1/K keeps those pairs; a looser cut would
    make one cluster and fill the rows in index order. Small, NaN and negative entries are read as
    distances >= 0 (NaN as 0)."""
    points = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 1.0], [10.0, 1.0]])
    expected = [[0.5, 0.0, 0.5, 0.0], [0.0, 0.5, 0.0, 0.5]]
    for scale in (1.0, 0.01):
        np.testing.assert_allclose(fraboni_distributions(_pair_distances(points) * scale, np.full(4, 0.25), 2),
                                   expected)
    dist = _pair_distances(points)
    marked = dist.copy()
    marked[0, 2] = marked[2, 0] = np.nan
    marked[1, 3] = -5.0
    np.testing.assert_allclose(fraboni_distributions(marked, np.full(4, 0.25), 2), expected)


def test_fraboni_keeps_the_heaviest_clusters_and_fills_rows_in_order():
    """Clusters W = {0} (mass 0.8), Y = {1, 2} (0.3 + 0.6) and Z = {3} (0.3), K = 2: W and Y seed
    the rows, Z spills over both."""
    points = [[0.0, 0.0], [50.0, 0.0], [50.0, 1.0], [100.0, 0.0]]
    r = fraboni_distributions(_pair_distances(np.array(points)), np.array([0.8, 0.3, 0.6, 0.3]) / 2, 2)
    np.testing.assert_allclose(r, [[0.8, 0.0, 0.0, 0.2], [0.0, 0.3, 0.6, 0.1]], atol=1e-12)


def test_fraboni_spills_pending_clients_row_after_row():
    """K = 3: rows seeded by C (0.6), A (0.8), B (0.9); D1 (0.3) and the pair D2 (0.2 + 0.2) are
    placed lightest cluster first, each client into the next rows with room."""
    points = np.array([[0.0, 0.0], [0.0, 0.1], [1000.0, 0.0], [2000.0, 0.0], [3000.0, 0.0], [4000.0, 0.0]])
    mass = np.array([0.2, 0.2, 0.8, 0.3, 0.9, 0.6])
    r = fraboni_distributions(_pair_distances(points), mass / 3, 3)
    np.testing.assert_allclose(r, [[0.1, 0.0, 0.0, 0.3, 0.0, 0.6],
                                   [0.1, 0.1, 0.8, 0.0, 0.0, 0.0],
                                   [0.0, 0.1, 0.0, 0.0, 0.9, 0.0]], atol=1e-12)


def test_clustered_sampler_diagnostics():
    sampler = ClusteredSampler()
    sampler.setup(np.full(4, 25.0), clients_per_round=2, num_rounds=10, rng=np.random.default_rng(0))
    chosen = sampler.select(1, np.arange(4), 2, {})
    diag = sampler.diagnostics()
    assert set(diag) == {"drawn", "distinct"}
    assert diag["distinct"] == len(chosen) and list(dict.fromkeys(diag["drawn"])) == chosen


# ---------------------------------------------------------------- (r) partitioners
from fedsim.data.partitioners import (  # noqa: E402
    DirichletPartitioner, FlwrDatasetsPartitioner, GroupsPartitioner, IidPartitioner, Partitioning,
    ShardsPartitioner, as_partitioning, check_partitioning, dirichlet_split,
)
from fedsim.errors import ConfigError  # noqa: E402

TEN_CLASSES = np.repeat(np.arange(10), 20)  # 200 examples
GIVE_UP = "; use fewer clients, a larger alpha or a smaller partitioner.min_size / partitioner.min_size_fraction"


def _config_error(call) -> str:
    with pytest.raises(ConfigError) as error:
        call()
    return str(error.value)


def test_as_and_check_partitioning():
    plain = as_partitioning([[0, 2], [1]])
    assert [idx.dtype for idx in plain.client_indices] == [np.int64, np.int64]
    assert as_partitioning([[0], []]).client_indices[1].dtype == np.int64  # an empty list too
    assert [idx.tolist() for idx in plain.client_indices] == [[0, 2], [1]]
    same = Partitioning([np.array([0])])
    assert as_partitioning(same) is same
    check_partitioning(plain, 3, 2)  # indices 0 and n - 1 are inside
    assert _config_error(lambda: check_partitioning(plain, 3, 3)) == "partitioner: produced 2 clients but num_clients=3"
    empties = Partitioning([np.array([0])] + [np.array([], dtype=np.int64)] * 7)
    assert _config_error(lambda: check_partitioning(empties, 3, 8)) == (
        "partitioner: client(s) [1, 2, 3, 4, 5] got no data; use fewer clients or a larger alpha")
    for bad in ([[0], [3]], [[-1], [1]]):
        assert _config_error(lambda: check_partitioning(as_partitioning(bad), 3, 2)) == (
            "partitioner: produced an index outside the training set")


def test_iid_and_shards_bounds_and_messages():
    assert IidPartitioner().split(np.arange(3), 3, np.random.default_rng(0)).sizes.tolist() == [1, 1, 1]
    assert _config_error(lambda: IidPartitioner().split(np.arange(3), 4, np.random.default_rng(0))) == (
        "num_clients=4 exceeds the 3 training examples")
    assert ShardsPartitioner().shards_per_client == 2
    assert ShardsPartitioner(1).split(np.arange(4), 4, np.random.default_rng(0)).sizes.tolist() == [1, 1, 1, 1]
    assert _config_error(lambda: ShardsPartitioner(0)) == "partitioner.shards_per_client=0: must be >= 1"
    assert _config_error(lambda: ShardsPartitioner(2).split(np.arange(5), 3, np.random.default_rng(0))) == (
        "partitioner.shards_per_client=2: 6 shards exceed the 5 training examples")


def test_shards_follow_shuffle_stable_sort_cut_and_deal():
    labels = np.repeat(np.arange(4), 25)
    got = ShardsPartitioner(2).split(labels, 10, np.random.default_rng(5))
    rng = np.random.default_rng(5)
    order = rng.permutation(len(labels))
    order = order[np.argsort(labels[order], kind="stable")]
    shards = np.array_split(order, 20)
    deal = rng.permutation(20).reshape(10, 2)
    expected = [np.sort(np.concatenate([shards[s] for s in row])) for row in deal]
    assert all(np.array_equal(a, b) for a, b in zip(got.client_indices, expected))


def test_dirichlet_split_minimum_sizes_in_its_message():
    """min_size = max(1, min(min_size, n // N), int(min_size_fraction * n / N)), named when it cannot be met."""
    rng = np.random.default_rng(0)
    assert _config_error(lambda: dirichlet_split(TEN_CLASSES, 15, 1e-6, rng, underflow="redraw")) == (
        f"partitioner.alpha=1e-06: could not give each of 15 clients at least 10 examples in 1000 draws{GIVE_UP}")
    assert _config_error(lambda: dirichlet_split(TEN_CLASSES, 30, 1e-6, rng, max_tries=2)) == (
        f"partitioner.alpha=1e-06: could not give each of 30 clients at least 6 examples in 2 draws{GIVE_UP}")
    assert _config_error(lambda: dirichlet_split(TEN_CLASSES, 30, 1e-6, rng, 2.0, max_tries=2, setting="x")) == (
        f"x=1e-06: could not give each of 30 clients at least 13 examples in 2 draws{GIVE_UP}")
    assert _config_error(lambda: dirichlet_split(TEN_CLASSES[:20], 30, 1e-6, rng, max_tries=1)) == (
        f"partitioner.alpha=1e-06: could not give each of 30 clients at least 1 examples in 1 draws{GIVE_UP}")
    two_classes = np.repeat([0, 1], 50)  # cheap draws: the partitioner's 1000 tries take little time
    assert _config_error(lambda: DirichletPartitioner(1e-6, min_size=2).split(two_classes, 30, rng)).startswith(
        "partitioner.alpha=1e-06: could not give each of 30 clients at least 2 examples")
    assert _config_error(lambda: DirichletPartitioner(1e-6, min_size_fraction=2.0).split(two_classes, 30, rng)) \
        .startswith("partitioner.alpha=1e-06: could not give each of 30 clients at least 6 examples")
    assert (DirichletPartitioner().alpha, DirichletPartitioner().min_size) == (0.5, 10)


def test_dirichlet_split_minimum_is_inclusive():
    first = dirichlet_split(TEN_CLASSES, 4, 0.5, np.random.default_rng(1), min_size=1)
    smallest = min(len(p) for p in first)
    again = dirichlet_split(TEN_CLASSES, 4, 0.5, np.random.default_rng(1), min_size=smallest, max_tries=1)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))


def test_dirichlet_split_underflow_rules():
    """A tiny alpha whose mass lands on full clients: "redraw" gives each class to one open client,
    "uniform" spreads it over the clients still below the average (exactly at it: closed)."""
    redraw = dirichlet_split(TEN_CLASSES, 10, 1e-6, np.random.default_rng(0), min_size=1, underflow="redraw")
    assert [len(np.unique(TEN_CLASSES[p])) for p in redraw] == [1] * 10
    uniform = dirichlet_split(TEN_CLASSES, 10, 1e-6, np.random.default_rng(0), min_size=1)
    assert [len(np.unique(TEN_CLASSES[p])) for p in uniform] == [1, 1, 1, 6, 1, 6, 5, 6, 6, 5]
    assert [len(p) for p in uniform] == [20] * 10


def test_groups_partitioner_messages_groups_and_min_size():
    assert _config_error(lambda: GroupsPartitioner([])) == "partitioner.alphas: give at least one alpha, e.g. [0.001,0.5]"
    assert _config_error(lambda: GroupsPartitioner([0.5], split="x")) == (
        "partitioner.split=x: expected one of stratified, random")
    assert _config_error(lambda: GroupsPartitioner([0.5, 1.0]).split(TEN_CLASSES, 1, np.random.default_rng(0))) == (
        "num_clients=1: the groups partitioner needs at least one client per alpha (2)")
    parts = GroupsPartitioner([0.5, 1.0]).split(TEN_CLASSES, 4, np.random.default_rng(0))
    assert parts.groups.dtype == np.int64 and parts.groups.tolist() == [0, 0, 1, 1]
    msg = _config_error(lambda: GroupsPartitioner([1.0, 1e-6]).split(TEN_CLASSES, 31, np.random.default_rng(0)))
    assert msg == (f"partitioner.alphas[1]=1e-06: could not give each of 15 clients at least 1 examples in 1000 "
                   f"draws{GIVE_UP}")
    msg = _config_error(lambda: GroupsPartitioner([1e-6], min_size_fraction=2.0).split(
        TEN_CLASSES, 30, np.random.default_rng(0)))
    assert msg.startswith("partitioner.alphas[0]=1e-06: could not give each of 30 clients at least 13 examples")


class _FakeFlwrPartitioner:
    """Stands in for a flwr-datasets partitioner: records its seed, deals rows round-robin."""

    made: list = []

    def __init__(self, num_partitions, seed=None):
        self.num_partitions, self.seed = num_partitions, seed
        _FakeFlwrPartitioner.made.append(self)

    def load_partition(self, k):
        return {"row": self.dataset["row"][k::self.num_partitions]}


class _NoSeed(_FakeFlwrPartitioner):
    def __init__(self, num_partitions):
        super().__init__(num_partitions, seed="none taken")


class _PositionalSeed(_FakeFlwrPartitioner):
    def __init__(self, seed=7, /, *, num_partitions):
        super().__init__(num_partitions, seed)


def _flwr_split(factory, **kwargs):
    from functools import partial

    _FakeFlwrPartitioner.made.clear()
    parts = FlwrDatasetsPartitioner(factory if not kwargs else partial(factory, **kwargs)).split(
        np.arange(6) % 3, 2, np.random.default_rng(0))
    return parts, _FakeFlwrPartitioner.made[-1]


def test_flwr_adapter_seeds_from_the_run_unless_fixed():
    rng = np.random.default_rng(0)
    run_seed = int(rng.integers(2**31))
    shuffled = rng.permutation(6)
    parts, made = _flwr_split(_FakeFlwrPartitioner)
    assert made.seed == run_seed
    assert made.dataset["row"] == shuffled.tolist()  # rows handed over in a run-seeded order
    assert [p.tolist() for p in parts.client_indices] == [sorted(shuffled[0::2]), sorted(shuffled[1::2])]
    assert _flwr_split(_FakeFlwrPartitioner, seed=None)[1].seed == run_seed  # null: from the run
    fixed, made = _flwr_split(_FakeFlwrPartitioner, seed=3)
    assert made.seed == 3
    assert made.dataset["row"] == np.random.default_rng(0).permutation(6).tolist()  # no seed drawn first
    assert _flwr_split(_NoSeed)[1].seed == "none taken"
    assert _flwr_split(_PositionalSeed)[1].seed == 7
    unshuffled = FlwrDatasetsPartitioner(_FakeFlwrPartitioner, shuffle=False)
    assert FlwrDatasetsPartitioner(_FakeFlwrPartitioner).shuffle is True
    unshuffled.split(np.arange(6) % 3, 2, np.random.default_rng(0))
    assert _FakeFlwrPartitioner.made[-1].dataset["row"] == list(range(6))


def test_flwr_adapter_names_the_partitioner_in_its_error():
    from functools import partial

    class Refuses(_FakeFlwrPartitioner):
        def load_partition(self, k):
            raise ValueError("too few rows\nsecond line")

    for factory in (Refuses, partial(Refuses, seed=1)):
        msg = _config_error(lambda: FlwrDatasetsPartitioner(factory).split(np.arange(6) % 3, 2,
                                                                           np.random.default_rng(0)))
        assert msg == "partitioner: flwr-datasets Refuses: too few rows"

    class Maker:  # a callable object: no __name__, its type names it
        def __call__(self, num_partitions):
            return Refuses(num_partitions)

    msg = _config_error(lambda: FlwrDatasetsPartitioner(Maker()).split(np.arange(6) % 3, 2, np.random.default_rng(0)))
    assert msg == "partitioner: flwr-datasets Maker: too few rows"


class _Tagged(_FakeFlwrPartitioner):
    def __init__(self, tag, num_partitions, seed=None, colour=None):
        super().__init__(num_partitions, seed)
        self.tag, self.colour = tag, colour


def test_flwr_adapter_keeps_the_configs_other_arguments_and_copes_without_a_signature():
    from functools import partial

    _FakeFlwrPartitioner.made.clear()
    FlwrDatasetsPartitioner(partial(_Tagged, "t", seed=None, colour="red")).split(
        np.arange(6) % 3, 2, np.random.default_rng(0))
    made = _FakeFlwrPartitioner.made[-1]
    assert (made.tag, made.colour, made.seed) == ("t", "red", int(np.random.default_rng(0).integers(2**31)))

    class Opaque:  # inspect.signature cannot read it: called without a seed
        __signature__ = "not a signature"

        def __call__(self, num_partitions):
            return _FakeFlwrPartitioner(num_partitions, seed="none given")

    FlwrDatasetsPartitioner(Opaque()).split(np.arange(6) % 3, 2, np.random.default_rng(0))
    assert _FakeFlwrPartitioner.made[-1].seed == "none given"


# ---------------------------------------------------------------- (s) DivFL
from fedsim.selection.divfl import (  # noqa: E402
    DivFLSampler, facility_location_cost, facility_location_greedy, facility_location_greedy_from_distances,
)

LINE = np.array([[0.0], [1.0], [2.0], [3.0], [20.0]])  # the 1-median is client 2 (cost 22; client 1: 23)


def test_facility_location_cost_and_rectangular_greedy():
    d = np.array([[0.0, 4.0], [1.0, 2.0], [5.0, 0.5]])  # 3 clients to cover, 2 possible picks
    assert facility_location_cost(d, []) == float("inf")
    assert facility_location_cost(d, [0]) == 6.0
    assert facility_location_cost(d, [0, 1]) == 1.5
    assert facility_location_greedy_from_distances(d, 2) == [0, 1]  # column sums 6 < 6.5
    assert facility_location_greedy_from_distances(d, 1, candidates=np.array([1])) == [1]


def test_facility_location_greedy_random_ties_and_subsets():
    ties = {facility_location_greedy(np.zeros((4, 2)), 1, np.random.default_rng(s))[0] for s in range(20)}
    assert len(ties) > 1  # with rng, ties are broken at random
    assert facility_location_greedy(np.zeros((4, 2)), 1) == [0]
    exact = {facility_location_greedy(LINE, 1, np.random.default_rng(s))[0] for s in range(20)}
    assert exact == {2}
    tiny = {facility_location_greedy(LINE, 1, np.random.default_rng(s), subset_size=1)[0] for s in range(20)}
    assert len(tiny) > 2  # a pool of one: whichever was drawn


def test_stochastic_greedy_pool_is_drawn_without_replacement():
    """Pool of 4 of the 5: the best client is in it with probability 4/5 (with replacement: 0.59)."""
    hits = [facility_location_greedy(LINE, 1, np.random.default_rng(s), subset_size=4)[0] == 2 for s in range(600)]
    assert 0.74 < np.mean(hits) < 0.86


def test_divfl_settings_needs_and_messages():
    default = DivFLSampler()
    assert (default.variant, default.stochastic, default.subset_fraction) == ("ideal", False, 0.1)
    assert default.needs.probe_gradients is True and default.needs.full_updates is False
    stale = DivFLSampler("stale")
    assert stale.needs.full_updates is True and stale.needs.probe_gradients is False
    assert DivFLSampler(subset_fraction=1.0).subset_fraction == 1.0
    for kwargs, message in (({"variant": "x"}, "unknown DivFL variant 'x'"),
                            ({"subset_fraction": 0.0}, "subset_fraction must be in (0, 1]"),
                            ({"subset_fraction": 1.5}, "subset_fraction must be in (0, 1]")):
        with pytest.raises(ValueError) as error:
            DivFLSampler(**kwargs)
        assert str(error.value) == message


def _divfl(variant="ideal", seed=0, sizes=(10.0,) * 5, **kwargs):
    sampler = DivFLSampler(variant, **kwargs)
    sampler.setup(np.array(sizes), clients_per_round=1, num_rounds=10, rng=np.random.default_rng(seed))
    return sampler


def test_divfl_ideal_covers_the_probed_gradients():
    sampler = _divfl()
    assert sampler.probe_candidates(2, np.array([0, 1, 4])) == [0, 1, 4]
    assert _divfl("stale").probe_candidates(2, np.arange(5)) == []
    probes = {k: ProbeReport(k, 1.0, 10, gradient=LINE[k]) for k in range(5)}
    for seed in range(5):
        sampler = _divfl(seed=seed)
        assert sampler.select(2, np.arange(5), 1, probes) == [2]
        assert sampler.diagnostics() == {"fallback_random": False}
    only = {0: ProbeReport(0, 1.0, 10, gradient=np.zeros(1)), 3: ProbeReport(3, 1.0, 10, gradient=None),
            4: ProbeReport(4, 1.0, 10, gradient=np.ones(1))}
    assert _divfl().select(2, np.array([0, 3]), 1, only) == [0]  # 3 sent no gradient, 4 is not available


def test_divfl_ideal_falls_back_to_a_draw_by_data_size():
    picks = []
    for seed in range(300):
        sampler = _divfl(seed=seed, sizes=(5.0, 5.0, 5.0, 5.0, 80.0))
        picks.append(sampler.select(2, np.arange(5), 1, {0: ProbeReport(0, 1.0, 10, gradient=None)})[0])
        assert sampler.diagnostics() == {"fallback_random": True}
    assert 0.72 < np.mean(np.array(picks) == 4) < 0.88


def test_divfl_stochastic_subset_sizes():
    """subset = max(K, fraction * candidates): fraction 1 scans everyone (exact), 0.2 of 5 only K."""
    probes = {k: ProbeReport(k, 1.0, 10, gradient=LINE[k]) for k in range(5)}
    full = {_divfl(seed=s, stochastic=True, subset_fraction=1.0).select(2, np.arange(5), 1, probes)[0]
            for s in range(20)}
    assert full == {2}
    small = {_divfl(seed=s, stochastic=True, subset_fraction=0.2).select(2, np.arange(5), 1, probes)[0]
             for s in range(20)}
    assert len(small) > 2
    stale_picks = set()
    for s in range(20):
        sampler = _divfl("stale", seed=s, stochastic=True, subset_fraction=0.2)
        sampler.observe(1, [_report(k, [0.0], model_update=LINE[k]) for k in range(5)])
        stale_picks.add(sampler.select(2, np.arange(5), 1, {})[0])
    assert len(stale_picks) > 2


# ---------------------------------------------------------------- (t) FedCor
from fedsim.selection.fedcor import FedCorSampler, condition_on, fedcor_greedy, gp_objective  # noqa: E402


def test_condition_on_by_hand():
    sigma = np.array([[4.0, 2.0, 0.0], [2.0, 3.0, 1.0], [0.0, 1.0, 2.0]])
    np.testing.assert_allclose(condition_on(sigma, 0), [[0, 0, 0], [0, 2, 1], [0, 1, 2]])
    flat = np.array([[0.0, 0.0], [0.0, 1.0]])
    np.testing.assert_array_equal(condition_on(flat, 0), flat)  # nothing to learn from a zero variance


def test_fedcor_greedy_scores_and_spent_clients():
    """Score beta * (p . Sigma[:, k]) / sqrt(Sigma_kk); a client with no variance left is never preferred."""
    sigma = np.array([[1.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 0.0]])
    weights = np.array([0.5, 0.25, 0.25])
    # scores: 0.5 * 1 / 1 = 0.5 and 0.25 * 4 / 2 = 0.5 -> beta decides; client 2 has no variance
    assert fedcor_greedy(sigma, weights, np.array([1.0, 0.9, 1.0]), 1)[0] == [0]
    assert fedcor_greedy(sigma, weights, np.array([0.9, 1.0, 1.0]), 1)[0] == [1]
    assert fedcor_greedy(sigma, np.array([0.6, 0.2, 0.2]), np.ones(3), 1)[0] == [0]  # 0.6 vs 0.4
    assert fedcor_greedy(sigma, weights, np.ones(3), 3, candidates=np.array([2, 1]))[0] == [1, 2]


def _gp_by_hand(params, groups, n, dim, objective, ridge):
    emb = params[:-1].reshape(n, dim)
    s2 = np.exp(params[-1])
    total = 0.0
    for ids, y in groups:
        k = emb[ids] @ emb[ids].T + s2 * np.eye(len(ids))
        inv = np.linalg.inv(k)
        if objective == "marginal":
            sign, logdet = np.linalg.slogdet(k)
            for col in y.T:
                total += -0.5 * col @ inv @ col - 0.5 * logdet - 0.5 * len(ids) * np.log(2 * np.pi)
        else:  # leave-one-out: predictive mean y_i - alpha_i / c_i, variance 1 / c_i
            c = np.diag(inv)
            for col in y.T:
                alpha = inv @ col
                total += np.sum(0.5 * np.log(c) - 0.5 * alpha**2 / c - 0.5 * np.log(2 * np.pi))
    return -total + ridge * np.sum(emb**2)


@pytest.mark.parametrize("objective", ["loo", "marginal"])
def test_gp_objective_value_by_hand_and_ridge_gradient(objective):
    from scipy.optimize import check_grad

    rng = np.random.default_rng(0)
    n, dim = 5, 2
    groups = [(np.arange(n), rng.normal(size=(n, 3))), (np.array([0, 3]), rng.normal(size=(2, 2)))]
    x = np.concatenate([rng.normal(size=n * dim) * 0.7, [np.log(0.3)]])
    value, _ = gp_objective(x, groups, n, dim, objective, ridge=0.5)
    assert value == pytest.approx(_gp_by_hand(x, groups, n, dim, objective, 0.5), rel=1e-9)
    if objective == "loo":  # the defaults: leave-one-out, ridge 1e-3
        assert gp_objective(x, groups, n, dim)[0] == pytest.approx(_gp_by_hand(x, groups, n, dim, "loo", 1e-3))
    err = check_grad(lambda v: gp_objective(v, groups, n, dim, objective, ridge=5.0)[0],
                     lambda v: gp_objective(v, groups, n, dim, objective, ridge=5.0)[1], x)
    assert err < 1e-4 * np.linalg.norm(gp_objective(x, groups, n, dim, objective, ridge=5.0)[1])


def test_fedcor_settings_and_messages():
    s = FedCorSampler()
    assert (s.warmup_rounds, s.refit_every, s.beta_decay, s.embedding_dim, s.objective, s.history_length,
            s.fit_iterations) == (25, 5, 0.9, 15, "loo", 25, 100)
    assert FedCorSampler(objective="marginal", warmup_rounds=0, embedding_dim=1, history_length=1,
                         fit_iterations=1, beta_decay=1.0).objective == "marginal"
    for kwargs, message in (
        ({"objective": "x"}, "unknown objective 'x'"),
        ({"warmup_rounds": -1}, "sampler.warmup_rounds=-1: must be a whole number >= 0"),
        ({"embedding_dim": 0}, "sampler.embedding_dim=0: must be a whole number >= 1"),
        ({"history_length": 0}, "sampler.history_length=0: must be a whole number >= 1"),
        ({"fit_iterations": 0}, "sampler.fit_iterations=0: must be a whole number >= 1"),
        ({"beta_decay": 0.0}, "sampler.beta_decay=0.0: must be in (0, 1]"),
        ({"beta_decay": 1.5}, "sampler.beta_decay=1.5: must be in (0, 1]"),
    ):
        with pytest.raises(ValueError) as error:
            FedCorSampler(**kwargs)
        assert str(error.value) == message


def _fedcor(n=4, k=2, seed=0, **kwargs):
    sampler = FedCorSampler(**{"embedding_dim": 2, "fit_iterations": 30, **kwargs})
    sampler.setup(np.full(n, 10.0), k, 50, np.random.default_rng(seed))
    return sampler


def test_fedcor_schedule_edges():
    never = _fedcor(warmup_rounds=3, refit_every=0)
    assert [r for r in range(1, 9) if never.is_random_round(r)] == [1, 2, 3]
    every = _fedcor(warmup_rounds=2, refit_every=1)
    assert [r for r in range(1, 6) if every.is_random_round(r)] == [1, 2, 3, 4, 5]
    none = _fedcor(warmup_rounds=0, refit_every=3)
    assert none.probe_candidates(1, np.arange(4)) == [] and none.probe_candidates(3, np.arange(4)) == [0, 1, 2, 3]
    assert none.probe_candidates(4, np.arange(4)) == [0, 1, 2, 3]  # the round after a random one
    one = _fedcor(warmup_rounds=1, refit_every=0)
    assert one.probe_candidates(2, np.arange(4)) == [0, 1, 2, 3] and one.probe_candidates(3, np.arange(4)) == []


def _probes(losses):
    return {k: ProbeReport(k, float(v), 10) for k, v in enumerate(losses) if np.isfinite(v)}


def test_fedcor_loss_changes_come_from_random_rounds_only():
    sampler = _fedcor(warmup_rounds=2, refit_every=3)  # random rounds 1, 2, 5, 8
    fits = []
    sampler.fit = lambda: (fits.append(len(sampler.history)), setattr(sampler, "_new_data", False))  # recording only
    sampler.learn_from_probes(1, _probes([1.0, 2.0, 3.0, 4.0]))
    sampler.learn_from_probes(2, _probes([0.5, 1.0, 3.5, np.nan]))
    assert len(sampler.history) == 1
    np.testing.assert_allclose(sampler.history[0], [-0.5, -1.0, 0.5, np.nan])
    assert fits == []  # still warm-up: no fit
    sampler.learn_from_probes(4, _probes([1.0, 1.0, 1.0, 1.0]))
    sampler.learn_from_probes(5, _probes([2.0, 2.0, 2.0, 2.0]))  # round 4 was greedy: no change recorded
    assert len(sampler.history) == 1 and sorted(sampler.losses) == [4, 5]
    sampler.learn_from_probes(6, _probes([2.5, np.nan, np.nan, 2.0]))  # round 5 was random: two changes
    assert len(sampler.history) == 2 and sorted(sampler.losses) == [5, 6]
    np.testing.assert_allclose(sampler.history[1], [0.5, np.nan, np.nan, 0.0])
    sampler.learn_from_probes(8, _probes([1.0, 1.0, 1.0, 1.0]))
    sampler.learn_from_probes(9, _probes([1.0, np.nan, np.nan, np.nan]))  # one change only: not kept
    assert len(sampler.history) == 2 and fits == [1, 2]  # after warm-up, one fit per new change


def test_fedcor_fits_once_per_new_change_after_warmup():
    sampler = _fedcor(warmup_rounds=2, refit_every=0, beta_decay=0.5)
    sampler.learn_from_probes(1, _probes([1.0, 2.0, 3.0, 4.0]))
    sampler.learn_from_probes(2, _probes([0.0, 1.0, 4.0, 5.0]))
    assert sampler.sigma is None  # round 2 is still warm-up
    sampler.learn_from_probes(3, _probes([0.5, 1.5, 3.0, 4.5]))
    assert sampler.sigma is not None and len(sampler.history) == 2
    chosen = sampler.select(3, np.arange(4), 2, {})
    diag = sampler.diagnostics()
    assert diag["greedy"] is True and set(diag) == {"greedy", "fit_value", "fit_iterations", "noise_var",
                                                      "num_vectors"}
    assert diag["num_vectors"] == 2 and diag["fit_iterations"] <= 30
    expected_beta = np.ones(4)
    expected_beta[chosen] = 0.5
    np.testing.assert_allclose(sampler.beta, expected_beta)
    sampler.learn_from_probes(4, {})  # nothing new: no refit, the discounts stay
    np.testing.assert_allclose(sampler.beta, expected_beta)
    again = sampler.select(4, np.array(chosen), 2, {})  # the same two again: discounted twice
    assert sorted(again) == sorted(chosen)
    np.testing.assert_allclose(sampler.beta[chosen], [0.25, 0.25])


def test_fedcor_fit_learns_correlations_and_is_scale_and_offset_free():
    """Clients 0 and 1 move together, 2 against them; the fit standardises the changes, so a
    rescaled, per-client shifted history gives the same covariance."""
    rng = np.random.default_rng(3)
    z = rng.normal(size=12)
    noise = rng.normal(size=(12, 3)) * 0.05
    history = np.stack([z, z, -z, np.full(12, np.nan)], axis=1) + np.hstack([noise, np.zeros((12, 1))])
    history[0, 2] = np.nan  # one client seen once less
    history[5, 3] = 0.7  # and one seen once: its only change is its mean, centred to 0
    sigmas = []
    for scale, shift in ((1.0, 0.0), (7.0, np.array([1.0, -2.0, 3.0, 5.0]))):
        sampler = _fedcor(n=4, k=1, seed=0, warmup_rounds=0, fit_iterations=200)
        sampler.history = list(history * scale + shift)
        sampler.fit()
        sigmas.append(sampler.sigma)
        corr = sampler.sigma / np.sqrt(np.outer(np.diag(sampler.sigma), np.diag(sampler.sigma)))
        assert corr[0, 1] > 0.8 and corr[0, 2] < -0.8, corr
        noise_var = sampler._last_fit["noise_var"]
        assert noise_var < 0.5
        eig = np.linalg.eigvalsh(sampler.sigma - noise_var * np.eye(4))
        assert abs(eig.min()) < 1e-8 * eig.max()  # Sigma = E E^T + s^2 I with E of rank 2 < 4
    np.testing.assert_allclose(sigmas[0], sigmas[1], rtol=0.05)  # the same optimum, up to its tolerance


def test_fedcor_two_client_groups_count_and_random_rounds_draw_by_size():
    sampler = _fedcor(n=3, k=1, warmup_rounds=0, fit_iterations=100)
    z = np.random.default_rng(1).normal(size=10)
    sampler.history = [np.array([v, v, np.nan]) for v in z]  # only clients 0 and 1 ever seen together
    sampler.fit()
    assert sampler.sigma[0, 1] / np.sqrt(sampler.sigma[0, 0] * sampler.sigma[1, 1]) > 0.8
    picks = []
    for seed in range(300):
        s = FedCorSampler(warmup_rounds=5)
        s.setup(np.array([5.0, 5.0, 90.0]), 1, 10, np.random.default_rng(seed))
        picks.append(s.select(1, np.arange(3), 1, {})[0])
        assert s.diagnostics() == {"greedy": False}
    assert 0.84 < np.mean(np.array(picks) == 2) < 0.96
    late = FedCorSampler(warmup_rounds=1, refit_every=0)
    late.setup(np.full(3, 10.0), 1, 10, np.random.default_rng(0))
    late.select(4, np.arange(3), 1, {})  # greedy round but never fitted: random
    assert late.diagnostics() == {"greedy": False}
