"""Paired comparison of each sampler against a baseline sampler, pairing runs by seed.

For every (setting, metric, sampler != baseline), with the seeds both have (where the table
has a ``streams_version`` column, only the seeds at which both runs were drawn with the same
random streams: runs of fedsim before and after 0.2.0 under one seed saw different partitions,
initial models and client streams, so they are not a pair):

- per-seed differences ``sampler - baseline`` and their mean with a 95% t-interval
  (``scipy.stats.t``, n - 1 degrees of freedom);
- for rounds to target, censored runs (never reached) count as R. That is conservative: the
  true value is > R, so a censored sampler looks better than it is, and a censored baseline
  makes the sampler look worse than it is, never the other way. Also the ratio
  ``baseline / sampler`` (> 1: the sampler is faster) with its interval computed on the log
  scale (t-interval of log ratios, exponentiated);
- the exact sign-flip permutation p-value (two-sided): the share of all 2^n sign patterns of
  the differences whose |mean| is at least the observed |mean|. With n seeds the smallest
  possible p is 2 / 2^n (3 seeds: 0.25);
- Holm's step-down correction of those p-values across the samplers compared within one
  setting and metric;
- verdict: ``better`` / ``worse`` (taking the metric's direction into account: lower is
  better for rounds to target, higher for accuracy) only when the Holm-adjusted p is <=
  0.05 *and* the 95% t-interval excludes 0; otherwise ``not distinguishable (n=<k> seeds)``;
- seeds needed: the n at which a two-sided paired t-test (alpha 0.05, power 0.8, noncentral
  t) would detect a stated effect, given the observed std of the paired differences; once
  for a single comparison and once Bonferroni-corrected over the samplers compared (alpha /
  m, Holm's first and strictest step). Effects: ``1.5x`` is a ratio on rounds to target
  (tested on the log scale: log 1.5 against the std of log ratios); a plain number such as
  ``0.01`` is a difference in accuracy.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from fedsim.compare.load import seed_key

ALPHA = 0.05


@dataclass(frozen=True)
class Metric:
    """A per-run metric column to compare, its direction and a readable name."""

    column: str
    name: str
    lower_is_better: bool
    censored_flag: str | None = None  # column saying whether the value was observed (rounds to target)


METRICS = [
    Metric("rtt_raw", "rounds to target (raw)", True, "reached_raw"),
    Metric("rtt_smooth", "rounds to target (smoothed)", True, "reached_smooth"),
    Metric("mean_acc", "mean accuracy (AUC/R)", False),
    Metric("last_quarter_acc", "last-quarter accuracy", False),
    Metric("final_window_acc", "final-window accuracy", False),
    Metric("volatility", "volatility", True),
]


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided t confidence interval (NaN bounds with fewer than 2 values)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return (np.nan, np.nan, np.nan)
    mean = float(x.mean())
    if x.size < 2:
        return (mean, np.nan, np.nan)
    half = stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    return (mean, mean - half, mean + half)


def sign_flip_p(diffs: Sequence[float]) -> float:
    """Exact two-sided sign-flip permutation p-value of the mean of paired differences.

    NaN when there are none or one is not finite (a metric missing for a seed has no p)."""
    d = np.asarray(diffs, dtype=float)
    if d.size == 0 or not np.isfinite(d).all():
        return np.nan
    observed = abs(d.mean())
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=d.size)))
    means = np.abs((signs * d).mean(axis=1))
    return float(np.mean(means >= observed - 1e-12 * max(1.0, observed)))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (NaNs stay NaN and are not counted)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(~np.isnan(p))
    m = idx.size
    running = 0.0
    for rank, i in enumerate(idx[np.argsort(p[idx], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


def paired_t_power(n: int, effect: float, sd: float, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t-test with n pairs for a true mean difference ``effect``."""
    if n < 2:
        return 0.0
    if sd <= 0:
        return 1.0
    df = n - 1
    crit = stats.t.ppf(1 - alpha / 2, df)
    nc = abs(effect) / sd * math.sqrt(n)
    return float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))


