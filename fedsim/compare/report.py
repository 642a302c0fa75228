"""Markdown and CSV output of a comparison (no tabulate needed: a small markdown helper)."""

from __future__ import annotations

import math
from typing import Any, Sequence

import pandas as pd

from fedsim.safe_io import atomic_writer


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table from a header and rows of cells (``|`` in cells escaped)."""
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in rows]
    return "\n".join(lines)


def num(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` decimals, ``-`` for missing/NaN, ``inf`` as ``>100000``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return ">100000"
    return f"{value:.{digits}f}"


def pm(mean: float, std: float, digits: int = 3) -> str:
    """``mean ± std`` (std ``-`` when undefined)."""
    return f"{num(mean, digits)} ± {num(std, digits)}"


def km_cell(value: float, horizon: int) -> str:
    """A Kaplan-Meier median: the round, or ``>R`` when survival never fell to 0.5."""
    return f">{horizon}" if value is None or math.isnan(value) else f"{value:.0f}"


def interval(mean: float, low: float, high: float, digits: int) -> str:
    """``mean [low, high]``."""
    return f"{num(mean, digits)} [{num(low, digits)}, {num(high, digits)}]"


SPEED_COLUMNS = {
    "sampler": "the sampler's config name.",
    "seeds": "number of finished runs (seeds).",
    "raw, per seed": "per seed, the first evaluated round with accuracy >= target; `>R` marks a run that never got there (censored at R, kept).",
    "raw: KM median": "Kaplan-Meier median of the raw rounds to target (smallest round where the estimated share of runs not yet at the target is <= 0.5; `>R` if it never falls that far).",
    "raw: restricted mean": "area under the Kaplan-Meier curve from 0 to R: the mean rounds to target with runs that never got there counted as R (a lower bound for them).",
    "raw: reached": "runs that reached the target / runs.",
    "smoothed, per seed / KM median / restricted mean / reached": "the same, on a trailing mean of the last W evaluated rounds (W = `--smooth`), so one lucky round does not count.",
}
ACCURACY_COLUMNS = {
    "mean acc (AUC/R)": "mean accuracy over all evaluated rounds (area under the accuracy curve / R when every round is evaluated), mean ± std over seeds (ddof=1).",
    "last-quarter acc": "mean accuracy over the evaluated rounds after 0.75 R.",
    "best acc": "the highest evaluated accuracy of the run.",
    "final-window acc": "mean accuracy over the last `final_window` evaluated rounds (default 10), instead of the single final round.",
    "volatility": "mean |accuracy change| between consecutive evaluated rounds over the second half of the run (lower is steadier).",
}
PAIRED_COLUMNS = {
    "metric / sampler": "what is compared, and the sampler compared with the baseline on the same seeds.",
    "diffs (per seed)": "sampler − baseline per paired seed; for rounds to target a run that never reached it counts as R (conservative), `*` marks pairs with such a run.",
    "mean diff [95% CI]": "mean of the per-seed differences with its 95% t-interval (n − 1 degrees of freedom).",
    "ratio base/sampler [95% CI]": "rounds to target only: baseline ÷ sampler (>1: the sampler is faster), geometric mean with its 95% interval from the log scale.",
    "p (sign-flip)": "exact two-sided sign-flip permutation p over all 2^n sign patterns (n = 3 seeds: the smallest possible p is 0.25).",
    "p (Holm)": "that p after Holm's correction across the samplers compared in this setting and metric.",
    "verdict": "`better`/`worse` only when the Holm p <= 0.05 and the 95% interval excludes 0 (direction-aware: fewer rounds, more accuracy is better); else `not distinguishable`.",
    "seeds needed": "paired t-test (alpha 0.05, power 0.8) seeds for the stated effect given the observed std of the paired differences; after `/` the same with alpha divided by the number of samplers compared (Bonferroni, Holm's strictest step).",
}
SELECTION_COLUMNS = {
    "distinct": "distinct clients picked in the block of rounds (mean over seeds).",
    "repeat": "share of a round's clients that were also picked the round before.",
    "top-5": "share of the block's selection slots taken by its 5 most-picked clients.",
    "fewest distinct in any window": "the fewest distinct clients picked in any run of that many consecutive rounds (every start, not only the blocks), lowest-highest over seeds.",
    "alpha=… columns": "share of all selections (pooled over seeds and rounds) that went to the heterogeneity group with that Dirichlet alpha; the `(clients)` row is each group's share of clients.",
}


def _glossary(columns: dict[str, str]) -> list[str]:
    return [f"- **{name}**: {text}" for name, text in columns.items()]


def _speed_rows(summary: pd.DataFrame) -> list[list[Any]]:
    rows = []
    for _, r in summary.iterrows():
        rows.append([
            r["sampler"], r["n_seeds"],
            r["rtt_raw_per_seed"], km_cell(r["rtt_raw_km_median"], r["R"]), num(r["rtt_raw_restricted_mean"], 1),
            f"{r['reached_raw']}/{r['n_seeds']}",
            r["rtt_smooth_per_seed"], km_cell(r["rtt_smooth_km_median"], r["R"]),
            num(r["rtt_smooth_restricted_mean"], 1), f"{r['reached_smooth']}/{r['n_seeds']}",
        ])
    return rows


def _accuracy_rows(summary: pd.DataFrame) -> list[list[Any]]:
    return [[r["sampler"]] + [pm(r[f"{c}_mean"], r[f"{c}_std"]) for c in
             ("mean_acc", "last_quarter_acc", "best_acc", "final_window_acc", "volatility")]
            for _, r in summary.iterrows()]


def _seeds_needed_cells(row: pd.Series) -> str:
    cells = []
    for col in row.index:
        if col.startswith("seeds_needed_") and "_holm" not in col and pd.notna(row[col]):
            effect = col[len("seeds_needed_"):]
            holm_col = next((c for c in row.index if c.startswith(col + "_holm")), None)
            holm_val = num(row[holm_col], 0) if holm_col else "-"
            cells.append(f"{effect}: {num(row[col], 0)} / {holm_val}")
    return "; ".join(cells) or "-"


def _paired_rows(paired: pd.DataFrame) -> list[list[Any]]:
    rows = []
    for _, r in paired.iterrows():
        rtt = pd.notna(r["ratio"])
        digits = 1 if rtt else 4
        diffs = r["diffs"]
        if rtt and (r["censored_sampler"] or r["censored_baseline"]):
            diffs += " *"
        ratio = interval(r["ratio"], r["ratio_low"], r["ratio_high"], 2) if rtt else "-"
        rows.append([r["metric"], r["sampler"], r["n_pairs"], diffs,
                     interval(r["mean_diff"], r["ci_low"], r["ci_high"], digits), ratio,
                     num(r["p_sign_flip"], 3), num(r["p_holm"], 3), r["verdict"], _seeds_needed_cells(r)])
    return rows


def _selection_rows(selection: pd.DataFrame, fewest: pd.DataFrame, window: int) -> tuple[list[str], list[list[Any]]]:
    windows = list(dict.fromkeys(selection.sort_values("window_start")["window"]))
    rows = []
    for sampler, g in selection.groupby("sampler", sort=False):
        by = g.set_index("window")
        cells = [f"{num(by.at[w, 'distinct_clients'], 1)} / {num(by.at[w, 'repeat_rate'], 2)} / {num(by.at[w, 'top5_share'], 2)}"
                 if w in by.index else "-" for w in windows]
        worst = fewest.loc[fewest["sampler"] == sampler, "fewest_distinct"]
        span = "-" if worst.empty else (f"{worst.min()}" if worst.min() == worst.max() else f"{worst.min()}-{worst.max()}")
        rows.append([sampler, span] + cells)
    return (["sampler", f"fewest distinct in any {window} rounds"]
            + [f"rounds {w}: distinct / repeat / top-5" for w in windows], rows)


def _share_rows(shares: pd.DataFrame) -> tuple[list[str], list[list[Any]]]:
    labels = list(dict.fromkeys(shares.sort_values("group")["label"]))
    rows = []
    for sampler, g in shares.groupby("sampler", sort=False):
        by = g.set_index("label")["share"]
        rows.append([sampler] + [f"{by[l]:.0%}" if l in by.index else "-" for l in labels])
    return ["sampler"] + labels, rows


def to_markdown(summary: pd.DataFrame, paired: pd.DataFrame, selection: pd.DataFrame, shares: pd.DataFrame, *,
                fewest: pd.DataFrame | None = None, target: float, smooth: int, window: int, baseline: str,
                effects: Sequence[str], unfinished: pd.DataFrame | None = None, plots: Sequence[str] = (),
                final_window: int = 10, mixed_streams: Sequence[str] = (), skipped: Sequence[str] = ()) -> str:
    """The whole report: per setting a speed table, an accuracy table, the paired comparison,
    selection health and group shares; then what every column means."""
    n_runs = int(summary["n_seeds"].sum()) if not summary.empty else 0
    n_unfinished = 0 if unfinished is None else len(unfinished)
    out = [
        "# Sampler comparison", "",
        f"{n_runs} finished runs; {n_unfinished} unfinished run(s) listed below and left out. "
        f"Target accuracy {target}; smoothed = trailing mean of {smooth} evaluated rounds; "
        f"final window = last {final_window} evaluated rounds; selection windows of {window} rounds; "
        f"baseline `{baseline}`; effects for seeds needed: {', '.join(effects)}.",
        "",
        "Rounds-to-target summaries are the **Kaplan-Meier median** and the **restricted mean** "
        "(area under the Kaplan-Meier survival curve up to R); runs that never reach the target "
        "are kept as censored at R. Paired statistics pair runs by seed; with n seeds the exact "
        "sign-flip p cannot go below 2/2^n (0.25 for 3 seeds).",
        "",
    ] + [f"**Not paired:** the runs of {s} mix random-stream versions (fedsim before and after 0.2.0) under one "
         f"seed, so that seed did not give them the same partition, initial model and client streams; the paired "
         f"tables leave out the pairs whose runs differ in version (rerun the older runs to pair them)." for s in mixed_streams] \
        + ([""] if mixed_streams else [])
    for setting in dict.fromkeys(summary["setting"]):
        s = summary[summary["setting"] == setting]
        out += [f"## {setting}", "", "### Rounds to target", "",
                md_table(["sampler", "seeds", "raw, per seed", "raw: KM median", "raw: restricted mean", "raw: reached",
                          f"smoothed ({smooth}), per seed", "smoothed: KM median", "smoothed: restricted mean",
                          "smoothed: reached"], _speed_rows(s)),
                "", "### Accuracy (mean ± std over seeds)", "",
                md_table(["sampler", "mean acc (AUC/R)", "last-quarter acc", "best acc",
                          f"final-window acc (last {final_window})", "volatility"], _accuracy_rows(s)), ""]
        p = paired[paired["setting"] == setting] if not paired.empty else paired
        if not p.empty:
            out += [f"### Paired against `{baseline}` (sampler − {baseline}, by seed)", "",
                    md_table(["metric", "sampler", "pairs", "diffs (per seed)", "mean diff [95% CI]",
                              "ratio base/sampler [95% CI]", "p (sign-flip)", "p (Holm)", "verdict",
                              "seeds needed (effect: single / Holm)"], _paired_rows(p)), ""]
        else:
            out += [f"No `{baseline}` runs in this setting: no paired comparison.", ""]
        sel = selection[selection["setting"] == setting]
        if not sel.empty:
            few = fewest[fewest["setting"] == setting] if fewest is not None else pd.DataFrame(
                columns=["sampler", "fewest_distinct"])
            header, rows = _selection_rows(sel, few, window)
            out += ["### Selection health (mean over seeds)", "", md_table(header, rows), ""]
        sh = shares[shares["setting"] == setting]
        if not sh.empty:
            header, rows = _share_rows(sh)
            out += ["### Share of selections per heterogeneity group", "", md_table(header, rows), ""]
    out += ["## Columns", ""] + _glossary(SPEED_COLUMNS) + _glossary(ACCURACY_COLUMNS) + _glossary(PAIRED_COLUMNS) \
        + _glossary(SELECTION_COLUMNS) + [""]
    if plots:
        out += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    if unfinished is not None and len(unfinished):
        out += ["## Unfinished runs (left out)", ""] + [
            f"- {r['run']} ({r['sampler']}, seed {r['seed']}): {r['rounds_recorded']} round(s) recorded"
            for _, r in unfinished.iterrows()] + [""]
    if skipped:
        out += ["## Unreadable run folders (left out)", ""] + [f"- {reason}" for reason in skipped] + [""]
    return "\n".join(out)


def summary_csv(summary: pd.DataFrame, selection: pd.DataFrame, fewest: pd.DataFrame | None = None) -> pd.DataFrame:
    """The per-sampler table for comparison.csv, with selection health averaged over blocks and
    the fewest distinct clients in any window (lowest and highest over seeds)."""
    if selection.empty:
        return summary
    sel = selection.groupby(["setting", "sampler"], sort=False)[["distinct_clients", "repeat_rate", "top5_share"]].mean()
    sel = sel.add_prefix("selection_").reset_index()
    out = summary.merge(sel, on=["setting", "sampler"], how="left")
    if fewest is not None and not fewest.empty:
        worst = (fewest.groupby(["setting", "sampler"], sort=False)["fewest_distinct"]
                 .agg(selection_fewest_distinct_min="min", selection_fewest_distinct_max="max").reset_index())
        out = out.merge(worst, on=["setting", "sampler"], how="left")
    return out


def write_csv(frame: pd.DataFrame, path) -> None:
    """CSV: empty cells for missing values, `inf` for more seeds than searched."""
    with atomic_writer(path) as handle:
        frame.to_csv(handle, index=False, float_format="%.10g")
