"""fedsim.compare.stats: hand-computed paired statistics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fedsim.compare.stats import (
    holm, paired, paired_t_power, parse_effect, seeds_needed, sign_flip_p, t_interval, verdict,
)


def test_t_interval_by_hand() -> None:
    # mean 2, sd 1, n 3: half width = t(0.975, 2) / sqrt(3) = 4.302653 / 1.732051 = 2.484138
    mean, low, high = t_interval([1, 2, 3])
    assert mean == 2.0
    assert low == pytest.approx(2 - 2.484138, abs=1e-6)
    assert high == pytest.approx(2 + 2.484138, abs=1e-6)
    assert math.isnan(t_interval([5.0])[1])


def test_sign_flip_exact() -> None:
    assert sign_flip_p([1, 2, 3]) == 0.25  # only +++ and --- reach |mean| 2: 2 of 8
    assert sign_flip_p([4, 1, 9]) == 0.25  # the same for any 3 same-signed differences
    # sums over the 8 patterns of (1, 2, 3): 6 0 2 -4 4 -2 0 -6; |sum| >= |1 - 2 + 3| = 2: 6 of 8
    assert sign_flip_p([1, -2, 3]) == 0.75
    assert sign_flip_p([1, 1, 1, 1]) == 0.125
    assert sign_flip_p([0, 0, 0]) == 1.0


def test_holm_by_hand() -> None:
    # sorted 0.01 0.03 0.04 0.2 times 4 3 2 1 = 0.04 0.09 0.08 0.2, made monotone: 0.04 0.09 0.09 0.2
    assert holm([0.01, 0.04, 0.03, 0.2]) == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])
    out = holm([0.01, float("nan"), 0.04])  # NaN not counted: m = 2
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.04)


def test_seeds_needed_matches_power_tables() -> None:
    # paired t-test, two-sided alpha 0.05, power 0.8 (G*Power): d = 1 -> 10 pairs, d = 0.5 -> 34
    assert seeds_needed(1.0, 1.0) == 10
    assert seeds_needed(0.5, 1.0) == 34
    assert seeds_needed(0.05, 0.1) == 34  # only effect / sd matters
    assert paired_t_power(10, 1.0, 1.0) == pytest.approx(0.8031, abs=5e-4)
    assert paired_t_power(9, 1.0, 1.0) < 0.8
    # Bonferroni over 5 comparisons needs more seeds, and each n is the smallest reaching 0.8
    n5 = seeds_needed(1.0, 1.0, alpha=0.01)
    assert n5 > 10
    assert paired_t_power(int(n5), 1.0, 1.0, 0.01) >= 0.8 > paired_t_power(int(n5) - 1, 1.0, 1.0, 0.01)
    assert math.isnan(seeds_needed(1.0, float("nan")))


def test_parse_effect() -> None:
    assert parse_effect("1.5x") == ("ratio", 1.5)
    assert parse_effect("0.01") == ("difference", 0.01)
    with pytest.raises(ValueError):
        parse_effect("1x")


def test_verdict_is_direction_aware() -> None:
    assert verdict(-10, -15, -5, 0.01, lower_is_better=True, n=8) == "better"  # fewer rounds
    assert verdict(10, 5, 15, 0.01, lower_is_better=True, n=8) == "worse"
    assert verdict(0.02, 0.01, 0.03, 0.01, lower_is_better=False, n=8) == "better"  # more accuracy
    # an interval that excludes 0 is not enough while the sign-flip p is 0.25
    assert verdict(0.02, 0.01, 0.03, 0.25, lower_is_better=False, n=3) == "not distinguishable (n=3 seeds)"
    assert verdict(0.02, -0.01, 0.03, 0.01, lower_is_better=False, n=8) == "not distinguishable (n=8 seeds)"


def _per_run(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"setting": "s", "sampler": s, "seed": k, "R": 200, "rtt_raw": t, "reached_raw": ok, "mean_acc": a}
         for s, k, t, ok, a in rows])


def test_paired_table_by_hand() -> None:
    table = _per_run([
        ("random", 0, 100, True, 0.60), ("random", 1, 120, True, 0.62), ("random", 2, 140, True, 0.64),
        ("hics", 0, 80, True, 0.61), ("hics", 1, 90, True, 0.64), ("hics", 2, 200, False, 0.67),  # censored at R
        ("powd", 2, 150, True, 0.50), ("powd", 0, 160, True, 0.55),  # seed 1 missing: 2 pairs
    ])
    from fedsim.compare.stats import Metric

    metrics = [Metric("rtt_raw", "rounds to target (raw)", True, "reached_raw"), Metric("mean_acc", "mean acc", False)]
    out = paired(table, "random", metrics=metrics, effects=["1.5x", "0.01"])
    hics = out[(out["sampler"] == "hics") & (out["column"] == "rtt_raw")].iloc[0]
    assert hics["diffs"] == "-20 -30 60"  # 80-100, 90-120, 200-140 (censored counted as R)
    assert hics["mean_diff"] == pytest.approx(10 / 3)
    assert hics["censored_sampler"] == 1 and hics["censored_baseline"] == 0
    logs = np.log([100 / 80, 120 / 90, 140 / 200])
    assert hics["ratio"] == pytest.approx(math.exp(logs.mean()))
    half = 4.302653 * logs.std(ddof=1) / math.sqrt(3)
    assert hics["ratio_low"] == pytest.approx(math.exp(logs.mean() - half), rel=1e-6)
    assert hics["p_sign_flip"] == 1.0  # |sum| 10: -20-30+60=10; every pattern has |sum| >= 10
    powd = out[(out["sampler"] == "powd") & (out["column"] == "rtt_raw")].iloc[0]
    assert powd["n_pairs"] == 2 and powd["seeds"] == "0 2" and powd["diffs"] == "60 10"
    assert powd["p_sign_flip"] == 0.5
    # Holm across the two samplers of this metric: p 1.0 and 0.5 -> 1.0 and 1.0
    assert list(out[out["column"] == "rtt_raw"]["p_holm"]) == [1.0, 1.0]
    acc = out[(out["sampler"] == "hics") & (out["column"] == "mean_acc")].iloc[0]
    assert acc["diffs"] == "0.0100 0.0200 0.0300" and acc["p_sign_flip"] == 0.25
    assert acc["verdict"] == "not distinguishable (n=3 seeds)"
    # seeds needed for +0.01 with sd of the paired differences 0.01 (d = 1): 10 alone, more with Holm over 2
    assert acc["seeds_needed_0.01"] == 10
    assert acc["seeds_needed_0.01_holm2"] == seeds_needed(0.01, 0.01, alpha=0.025) > 10
    assert "seeds_needed_1.5x" in out.columns and math.isnan(acc["ratio"])