def seeds_needed(effect: float, sd: float, alpha: float = ALPHA, power: float = 0.8, n_max: int = 100_000) -> float:
    """Smallest n (>= 2) whose paired t-test power reaches ``power``; NaN if sd is NaN,
    inf if more than ``n_max``."""
    if not np.isfinite(sd) or effect == 0:
        return np.nan
    n = 2
    while paired_t_power(n, effect, sd, alpha) < power:
        n += 1 if n < 200 else max(1, n // 50)
        if n > n_max:
            return math.inf
    return float(n)


def parse_effect(text: str) -> tuple[str, float]:
    """``"1.5x"`` -> ("ratio", 1.5) for rounds to target; ``"0.01"`` -> ("difference", 0.01) for accuracy."""
    text = str(text).strip().lower()
    if text.endswith("x"):
        value = float(text[:-1])
        if value <= 0 or value == 1:
            raise ValueError(f"a ratio effect must be > 0 and != 1, got {text}")
        return "ratio", value
    value = float(text)
    if value == 0:
        raise ValueError("an effect of 0 cannot be detected")
    return "difference", value


def same_streams(mine: pd.DataFrame, base: pd.DataFrame, seed) -> bool:
    """Whether the two runs at ``seed`` (rows indexed by seed) were drawn with the same random
    streams; true when the tables do not say (no ``streams_version`` column)."""
    if "streams_version" not in mine.columns or "streams_version" not in base.columns:
        return True
    return mine.at[seed, "streams_version"] == base.at[seed, "streams_version"]


def paired(per_run_table: pd.DataFrame, baseline: str = "random", metrics: Sequence[Metric] = METRICS,
           effects: Sequence[str] = ("1.5x", "0.01"), confidence: float = 0.95) -> pd.DataFrame:
    """The paired-comparison table (one row per setting x metric x sampler), see module docstring."""
    parsed = [parse_effect(e) for e in effects]
    ratio_effects = [v for kind, v in parsed if kind == "ratio"]
    diff_effects = [v for kind, v in parsed if kind == "difference"]
    rows = []
    for setting, g in per_run_table.groupby("setting", sort=False):
        base = g[g["sampler"] == baseline].drop_duplicates("seed").set_index("seed")
        if base.empty:
            continue
        others = [s for s in dict.fromkeys(g["sampler"]) if s != baseline]
        m = len(others)
        for metric in metrics:
            block = []
            for sampler in others:
                mine = g[g["sampler"] == sampler].drop_duplicates("seed").set_index("seed")
                seeds = sorted((s for s in mine.index if s in base.index and same_streams(mine, base, s)),
                               key=seed_key)
                if not seeds:
                    continue
                x = mine.loc[seeds, metric.column].to_numpy(dtype=float)
                b = base.loc[seeds, metric.column].to_numpy(dtype=float)
                diffs = x - b
                mean, lo, hi = t_interval(diffs, confidence)
                sd = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else np.nan
                row = {
                    "setting": setting, "metric": metric.name, "column": metric.column, "sampler": sampler,
                    "baseline": baseline, "n_pairs": len(seeds), "seeds": " ".join(map(str, seeds)),
                    "sampler_values": " ".join(_fmt(v) for v in x), "baseline_values": " ".join(_fmt(v) for v in b),
                    "diffs": " ".join(_fmt(v) for v in diffs),
                    "mean_diff": mean, "ci_low": lo, "ci_high": hi, "sd_diff": sd,
                    "ratio": np.nan, "ratio_low": np.nan, "ratio_high": np.nan,
                    "censored_sampler": 0, "censored_baseline": 0,
                    "p_sign_flip": sign_flip_p(diffs), "lower_is_better": metric.lower_is_better,
                }
                if metric.censored_flag:
                    row["censored_sampler"] = int((~mine.loc[seeds, metric.censored_flag].astype(bool)).sum())
                    row["censored_baseline"] = int((~base.loc[seeds, metric.censored_flag].astype(bool)).sum())
                    logs = np.log(b) - np.log(x)
                    lmean, llo, lhi = t_interval(logs, confidence)
                    row.update(ratio=math.exp(lmean), ratio_low=math.exp(llo) if np.isfinite(llo) else np.nan,
                               ratio_high=math.exp(lhi) if np.isfinite(lhi) else np.nan)
                    lsd = float(np.std(logs, ddof=1)) if len(logs) > 1 else np.nan
                    for e in ratio_effects:
                        row[f"seeds_needed_{e:g}x"] = seeds_needed(math.log(e), lsd)
                        row[f"seeds_needed_{e:g}x_holm{m}"] = seeds_needed(math.log(e), lsd, alpha=ALPHA / m)
                else:
                    for e in diff_effects:
                        row[f"seeds_needed_{e:g}"] = seeds_needed(e, sd)
                        row[f"seeds_needed_{e:g}_holm{m}"] = seeds_needed(e, sd, alpha=ALPHA / m)
                block.append(row)
            for row, adj in zip(block, holm([r["p_sign_flip"] for r in block])):
                row["p_holm"] = adj
                row["verdict"] = verdict(row["mean_diff"], row["ci_low"], row["ci_high"], adj,
                                         metric.lower_is_better, row["n_pairs"])
            rows.extend(block)
    table = pd.DataFrame(rows)
    if not table.empty:
        first = ["setting", "metric", "sampler", "baseline", "n_pairs", "seeds", "sampler_values", "baseline_values",
                 "diffs", "mean_diff", "ci_low", "ci_high", "ratio", "ratio_low", "ratio_high", "p_sign_flip",
                 "p_holm", "verdict"]
        table = table[first + [c for c in table.columns if c not in first]]
    return table


def verdict(mean: float, low: float, high: float, p_adjusted: float, lower_is_better: bool, n: int,
            alpha: float = ALPHA) -> str:
    """``better`` / ``worse`` than the baseline when the adjusted p <= alpha and the interval
    excludes 0; else ``not distinguishable (n=<n> seeds)``."""
    if np.isfinite(low) and np.isfinite(high) and p_adjusted <= alpha and (low > 0 or high < 0):
        sampler_higher = mean > 0
        return "better" if sampler_higher != lower_is_better else "worse"
    return f"not distinguishable (n={n} seeds)"


def _fmt(value: float) -> str:
    return f"{value:g}" if float(value).is_integer() else f"{value:.4f}"
