"""Focused tests that kill mutants of the comparison statistics (fedsim/compare/stats.py).

They complement tests/test_compare_stats.py (hand-computed values) with the boundaries,
defaults, tolerances, messages and table columns a single-token mutant changes. See
docs/mutation.md for the run that found them.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from fedsim.compare.stats import (
    Metric, holm, paired, paired_t_power, parse_effect, seeds_needed, sign_flip_p, t_interval, verdict,
)

RTT = Metric("rtt_raw", "rounds to target (raw)", True, "reached_raw")
ACC = Metric("mean_acc", "mean acc", False)


# ---------------------------------------------------------------- t interval, sign flip, Holm
def test_t_interval_sizes_and_missing_values():
    assert t_interval([5.0])[0] == 5.0 and math.isnan(t_interval([5.0])[2])
    assert all(math.isnan(v) for v in t_interval([]))
    mean, low, high = t_interval([1, 3])  # mean 2, sd sqrt 2, t(0.975, 1) = 12.706205
    assert mean == 2.0 and high == pytest.approx(2 + 12.706205, abs=1e-5) and low == pytest.approx(2 - 12.706205, abs=1e-5)
    assert all(math.isnan(v) for v in t_interval([1.0, None, 3.0]))  # None is read as NaN


def test_sign_flip_p_sizes_and_tolerance():
    assert sign_flip_p([2.0]) == 1.0  # one difference: both signs give the same |mean|
    assert math.isnan(sign_flip_p([]))
    # Ties are counted within 1e-12 relative to max(1, |mean|):
    assert sign_flip_p([1.0, 1.5e-12]) == 0.5  # the flipped mean is 1.5e-12 below: not a tie
    assert sign_flip_p([1e6, 1e-7]) == 1.0  # 1e-7 below 5e5: a tie at that scale


def test_holm_caps_at_one_and_reads_none_as_nan():
    assert holm([0.6, 0.7]) == [1.0, 1.0]
    out = holm([0.01, None, 0.04])
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.04)


# ---------------------------------------------------------------- power and seeds needed
def test_paired_t_power_edges():
    assert paired_t_power(1, 5.0, 1.0) == 0.0
    assert paired_t_power(0, 5.0, 1.0) == 0.0
    assert paired_t_power(2, 100.0, 1.0) > 0.99  # two pairs suffice for a huge effect
    assert paired_t_power(5, 1.0, 0.0) == 1.0  # no noise: always detected
    assert paired_t_power(10, 0.0, 1.0) == pytest.approx(0.05)  # no effect: the test's size, both tails


def test_seeds_needed_search():
    assert seeds_needed(100.0, 1.0) == 2.0
    assert seeds_needed(1.0, 0.0, power=1.0) == 2.0  # power exactly reached counts
    assert seeds_needed(1.0, 1.0, n_max=10) == 10.0  # n_max itself is allowed
    assert seeds_needed(1.0, 1.0, n_max=9) == math.inf
    assert math.isnan(seeds_needed(0.0, 1.0))
    # Step 1 up to 200: the exact smallest n (odd here); above 200 steps of n // 50.
    assert seeds_needed(0.22, 1.0) == 165.0
    assert seeds_needed(0.2, 1.0) == 199.0
    assert seeds_needed(0.15, 1.0) == 357.0  # 200 204 208 ... 350 357 (the exact smallest is 351)
    assert seeds_needed(0.1, 1.0) == 788.0
    assert seeds_needed(0.001, 1.0) == math.inf  # beyond the default n_max of 100,000


def test_parse_effect_bounds_and_messages():
    assert parse_effect("0.5x") == ("ratio", 0.5)
    assert parse_effect(" 2X ") == ("ratio", 2.0)
    assert parse_effect("1") == ("difference", 1.0)
    for text in ("0x", "-2x", "1x"):
        with pytest.raises(ValueError) as error:
            parse_effect(text)
        assert str(error.value) == f"a ratio effect must be > 0 and != 1, got {text}"
    with pytest.raises(ValueError) as error:
        parse_effect("0")
    assert str(error.value) == "an effect of 0 cannot be detected"


# ---------------------------------------------------------------- verdict boundaries
def test_verdict_boundaries():
    assert verdict(0.02, 0.01, 0.03, 0.05, lower_is_better=False, n=8) == "better"  # p == alpha counts
    assert verdict(0.02, 0.0, 0.03, 0.01, lower_is_better=False, n=8) == "not distinguishable (n=8 seeds)"
    assert verdict(-0.02, -0.03, 0.0, 0.01, lower_is_better=False, n=8) == "not distinguishable (n=8 seeds)"
    assert verdict(-0.02, -0.03, -0.01, 0.01, lower_is_better=False, n=8) == "worse"


# ---------------------------------------------------------------- the paired table
def _table(rows, setting="s") -> pd.DataFrame:
    return pd.DataFrame(
        [{"setting": setting, "sampler": s, "seed": k, "rtt_raw": t, "reached_raw": ok, "mean_acc": a}
         for s, k, t, ok, a in rows])


SIX = [("random", k, 100 + 10 * k, True, 0.5) for k in range(6)] + \
      [("hics", k, 60 + 5 * k + (k % 2), k != 5, 0.6 + 0.01 * k) for k in range(6)]


def test_paired_defaults_columns_and_significant_verdicts():
    """Default baseline "random"; six same-signed pairs: sign-flip p 2/64, both directions judged."""
    out = paired(_table(SIX), metrics=[RTT, ACC], effects=["1.5x", "0.01"])
    first = ["setting", "metric", "sampler", "baseline", "n_pairs", "seeds", "sampler_values", "baseline_values",
             "diffs", "mean_diff", "ci_low", "ci_high", "ratio", "ratio_low", "ratio_high", "p_sign_flip",
             "p_holm", "verdict"]
    assert list(out.columns[: len(first)]) == first
    assert set(out.columns) == set(first) | {"column", "sd_diff", "censored_sampler", "censored_baseline",
                                             "lower_is_better", "seeds_needed_1.5x", "seeds_needed_1.5x_holm1",
                                             "seeds_needed_0.01", "seeds_needed_0.01_holm1"}
    rtt, acc = out.iloc[0], out.iloc[1]
    assert rtt["baseline"] == "random" and rtt["p_sign_flip"] == pytest.approx(2 / 64)
    assert rtt["verdict"] == "better"  # fewer rounds
    assert acc["verdict"] == "better"  # more accuracy
    assert rtt["lower_is_better"] and not acc["lower_is_better"]
    assert rtt["censored_sampler"] == 1 and rtt["censored_baseline"] == 0
    assert acc["censored_sampler"] == 0 and acc["censored_baseline"] == 0
    assert math.isnan(acc["ratio"]) and math.isnan(acc["ratio_low"]) and math.isnan(acc["ratio_high"])
    x = np.array([60 + 5 * k + (k % 2) for k in range(6)], float)
    b = np.array([100 + 10 * k for k in range(6)], float)
    assert rtt["sampler_values"] == " ".join(f"{v:g}" for v in x)
    assert rtt["baseline_values"] == " ".join(f"{v:g}" for v in b)
    assert rtt["sd_diff"] == pytest.approx(np.std(x - b, ddof=1))
    logs = np.log(b) - np.log(x)
    half = 2.5705818 * logs.std(ddof=1) / math.sqrt(6)  # t(0.975, 5)
    assert rtt["ratio"] == pytest.approx(math.exp(logs.mean()))
    assert rtt["ratio_low"] == pytest.approx(math.exp(logs.mean() - half), rel=1e-6)
    assert rtt["ratio_high"] == pytest.approx(math.exp(logs.mean() + half), rel=1e-6)
    lsd = float(np.std(logs, ddof=1))
    assert rtt["seeds_needed_1.5x"] == seeds_needed(math.log(1.5), lsd)
    assert rtt["seeds_needed_1.5x_holm1"] == seeds_needed(math.log(1.5), lsd, alpha=0.05)
    worse = paired(_table([(s if s == "hics" else "random", k, t, ok, a) for s, k, t, ok, a in SIX]),
                   baseline="hics", metrics=[RTT])
    assert worse.iloc[0]["sampler"] == "random" and worse.iloc[0]["verdict"] == "worse"


def test_paired_holm_columns_use_alpha_over_m_and_a_given_confidence():
    rows = [("random", k, 100 + 7 * k, True, 0.5 + 0.01 * k) for k in range(4)]
    rows += [("hics", k, t, True, 0.52 + 0.02 * k) for k, t in enumerate([60, 150, 80, 140])]
    rows += [("powd", k, 110 - 2 * k, True, 0.5 - 0.01 * k * k) for k in range(4)]
    out = paired(_table(rows), "random", metrics=[RTT, ACC], effects=["1.5x", "0.01"], confidence=0.8)
    rtt = out[(out["sampler"] == "hics") & (out["column"] == "rtt_raw")].iloc[0]
    x = np.array([60, 150, 80, 140], float)
    b = np.array([100 + 7 * k for k in range(4)], float)
    lsd = float(np.std(np.log(b) - np.log(x), ddof=1))
    assert rtt["seeds_needed_1.5x_holm2"] == seeds_needed(math.log(1.5), lsd, alpha=0.025)
    assert (rtt["seeds_needed_1.5x"], rtt["seeds_needed_1.5x_holm2"]) == (10.0, 13.0)
    mean, low, high = t_interval(x - b, 0.8)
    assert (rtt["ci_low"], rtt["ci_high"]) == pytest.approx((low, high))
    lmean, llow, lhigh = t_interval(np.log(b) - np.log(x), 0.8)
    assert (rtt["ratio_low"], rtt["ratio_high"]) == pytest.approx((math.exp(llow), math.exp(lhigh)))


def test_paired_two_pairs_have_spreads_one_pair_warns_nothing():
    rows = [("random", 0, 100, True, 0.5), ("random", 1, 120, True, 0.6), ("hics", 0, 80, True, 0.7),
            ("hics", 1, 90, True, 0.65)]
    out = paired(_table(rows), metrics=[RTT, ACC])
    rtt = out.iloc[0]
    assert rtt["sd_diff"] == pytest.approx(np.std([-20, -30], ddof=1))
    assert np.isfinite(rtt["seeds_needed_1.5x"])
    one = [("random", 0, 100, False, 0.5), ("hics", 0, 80, True, 0.7)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no std of a single value is taken
        single = paired(_table(one), metrics=[RTT, ACC])
    assert math.isnan(single.iloc[0]["sd_diff"]) and math.isnan(single.iloc[0]["seeds_needed_1.5x"])
    assert single.iloc[0]["censored_baseline"] == 1 and single.iloc[0]["censored_sampler"] == 0
    assert math.isnan(single.iloc[0]["ratio_low"]) and single.iloc[0]["ratio"] == pytest.approx(100 / 80)


def test_paired_settings_samplers_and_duplicate_seeds():
    """Settings keep their order; a setting without the baseline or a sampler without common
    seeds is skipped (not the rest); a repeated seed counts once (its first row); seeds sort
    numerically."""
    no_base = _table([("hics", 0, 50, True, 0.5)], setting="b-no-baseline")
    later = _table([("random", 0, 100, True, 0.5), ("random", 0, 999, True, 0.1), ("random", 10, 90, True, 0.5),
                    ("random", 2, 95, True, 0.5), ("powd", 7, 70, True, 0.5), ("random", "x", 60, True, 0.5),
                    ("hics", 10, 80, True, 0.6), ("hics", 2, 85, True, 0.6), ("hics", 0, 75, True, 0.6),
                    ("hics", 2, 1, True, 0.1), ("hics", "x", 50, True, 0.6)],
                   setting="a-later")
    out = paired(pd.concat([no_base, later, _table(SIX, setting="0-third")]), metrics=[RTT])
    assert list(out["setting"]) == ["a-later", "0-third"]
    row = out.iloc[0]
    assert row["sampler"] == "hics" and row["seeds"] == "0 2 10 x" and row["n_pairs"] == 4  # numbers, then text
    assert row["baseline_values"] == "100 95 90 60" and row["diffs"] == "-25 -10 -10 -10"


def test_paired_reads_object_columns_as_floats_and_empty_gives_empty():
    table = _table([("random", 0, 100, True, 0.5), ("random", 1, 120, True, 0.6), ("hics", 0, 80, True, 0.7),
                    ("hics", 1, 90, True, 0.65)])
    table["mean_acc"] = table["mean_acc"].astype(object)
    table["rtt_raw"] = pd.Series([100, 120, 80, None], dtype=object)
    out = paired(table, metrics=[RTT, ACC])
    assert out.iloc[1]["diffs"] == "0.2000 0.0500"
    assert out.iloc[0]["diffs"] == "-20 nan"
    empty = paired(_table([("hics", 0, 80, True, 0.7)]), metrics=[RTT])
    assert empty.empty
