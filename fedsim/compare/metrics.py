"""Per-run metrics and their per-sampler summaries.

Definitions (all over *evaluated* rounds, i.e. rows with an accuracy):

- rounds to target, raw: the first evaluated round with accuracy >= target. Smoothed: the
  first evaluated round whose trailing mean over the last ``smooth`` evaluated rounds is >=
  target (first defined once ``smooth`` evaluations exist). A run that never gets there is
  *censored* at R (the run's ``num_rounds``): recorded as R with ``reached=False``, shown as
  ``>R``, never dropped.
- per-sampler summaries of rounds to target: the Kaplan-Meier median (smallest round at
  which the KM survival ``P(not yet reached)`` is <= 0.5; ``>R`` if it never drops that far)
  and the restricted mean (area under the KM survival curve from 0 to R; when every run is
  censored only at R this equals the plain mean with censored runs counted as R).
- mean accuracy: mean over all evaluated rounds (= area under the accuracy curve / R when
  every round is evaluated).
- last-quarter mean: mean accuracy over evaluated rounds after 0.75 R.
- best: the highest evaluated accuracy.
- final-window mean: mean over the last ``final_window`` evaluated rounds (default 10), in
  place of the single final round.
- volatility: mean |accuracy change| between consecutive evaluated rounds over the second
  half of the evaluated rounds (where the curve has mostly levelled off, so the trend does
  not count as noise).
- selection health per window of ``window`` rounds: distinct clients picked; repeat rate
  (share of a round's clients also picked the round before, rounds with a previous round);
  top-5 share (share of the window's selection slots taken by its 5 most-picked clients).
- group shares: share of all selections going to each heterogeneity group of
  ``partition.json``, labelled by the group's alpha (``alpha=0.001``).
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from fedsim.compare.load import Study, group_alpha_labels, seed_key

_EPS = 1e-12


def rounds_to_target(rounds: Sequence[int], accuracy: Sequence[float], target: float, smooth: int = 1,
                     horizon: int | None = None) -> tuple[int, bool]:
    """(round, reached): first evaluated round whose trailing ``smooth``-round mean is >= target;
    ``(horizon, False)`` if never (censored; horizon defaults to the last round)."""
    if smooth < 1:
        raise ValueError(f"smooth must be >= 1, got {smooth}")
    r = np.asarray(rounds, dtype=float)
    a = np.asarray(accuracy, dtype=float)
    keep = ~np.isnan(a)
    r, a = r[keep], a[keep]
    if horizon is None:
        horizon = int(r.max()) if r.size else 0
    if a.size >= smooth:
        window = np.convolve(a, np.ones(smooth) / smooth, mode="valid")
        hits = np.nonzero(window >= target - _EPS)[0]
        if hits.size:
            return int(r[hits[0] + smooth - 1]), True
    return int(horizon), False


def km_summary(times: Sequence[float], reached: Sequence[bool], horizon: float) -> dict[str, float]:
    """Kaplan-Meier median and restricted mean (area under survival up to ``horizon``) of
    right-censored rounds to target (``scipy.stats.ecdf`` on ``CensoredData``).

    ``median`` is NaN when survival never drops to 0.5 (report as ``>horizon``)."""
    t = np.asarray(times, dtype=float)
    ok = np.asarray(reached, dtype=bool)
    if t.size == 0:
        return {"median": np.nan, "restricted_mean": np.nan}
    if not ok.any():
        return {"median": np.nan, "restricted_mean": float(horizon)}
    sf = stats.ecdf(stats.CensoredData(uncensored=t[ok], right=t[~ok])).sf
    q, p = np.asarray(sf.quantiles, dtype=float), np.asarray(sf.probabilities, dtype=float)
    below = np.nonzero(p <= 0.5 + _EPS)[0]
    median = float(q[below[0]]) if below.size else np.nan
    # S(t) = 1 on [0, q0), p_i on [q_i, q_{i+1}); integrate up to the horizon
    edges = np.clip(np.concatenate([[0.0], q, [horizon]]), 0.0, horizon)
    heights = np.concatenate([[1.0], p])
    return {"median": median, "restricted_mean": float(np.sum(np.diff(edges) * heights))}


def _volatility(a: np.ndarray) -> float:
    half = a[len(a) // 2:]
    return float(np.mean(np.abs(np.diff(half)))) if half.size > 1 else np.nan


def per_run(study: Study, target: float = 0.75, smooth: int = 5, final_window: int = 10) -> pd.DataFrame:
    """One row per run: rounds to target (raw and smoothed, with reached flags), accuracy
    level metrics and volatility (see the module docstring)."""
    out = []
    horizons = study.runs.set_index("run")["num_rounds"]
    for run, frame in study.rounds.groupby("run", sort=False):
        ev = frame[frame["accuracy"].notna()] if "accuracy" in frame else frame.iloc[:0]
        r = ev["round"].to_numpy(dtype=float)
        a = ev["accuracy"].to_numpy(dtype=float) if "accuracy" in ev else np.array([])
        R = int(horizons[run])
        raw, raw_ok = rounds_to_target(r, a, target, 1, R)
        smo, smo_ok = rounds_to_target(r, a, target, smooth, R)
        late = a[r > 0.75 * R]
        out.append({
            "run": run, "R": R,
            "rtt_raw": raw, "reached_raw": raw_ok,
            "rtt_smooth": smo, "reached_smooth": smo_ok,
            "mean_acc": float(a.mean()) if a.size else np.nan,
            "last_quarter_acc": float(late.mean()) if late.size else np.nan,
            "best_acc": float(a.max()) if a.size else np.nan,
            "final_window_acc": float(a[-final_window:].mean()) if a.size else np.nan,
            "volatility": _volatility(a),
        })
    metrics = pd.DataFrame(out)
    ids = study.runs[["run", "sampler", "setting", "seed", "finished"]]
    return ids.merge(metrics, on="run", how="inner")


def _per_seed(values: pd.Series, reached: pd.Series) -> str:
    return ", ".join(str(int(v)) if ok else f">{int(v)}" for v, ok in zip(values, reached))


def summarize(per_run_table: pd.DataFrame) -> pd.DataFrame:
    """One row per (setting, sampler): seeds, per-seed rounds to target, KM median and
    restricted mean (raw and smoothed), and mean ± std (ddof=1) over seeds of the accuracy
    metrics and volatility."""
    rows = []
    for (setting, sampler), g in per_run_table.groupby(["setting", "sampler"], sort=False):
        g = g.sort_values("seed", key=lambda s: s.map(seed_key))
        R = int(g["R"].max())
        row = {"setting": setting, "sampler": sampler, "n_seeds": len(g),
               "seeds": " ".join(map(str, g["seed"])), "R": R}
        for kind in ("raw", "smooth"):
            km = km_summary(g[f"rtt_{kind}"], g[f"reached_{kind}"], R)
            row[f"rtt_{kind}_per_seed"] = _per_seed(g[f"rtt_{kind}"], g[f"reached_{kind}"])
            row[f"rtt_{kind}_km_median"] = km["median"]
            row[f"rtt_{kind}_restricted_mean"] = km["restricted_mean"]
            row[f"reached_{kind}"] = int(g[f"reached_{kind}"].sum())
        for col in ("mean_acc", "last_quarter_acc", "best_acc", "final_window_acc", "volatility"):
            row[f"{col}_mean"] = float(g[col].mean())
            row[f"{col}_std"] = float(g[col].std(ddof=1)) if len(g) > 1 else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def selection_health(study: Study, window: int = 50) -> pd.DataFrame:
    """One row per (run, block of ``window`` rounds: 1..window, window+1..2 window, ...):
    distinct clients, repeat rate, top-5 share. For the fewest distinct clients in *any*
    ``window`` consecutive rounds see :func:`fewest_distinct`."""
    out = []
    for run, frame in study.rounds.groupby("run", sort=False):
        if "selected" not in frame:
            continue
        picks = [list(s) if isinstance(s, (list, tuple)) else [] for s in frame["selected"]]
        rounds = frame["round"].to_numpy(dtype=int)
        prev: set | None = None
        per_round = []
        for rnd, sel in zip(rounds, picks):
            rep = (len(set(sel) & prev) / len(sel)) if prev is not None and sel else np.nan
            per_round.append((rnd, sel, rep))
            prev = set(sel)
        for start in range(1, int(rounds.max(initial=0)) + 1, window):
            chunk = [p for p in per_round if start <= p[0] < start + window]
            if not chunk:
                continue
            counts = Counter(c for _, sel, _ in chunk for c in sel)
            slots = sum(counts.values())
            reps = [rep for _, _, rep in chunk if not np.isnan(rep)]
            out.append({
                "run": run, "window": f"{start}-{start + window - 1}", "window_start": start,
                "distinct_clients": len(counts),
                "repeat_rate": float(np.mean(reps)) if reps else np.nan,
                "top5_share": sum(n for _, n in counts.most_common(5)) / slots if slots else np.nan,
            })
    table = pd.DataFrame(out, columns=["run", "window", "window_start", "distinct_clients", "repeat_rate", "top5_share"])
    return study.runs[["run", "sampler", "setting", "seed"]].merge(table, on="run", how="inner")


def fewest_distinct(study: Study, window: int = 50) -> pd.DataFrame:
    """Per run, the fewest distinct clients picked in any ``window`` consecutive rounds.

    Every window ``[s, s + window - 1]`` that lies inside the recorded rounds counts (a run
    shorter than ``window`` is one window), so this is the number a guarantee such as "at
    least 35 distinct clients in every 50 rounds" is checked against; the fixed blocks of
    :func:`selection_health` can miss a window that straddles two blocks. Columns ``run,
    sampler, setting, seed, fewest_distinct, fewest_window`` (its first round).
    """
    out = []
    for run, frame in study.rounds.groupby("run", sort=False):
        if "selected" not in frame:
            continue
        picks = {int(r): (list(s) if isinstance(s, (list, tuple)) else [])
                 for r, s in zip(frame["round"], frame["selected"])}
        first, last = min(picks), max(picks)
        inside: Counter = Counter(c for r in range(first, first + window) for c in picks.get(r, ()))
        fewest, start = len(inside), first
        for s in range(first + 1, last - window + 2):  # slide: round s-1 leaves, round s+window-1 enters
            inside.subtract(picks.get(s - 1, ()))
            inside.update(picks.get(s + window - 1, ()))
            inside += Counter()  # drop clients whose count fell to 0
            if len(inside) < fewest:
                fewest, start = len(inside), s
        out.append({"run": run, "fewest_distinct": fewest, "fewest_window": start})
    table = pd.DataFrame(out, columns=["run", "fewest_distinct", "fewest_window"])
    return study.runs[["run", "sampler", "setting", "seed"]].merge(table, on="run", how="inner")


def selection_summary(health: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds per (setting, sampler, window) of the selection-health numbers."""
    cols = ["distinct_clients", "repeat_rate", "top5_share"]
    return (health.groupby(["setting", "sampler", "window_start", "window"], sort=False)[cols]
            .mean().reset_index().sort_values(["setting", "sampler", "window_start"], kind="stable")
            .reset_index(drop=True))


def group_shares(study: Study) -> pd.DataFrame:
    """Share of selections per heterogeneity group, per (setting, sampler), pooled over runs
    and rounds; columns ``setting, sampler, group, label, share``. A ``clients`` row per
    setting gives each group's share of clients. Runs without groups are left out."""
    rows = []
    runs = study.runs.set_index("run")
    counts: dict[tuple[str, str, int], int] = Counter()
    labels: dict[tuple[str, int], str] = {}
    clients: dict[str, dict[int, float]] = {}
    for run, frame in study.rounds.groupby("run", sort=False):
        info = runs.loc[run]
        groups = info["groups"]
        if not groups or "selected" not in frame:
            continue
        setting, sampler = info["setting"], info["sampler"]
        for g, label in group_alpha_labels(groups, info["alphas"]).items():
            labels[(setting, g)] = label
            counts[(setting, sampler, g)] += 0
        if setting not in clients:
            clients[setting] = {g: groups.count(g) / len(groups) for g in sorted(set(groups))}
        for sel in frame["selected"]:
            for c in sel if isinstance(sel, (list, tuple)) else []:
                counts[(setting, sampler, int(groups[int(c)]))] += 1
    totals: dict[tuple[str, str], int] = Counter()
    for (setting, sampler, _), n in counts.items():
        totals[(setting, sampler)] += n
    for (setting, sampler, g), n in counts.items():
        total = totals[(setting, sampler)]
        rows.append({"setting": setting, "sampler": sampler, "group": g, "label": labels[(setting, g)],
                     "share": n / total if total else np.nan})
    for setting, shares in clients.items():
        for g, s in shares.items():
            rows.append({"setting": setting, "sampler": "(clients)", "group": g, "label": labels[(setting, g)], "share": s})
    return pd.DataFrame(rows, columns=["setting", "sampler", "group", "label", "share"])
