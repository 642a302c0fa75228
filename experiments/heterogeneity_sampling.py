"""The heterogeneity-sampling study (FMNIST settings 1-3 on the paper's partition, and the wider
settings ``fmnist_dirichlet01``, ``fmnist_dirichlet03``, ``fmnist_shards``, ``fmnist_s2_unreliable``,
``fmnist_s2_dynamic`` with the paper's training): run and report.

Runs ``fedsim +experiment=<--experiment> sampler=<s> seed=<k>`` (default: setting 2,
``paper_fmnist_s2``; records go to ``experiments/results/heterogeneity_<last part of the
experiment's name>``: ``heterogeneity_s2``, ``heterogeneity_dirichlet01``, ...) into ``--out`` as one Hydra
multirun on the joblib launcher (``experiments/sweep.py``; resumable: finished runs are
skipped, unfinished ones resume; rerun the same command across sittings),
then writes, next to the records:

- ``fedsim-compare``'s report against uniform random (``comparison.md``, ``paired.csv`` ...);
- ``estimator_quality.md``: for every sampler that estimates heterogeneity (``sampler.jsonl``
  with per-client entropies), per 25-round window, the Spearman correlation of the estimate
  with the true label entropy, Kendall's tau with and without the pairs of near-single-class
  clients, and the AUC separating the most balanced group (largest alpha: 0.2 in setting 2,
  0.5 in setting 1; none in setting 3, whose groups share one alpha) from the rest;
- ``population.md``: per seed, the clients' sizes (all, and per group) and the variant's worst
  estimator round with its AUC and the range of its estimates per group (what the report says
  of the clients, from the records);
- ``selection_health.md``: the fewest distinct clients picked in any 50 consecutive rounds, per run;
- ``class_coverage.md``: what each round trained on (label entropy and classes covered of the
  aggregated clients' pooled data), per sampler and 50-round block;
- ``draw_balance.md``: each class's share of the examples trained on, per sampler, its spread
  paired against random, and for clustering samplers whether a client's picks follow the size
  of its cluster (why a sampler can train a skewed class mix);
- ``client_cost.md``: per sampler, what it asks of clients beyond the training replies (extra
  messages, bytes, examples evaluated: FedCor's loss reports, probes) and its selection time;
- ``against_fedcor/``: when the study has FedCor runs, fedsim-compare's tables and a headline
  with FedCor as the baseline (the best baseline on setting 2);
- ``headline.md``: per sampler against random, the paired readings the report rests on
  (rounds to 75% as a ratio, mean accuracy over 200 rounds as a difference, with 95%
  intervals, sign-flip and Holm p-values and the verdict);
- for ``--ablations`` (runs of the variant with one switch changed, run by ``--ablate
  SWITCH=VALUE``, one folder each): the same headline and selection health, against this
  study's random and variant runs, and each against the variant itself.

    python experiments/heterogeneity_sampling.py --samplers random hics hics_oracle hics_diverse --seeds 0 1 2
    python experiments/heterogeneity_sampling.py --report-only
    python experiments/heterogeneity_sampling.py --experiment paper_fmnist_s3 --samplers random hics --seeds 0 1
    python experiments/heterogeneity_sampling.py --samplers random hics_diverse --ablate estimator=bias annealing=absolute
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import kendalltau, spearmanr
from sklearn.metrics import roc_auc_score

from fedsim.compare import compare, fewest_distinct, load, selection_health
from fedsim.compare.report import md_table
from fedsim.compare.stats import Metric, paired
from fedsim.errors import run_script
from fedsim.results.archive import unpacked
from fedsim.results.entropy_report import estimates
from fedsim.results.recorder import read_jsonl
from sweep import run_sweep

RESULTS = Path("experiments/results")
REPORT_COMMAND = "python experiments/heterogeneity_sampling.py --report-only"  # + --experiment unless setting 2
SAMPLERS = ["random", "random_proportional", "hics", "hics_reference", "hics_diverse", "hics_oracle", "fedcor",
            "clustered"]


NEAR_SINGLE_CLASS = 0.05
"""True label entropies below this (nats) mark a near-single-class client: one class with a few
stray examples of another (1 in 1,200 gives 0.007). Such a client ranks above a pure one by true
entropy, a difference no update-based estimate can be expected to see."""


def kendall_outside_ties(estimate: np.ndarray, true: np.ndarray, tie_below: float = NEAR_SINGLE_CLASS) -> float:
    """Kendall's tau over the client pairs whose order the estimate can be asked to get right.

    Pairs of two near-single-class clients (both true entropies below ``tie_below``) and pairs
    with equal true entropy are left out; of the rest, (concordant - discordant) / pairs, a tie
    in the estimate counting as neither. The true entropies themselves score 1.
    """
    i, j = np.triu_indices(len(true), k=1)
    keep = ~((true[i] < tie_below) & (true[j] < tie_below)) & (true[i] != true[j])
    if not keep.any():
        return np.nan
    agree = np.sign(estimate[i] - estimate[j]) * np.sign(true[i] - true[j])
    return float(agree[keep].mean())


def most_balanced(groups: np.ndarray, alphas: list[float] | None) -> np.ndarray | None:
    """Clients of the group(s) with the largest Dirichlet alpha; None when there is no such group
    to separate (no alphas recorded, or every group has the same alpha, as in setting 3)."""
    if not alphas or len(set(alphas)) == 1:
        return None
    alphas = np.asarray(alphas, dtype=float)
    return alphas[groups] == alphas.max()


def estimator_quality(run_dir: Path, alphas: list[float] | None, window: int = 25) -> list[dict]:
    """Per round after warm-up: Spearman(estimate, true entropy), Kendall's tau all pairs and
    outside near-single-class pairs (:func:`kendall_outside_ties`), and the AUC of the most
    balanced group (:func:`most_balanced`; NaN where there is none).

    Over the clients the sampler has estimated: every client once warm-up is over, or, under a
    join schedule (``faults=dynamic_paper``), the clients connected so far; the AUC is NaN
    while none of the most balanced group has joined.
    """
    partition = json.loads((run_dir / "partition.json").read_text())
    true = np.asarray(partition["label_entropy"], dtype=float)
    groups = np.asarray(partition.get("groups") or [0] * len(true))
    balanced = most_balanced(groups, alphas)
    out = []
    for row in read_jsonl(run_dir / "sampler.jsonl"):
        estimate = estimates(row)
        if estimate is None or not after_warmup(row, known := ~np.isnan(estimate)):
            continue
        estimate, truth = estimate[known], true[known]
        separable = balanced is not None and 0 < balanced[known].sum() < known.sum()
        out.append({"round": row["round"], "window": (row["round"] - 1) // window,
                    "spearman": spearmanr(estimate, truth).statistic,
                    "kendall": kendalltau(estimate, truth).statistic,
                    "kendall_outside": kendall_outside_ties(estimate, truth),
                    "auc": roc_auc_score(balanced[known], estimate) if separable else np.nan})
    return out


def after_warmup(row: dict, known: np.ndarray) -> bool:
    """Whether a sampler record is past warm-up, given which clients it has a value for
    (``known``): its phase says so where it has one (a join schedule leaves the clients not yet
    connected without one), else every client has a value."""
    if "phase" in row:
        return row["phase"] != "warmup" and bool(known.any())
    return bool(known.all())


def plot_estimator_quality(table: pd.DataFrame, path: Path) -> None:
    """Spearman with the true entropy and the balanced group's AUC per round: the mean over
    seeds as a line, the lowest to highest seed as a band, one colour per sampler."""
    from fedsim.plotting import save_png, sns  # fedsim's plotting set-up (Agg backend)

    long = table.melt(id_vars=["sampler", "seed", "round"], value_vars=["spearman", "auc"], var_name="measure")
    long = long.dropna(subset=["value"])
    grid = sns.relplot(long, x="round", y="value", hue="sampler", col="measure", kind="line", errorbar=("pi", 100),
                       height=3.2, aspect=1.4, facet_kws={"sharey": False})
    for ax in grid.axes.flat:
        if ax.get_title().endswith("spearman"):
            ax.axhline(0.8, color="grey", lw=0.8, ls="--")
    save_png(grid.figure, path, dpi=110)


def write_estimator_quality(out: Path, study) -> Path:
    """``estimator_quality.md``: mean Spearman / Kendall / AUC per sampler and window over seeds;
    every run's values per round in ``estimator_quality.csv`` and a plot of them
    (``estimator_quality.png``: mean over seeds, band from the lowest to the highest seed)."""
    rows = []
    for run in study.runs.itertuples():
        for entry in estimator_quality(out / run.run, run.alphas):
            rows.append({"sampler": run.sampler, "seed": run.seed, **entry})
    path = out / "estimator_quality.md"
    if not rows:
        path.write_text("No run with per-client entropy estimates yet.\n")
        return path
    table = pd.DataFrame(rows)
    table.drop(columns="window").to_csv(out / "estimator_quality.csv", index=False, float_format="%.4g")
    plot_estimator_quality(table, out / "estimator_quality.png")
    per_window = table.groupby(["sampler", "window"]).agg(
        rounds=("round", lambda r: f"{r.min()}-{r.max()}"), seeds=("seed", "nunique"),
        spearman=("spearman", "mean"), spearman_min=("spearman", "min"), below=("spearman", lambda r: (r < 0.8).mean()),
        kendall_min=("kendall", "min"), outside_min=("kendall_outside", "min"), auc=("auc", "mean")).reset_index()
    lines = [[r.sampler, r.rounds, r.seeds, f"{r.spearman:.2f}", f"{r.spearman_min:.2f}", f"{r.below:.2f}",
              f"{r.kendall_min:.2f}", f"{r.outside_min:.2f}", f"{r.auc:.2f}"] for r in per_window.itertuples()]
    text = (f"Produced by: `{REPORT_COMMAND}` (every round of every run: `estimator_quality.csv`, plotted in "
            "`estimator_quality.png`). Per 25-round window "
            "after warm-up: Spearman correlation of each client's estimated entropy with its true label entropy "
            "(mean over seeds and rounds, the lowest single round, and the share of rounds below 0.8); the lowest "
            "single-round Kendall's tau over all client pairs, and over the pairs left once pairs of two "
            f"near-single-class clients (true entropy below {NEAR_SINGLE_CLASS} nats: one class and a few stray "
            "examples of another, differences no estimate can see) are left out (the true entropies score 1 "
            "on both); and the AUC with which the estimate separates the most balanced group (the largest alpha) "
            "from the rest (nan: every group has the same alpha).\n\n"
            + md_table(["sampler", "rounds", "seeds", "Spearman (mean)", "Spearman (min)", "rounds < 0.8",
                        "Kendall, all pairs (min)", f"Kendall, pairs both < {NEAR_SINGLE_CLASS} left out (min)",
                        "AUC largest alpha (mean)"], lines) + "\n")
    path.write_text(text)
    return path


def write_population(out: Path, study, sampler: str = "hics_diverse") -> Path:
    """``population.md``: what the prose says of the clients, read from the records.

    Per seed: client sizes over all clients and per heterogeneity group (min-max), from
    ``partition.json``; and ``sampler``'s worst round after warm-up by Spearman, with its AUC
    for the most balanced group and the range of the estimates per group in that round.
    """
    quality = pd.read_csv(out / "estimator_quality.csv")
    rows = []
    for run in study.runs[study.runs["sampler"] == sampler].itertuples():
        partition = json.loads((out / run.run / "partition.json").read_text())
        sizes, groups = np.asarray(partition["sizes"]), np.asarray(partition.get("groups") or [0] * len(partition["sizes"]))
        labels = [f"{a:g}" for a in run.alphas] if run.alphas else [str(g) for g in sorted(set(groups))]
        worst = quality[(quality["sampler"] == sampler) & (quality["seed"] == run.seed)].nsmallest(1, "spearman")
        if worst.empty:
            continue
        worst = worst.iloc[0]
        row = next(r for r in read_jsonl(out / run.run / "sampler.jsonl") if r["round"] == worst["round"])
        estimate = estimates(row)
        rows.append([run.seed, f"{sizes.min()}-{sizes.max()}",
                     "; ".join(f"{labels[g]}: {sizes[groups == g].min()}-{sizes[groups == g].max()}"
                               for g in sorted(set(groups))),
                     int(worst["round"]), f"{worst['spearman']:.3f}", f"{worst['auc']:.3f}",
                     "; ".join(f"{labels[g]}: {round(estimate[groups == g].min(), 2) + 0.0:.2f}-{round(estimate[groups == g].max(), 2) + 0.0:.2f}"
                               for g in sorted(set(groups)))])
    path = out / "population.md"
    path.write_text(
        f"Produced by: `{REPORT_COMMAND}`. Per seed: the clients' sizes (examples; all clients, then per group, "
        f"labelled by its Dirichlet alpha) from `partition.json`; and `{sampler}`'s worst round after warm-up by "
        "Spearman (estimate vs true label entropy, `estimator_quality.csv`), with that round's AUC for the most "
        "balanced group and the range of the estimates (nats) per group.\n\n"
        + md_table(["seed", "sizes", "sizes per group", "worst round", "Spearman", "AUC", "estimates per group"], rows)
        + "\n")
    return path


def write_selection_health(out: Path, study) -> Path:
    """``selection_health.md``: per run, the fewest distinct clients picked in any 50 consecutive
    rounds (every start: the window the exploration guarantee speaks of), and the mean and top-5
    share over the 50-round blocks."""
    fewest = fewest_distinct(study, 50)
    blocks = selection_health(study, 50).groupby(["sampler", "seed"]).agg(
        mean=("distinct_clients", "mean"), top5=("top5_share", "mean")).reset_index()
    table = fewest.merge(blocks, on=["sampler", "seed"]).sort_values(["sampler", "seed"])
    lines = [[r.sampler, r.seed, r.fewest_distinct, f"{r.fewest_window}-{r.fewest_window + 49}", f"{r.mean:.1f}",
              f"{r.top5:.2f}"] for r in table.itertuples()]
    clients = sorted({len(json.loads((Path(d) / "partition.json").read_text())["sizes"]) for d in study.runs["dir"]})
    path = out / "selection_health.md"
    path.write_text(f"Produced by: `{REPORT_COMMAND}`. Distinct clients picked (of {', '.join(map(str, clients))}): "
                    "the fewest in any 50 "
                    "consecutive rounds (every start) and the rounds where that was, the mean over the 50-round "
                    "blocks 1-50, 51-100, ...; top-5 share: share of a block's slots taken by its 5 most-picked "
                    "clients (mean over blocks).\n\n"
                    + md_table(["sampler", "seed", "fewest distinct in 50 rounds", "where", "mean distinct per block",
                                "top-5 share"], lines) + "\n")
    return path


COVERED_SHARE = 0.05
"""A class counts as covered in a round when it holds at least this share of the examples of the
clients whose updates were aggregated (5%: half a class's share in a balanced cohort)."""


def aggregated(round_row) -> list[int]:
    """The clients of one round (a row of ``study.rounds``) whose updates were aggregated: picked,
    not failed, not rejected."""
    dropped = {int(c) for c in (round_row.failed or [])} | {int(c) for c in (round_row.rejected or {})}
    return [int(c) for c in (round_row.selected if round_row.selected is not None else []) if int(c) not in dropped]


def label_histograms(study) -> dict[str, np.ndarray]:
    """Per run, the clients' label counts (clients x classes) from its ``partition.json``."""
    return {r.run: np.asarray(json.loads((Path(r.dir) / "partition.json").read_text())["label_histograms"],
                              dtype=float) for r in study.runs.itertuples()}


def cohort_labels(study) -> pd.DataFrame:
    """One row per run and round: the label entropy (nats) of the pooled data of the clients whose
    updates were aggregated (picked, not failed, not rejected) and how many classes it covers
    (:data:`COVERED_SHARE`). What a round trains on, whatever the sampler looked at."""
    histograms = label_histograms(study)
    rows = []
    for r in study.rounds.itertuples():
        clients = aggregated(r)
        if not clients:
            continue
        pooled = histograms[r.run][clients].sum(axis=0)
        share = pooled / pooled.sum()
        rows.append({"sampler": r.sampler, "seed": r.seed, "round": r.round,
                     "entropy": float(-(share[share > 0] * np.log(share[share > 0])).sum()),
                     "covered": int((share >= COVERED_SHARE).sum())})
    return pd.DataFrame(rows)


def with_streams(per_run: pd.DataFrame, study) -> pd.DataFrame:
    """``per_run`` (one row per sampler and seed of one setting) ready for :func:`paired`: with
    each run's ``streams_version``, so that runs drawn with different random streams under one
    seed are not paired (as in fedsim-compare's own tables)."""
    if "streams_version" not in study.runs.columns:  # a table built by hand, without versions
        return per_run.assign(setting="")
    streams = study.runs[["sampler", "seed", "streams_version"]].drop_duplicates(["sampler", "seed"])
    return per_run.merge(streams, on=["sampler", "seed"], how="left").assign(setting="")


def write_class_coverage(out: Path, study, block: int = 50) -> Path:
    """``class_coverage.md``: per sampler and block of rounds, the label entropy of each round's
    aggregated cohort and the classes it covers (mean over rounds and seeds), and the share of
    rounds that cover fewer classes than random's median round. Why a sampler that picks many
    distinct clients can still train on narrower rounds than random."""
    table = cohort_labels(study)
    table["block"] = (table["round"] - 1) // block
    typical = table.loc[table["sampler"] == "random", "covered"].median() if "random" in set(table["sampler"]) \
        else table["covered"].median()
    lines = []
    for (sampler, b), group in table.groupby(["sampler", "block"]):
        lines.append([sampler, f"{b * block + 1}-{(b + 1) * block}", group["seed"].nunique(),
                      f"{group['entropy'].mean():.3f}", f"{group['covered'].mean():.2f}",
                      f"{(group['covered'] < typical).mean():.2f}"])
    per_run = with_streams(table.groupby(["sampler", "seed"], as_index=False)[["entropy", "covered"]].mean(), study)
    metrics = [Metric("covered", "classes covered per round", False),
               Metric("entropy", "cohort label entropy", False)]
    against = paired(per_run, metrics=metrics) if "random" in set(per_run["sampler"]) else pd.DataFrame()
    tests = [[r.sampler, r.metric, r.n_pairs, f"{r.mean_diff:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}]",
              f"{r.p_sign_flip:.3f}", f"{r.p_holm:.3f}", r.verdict.replace("better", "higher").replace("worse", "lower")]
             for r in against.itertuples()]
    path = out / "class_coverage.md"
    path.write_text(f"Produced by: `{REPORT_COMMAND}`. Per round, the pooled labels of the clients whose updates "
                    "were aggregated (picked, not failed, not rejected; label counts from `partition.json`): their "
                    f"entropy (nats; ln 10 = 2.303 for all ten classes alike) and the classes holding at least "
                    f"{COVERED_SHARE:.0%} of them; mean over the block's rounds and the seeds, and the share of rounds "
                    f"covering fewer than {typical:g} classes (random's median round).\n\n"
                    + md_table(["sampler", "rounds", "seeds", "cohort label entropy", "classes covered",
                                f"rounds with < {typical:g} classes"], lines) + "\n"
                    + ("\nPaired by seed against random (each run's mean over all its rounds; sampler - random, "
                       "95% t-interval, exact sign-flip p, Holm over the samplers):\n\n"
                       + md_table(["sampler", "metric", "paired seeds", "difference [95% CI]", "p (sign-flip)",
                                   "p (Holm)", "verdict"], tests) + "\n" if tests else ""))
    return path


ALIKE = 0.05
"""Clients whose true label entropy lies within this many nats of the median client's are
"alike" for ``draw_balance.md``: an ideal heterogeneity-guided draw has no reason to prefer one
of them (on shards: the clients holding two classes in equal parts)."""


def aggregated_by_run(study) -> dict[str, dict[int, list[int]]]:
    """Per run, round -> the clients whose updates were aggregated (:func:`aggregated`)."""
    return {run: {int(r.round): aggregated(r) for r in frame.itertuples()}
            for run, frame in study.rounds.groupby("run")}


def trained_class_shares(study, picks: dict[str, dict[int, list[int]]] | None = None) -> pd.DataFrame:
    """One row per run: each class's share of all the examples trained on over the run (the
    aggregated clients' label counts, summed over rounds), and ``spread`` = largest - smallest.
    ``picks``: :func:`aggregated_by_run`, when the caller has it already."""
    histograms, picks = label_histograms(study), picks or aggregated_by_run(study)
    rows = []
    for run in study.runs.sort_values("run").itertuples():  # rows (and the paired table) in run-name order
        counts = sum((histograms[run.run][clients].sum(axis=0) for clients in picks.get(run.run, {}).values()),
                     np.zeros(histograms[run.run].shape[1]))
        share = counts / counts.sum()
        rows.append({"sampler": run.sampler, "seed": run.seed, **{f"class {c}": v for c, v in enumerate(share)},
                     "spread": share.max() - share.min()})
    return pd.DataFrame(rows)


def cluster_size_and_picks(run_dir: Path, picks: dict[int, list[int]]) -> dict | None:
    """For a clustering sampler's run, over the rounds after warm-up: each client's mean cluster
    size, mean estimate and picks (``picks``: round -> aggregated clients) over the rounds it was
    clustered in (every round, unless a join schedule connected it later; clients never
    connected are left out); Spearman correlations over those clients and over the
    :data:`ALIKE` ones among them. None for a sampler that records no clusters."""
    true = np.asarray(json.loads((run_dir / "partition.json").read_text())["label_entropy"], dtype=float)
    size, estimate, rounds_in, count = (np.zeros(len(true)) for _ in range(4))
    rounds = 0
    for row in read_jsonl(run_dir / "sampler.jsonl"):
        entropy, cluster = estimates(row), row.get("cluster")
        if entropy is None or cluster is None:
            continue
        known = ~np.isnan(entropy) & np.asarray([c is not None for c in cluster])
        if not after_warmup(row, known):
            continue  # warm-up, or (records without a phase) a client not yet clustered
        labels = np.asarray(cluster, dtype=object)[known].astype(int)
        size[known] += np.bincount(labels)[labels]
        estimate[known] += entropy[known]
        rounds_in[known] += 1
        np.add.at(count, picks.get(row["round"], []), 1)
        rounds += 1
    if not rounds:
        return None
    clustered = rounds_in > 0
    size, estimate, count, true = (v[clustered] for v in (size / np.maximum(rounds_in, 1),
                                                          estimate / np.maximum(rounds_in, 1), count, true))
    alike = np.abs(true - np.median(true)) <= ALIKE
    return {"rounds": rounds, "alike": int(alike.sum()),
            "size range": f"{size.min():.1f}-{size.max():.1f}", "picks range": f"{count.min():.0f}-{count.max():.0f}",
            "size~picks (all)": spearmanr(size, count).statistic,
            "size~picks (alike)": spearmanr(size[alike], count[alike]).statistic,
            "estimate~size (alike)": spearmanr(estimate[alike], size[alike]).statistic}


def write_draw_balance(out: Path, study) -> Path:
    """``draw_balance.md``: whether a sampler trains the classes in the proportions random does,
    and, for clustering samplers, whether a client's chance follows the size of its cluster.

    HiCS-FL draws a cluster, then a client in it: when the clusters are about equally likely
    (clients alike in heterogeneity, as on shards), a client in a small cluster is drawn more
    often than one in a large cluster, whatever its data. This table shows when that happens and
    what it does to the class mix the model is trained on."""
    picks = aggregated_by_run(study)
    shares = trained_class_shares(study, picks)
    classes = [c for c in shares.columns if c.startswith("class ")]
    mix = shares.groupby("sampler")[[*classes, "spread"]].mean().reset_index()
    mix_lines = [[r["sampler"], *(f"{r[c]:.3f}" for c in classes), f"{r['spread']:.3f}"] for _, r in mix.iterrows()]
    against = paired(with_streams(shares, study), metrics=[Metric("spread", "class-share spread", True)]) \
        if "random" in set(shares["sampler"]) else pd.DataFrame()
    tests = [[r.sampler, r.n_pairs, f"{r.mean_diff:+.4f} [{r.ci_low:+.4f}, {r.ci_high:+.4f}]", f"{r.p_sign_flip:.3f}",
              f"{r.p_holm:.3f}", r.verdict.replace("better", "narrower").replace("worse", "wider")]
             for r in against.itertuples()]
    cluster_lines = []
    for run in study.runs.sort_values(["sampler", "seed"]).itertuples():
        row = cluster_size_and_picks(Path(run.dir), picks.get(run.run, {}))
        if row is not None:
            cluster_lines.append([run.sampler, run.seed, row["rounds"], row["alike"], row["size range"],
                                  row["picks range"], *(f"{row[k]:+.2f}" for k in
                                                        ("size~picks (all)", "size~picks (alike)",
                                                         "estimate~size (alike)"))])
    path = out / "draw_balance.md"
    path.write_text(
        f"Produced by: `{REPORT_COMMAND}`. Each class's share of all the examples a run trained on (the "
        "aggregated clients' label counts from `partition.json`, summed over rounds; mean over seeds), and the "
        "spread (a run's largest - smallest share, mean over seeds; random's expected mix is the training set's).\n\n"
        + md_table(["sampler", *classes, "spread"], mix_lines) + "\n"
        + ("\nSpread paired by seed against random (sampler - random, 95% t-interval, exact sign-flip p, Holm):\n\n"
           + md_table(["sampler", "paired seeds", "difference [95% CI]", "p (sign-flip)", "p (Holm)", "verdict"],
                      tests) + "\n" if tests else "")
        + ("\nClustering samplers, per run, over the rounds after warm-up: each client's mean cluster size and its "
           "picks (aggregated) in those rounds, their ranges, and Spearman correlations: cluster size with picks "
           f"over all clients and over the clients alike in true label entropy (within {ALIKE} nats of the median "
           "client's; `alike` counts them), and the client's mean estimate with its cluster size over the alike "
           "ones. A negative size~picks: clients in small clusters are drawn more often.\n\n"
           + md_table(["sampler", "seed", "rounds", "alike", "cluster size", "picks", "size~picks (all)",
                       "size~picks (alike)", "estimate~size (alike)"], cluster_lines) + "\n" if cluster_lines else ""))
    return path


def write_headline(out: Path, baseline: str = "random") -> Path:
    """``headline.md``: the key paired readings against ``baseline``, one row per sampler and metric."""
    paired = pd.read_csv(out / "paired.csv")
    keep = {"rounds to target (raw)": "ratio", "rounds to target (smoothed)": "ratio",
            "mean accuracy (AUC/R)": "diff", "final-window accuracy": "diff"}
    lines = []
    for row in paired[paired["metric"].isin(keep)].itertuples():
        if keep[row.metric] == "ratio":
            value = f"{row.ratio:.2f} [{row.ratio_low:.2f}, {row.ratio_high:.2f}] ({baseline} / sampler)"
        else:
            value = f"{row.mean_diff:+.3f} [{row.ci_low:+.3f}, {row.ci_high:+.3f}] (sampler - {baseline})"
        lines.append([row.sampler, row.metric, row.n_pairs, value, f"{row.p_sign_flip:.3f}", f"{row.p_holm:.3f}",
                      row.verdict])
    path = out / "headline.md"
    path.write_text(f"Produced by: `{REPORT_COMMAND}` (from `paired.csv`). "
                    f"Paired by seed against {baseline}; rounds to 75% test accuracy as the ratio {baseline} / "
                    "sampler (> 1: faster; a run that never reached 75% counts as 200), accuracies as differences; "
                    "95% t-intervals (log scale for ratios), exact sign-flip p, Holm over the samplers compared.\n\n"
                    + md_table(["sampler", "metric", "paired seeds", "estimate [95% CI]", "p (sign-flip)", "p (Holm)",
                                "verdict"], lines) + "\n")
    return path


def write_against(out: Path, baseline: str) -> list[Path]:
    """The study against ``baseline`` instead of random (``<out>/against_<baseline>/``: fedsim-compare's
    tables and ``headline.md``), when the study has runs of it; nothing otherwise."""
    study = load([out]).finished()
    if baseline not in set(study.runs["sampler"]):
        return []
    against = out / f"against_{baseline}"
    compare([out], target=0.75, smooth=5, baseline=baseline, out=against, plots=False)
    return [write_headline(against, baseline)]


CLIENT_COST = {"train_reply_bytes": "training reply KiB", "extra_messages": "extra messages",
               "extra_bytes": "extra KiB", "extra_client_examples": "extra client examples",
               "selection_seconds": "selection ms"}
"""metrics.jsonl fields summed per round for ``client_cost.md`` -> the column they become."""


def write_client_cost(out: Path, study) -> Path:
    """``client_cost.md``: what each sampler asks of clients and server per round, from the runs'
    ``metrics.jsonl`` (mean over rounds and seeds): the training replies every sampler gets, and
    the extra requests some make (FedCor's loss reports, pow-d's and DivFL's probes), in messages,
    bytes and examples clients must run through the model."""
    rows = []
    for run in study.runs.itertuples():
        for line in read_jsonl(Path(run.dir) / "metrics.jsonl"):
            rows.append({"sampler": run.sampler, "seed": run.seed, **{k: line.get(k, 0) or 0 for k in CLIENT_COST}})
    table = pd.DataFrame(rows)
    for column in ("train_reply_bytes", "extra_bytes"):
        table[column] = table[column] / 1024
    table["selection_seconds"] = table["selection_seconds"] * 1000
    per_sampler = table.groupby("sampler")[list(CLIENT_COST)].mean().reset_index()
    lines = [[r.sampler, *(f"{getattr(r, k):.1f}" for k in CLIENT_COST)] for r in per_sampler.itertuples()]
    path = out / "client_cost.md"
    path.write_text(f"Produced by: `{REPORT_COMMAND}` (from every run's `metrics.jsonl`). Per round, mean over "
                    "rounds and seeds: the training replies' size, and what a sampler asks beyond them (messages, "
                    "bytes, and examples clients evaluate for it: FedCor's loss reports, pow-d's and DivFL's probes; "
                    "HiCS-FL reads the output-layer update inside the training reply and asks for nothing).\n\n"
                    + md_table(["sampler", *CLIENT_COST.values()], lines) + "\n")
    return path


def write_ablations(out: Path, ablations: Path) -> list[Path]:
    """The variant with one switch changed (runs in ``ablations``) against random and the variant.

    The ablation runs share the label ``hics_diverse``; fedsim-compare appends the switch that
    differs (``hics_diverse[exploration_rate=unset]`` for runs recorded before the switch).
    Writes ``headline.md`` and ``selection_health.md`` into ``ablations``.
    """
    runs = sorted(ablations.glob("*_seed*")) + sorted(ablations.glob("*/*_seed*"))  # one folder per --ablate
    if not runs:
        return []
    paths = sorted(out.glob("random_seed*")) + sorted(out.glob("hics_diverse_seed*")) + runs
    compare(paths, target=0.75, smooth=5, baseline="random", out=ablations, plots=False)
    written = [write_headline(ablations), write_selection_health(ablations, load(paths).finished())]
    # each ablation against the variant itself, paired by seed (baseline: the variant's label)
    labels = load(sorted(out.glob("hics_diverse_seed*")) + runs).finished().runs
    variant = sorted(set(labels[labels["dir"].map(lambda d: Path(d).parent.resolve() == out.resolve())]["sampler"]))
    if len(variant) == 1:
        against = ablations / "against_variant"
        compare(sorted(out.glob("hics_diverse_seed*")) + runs, target=0.75, smooth=5, baseline=variant[0],
                out=against, plots=False)
        written.append(write_headline(against, variant[0]))
    return written


def main() -> None:
    """Run what is missing, then write the report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samplers", nargs="+", default=SAMPLERS)
    parser.add_argument("--seeds", nargs="+", type=int, default=list(range(10)))
    parser.add_argument("--experiment", default="paper_fmnist_s2",
                        help="paper_fmnist_s1 | s2 | s3, fmnist_dirichlet01 | dirichlet03 | shards | s2_unreliable | s2_dynamic")
    parser.add_argument("--out", type=Path, help="default: experiments/results/heterogeneity_<the experiment name's last part>")
    parser.add_argument("--ablations", type=Path,
                        help="runs of the variant with one switch changed, reported against --out's random runs "
                             "(default: <out>_ablations)")
    parser.add_argument("--ablate", nargs="+", default=[], metavar="SWITCH=VALUE",
                        help="also run the variant (hics_diverse) with one switch changed, per SWITCH=VALUE "
                             "(e.g. estimator=bias annealing=absolute), on --seeds, into <ablations>/<SWITCH_VALUE>")
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (one core each)")
    parser.add_argument("--report-only", action="store_true")
    args, extra = parser.parse_known_args()
    args.out = args.out or RESULTS / f"heterogeneity_{args.experiment.rsplit('_', 1)[-1]}"
    args.ablations = args.ablations or args.out.with_name(args.out.name + "_ablations")
    if args.experiment != "paper_fmnist_s2":
        global REPORT_COMMAND
        REPORT_COMMAND += f" --experiment {args.experiment}"
    for switch in args.ablate:  # checked before hours of runs, not after
        if "=" not in switch:
            parser.error(f"--ablate {switch}: write SWITCH=VALUE, e.g. estimator=bias")
    with unpacked(args.out), unpacked(args.ablations):  # records are kept packed: runs.parquet (zstd)
        run_and_report(args, extra)


def run_and_report(args: argparse.Namespace, extra: list[str]) -> None:
    """Run what is missing (fedsim skips finished runs), then write the report."""
    if not args.report_only:
        run_sweep(args.out, args.experiment, args.samplers, args.seeds, args.jobs, extra)
        for switch in args.ablate:
            run_sweep(args.ablations / switch.replace("=", "_"), args.experiment, ["hics_diverse"], args.seeds, args.jobs,
                      [*extra, f"++sampler.{switch}"])
    compare([args.out], target=0.75, smooth=5, baseline="random", out=args.out)
    study = load([args.out]).finished()
    for path in (write_headline(args.out), write_estimator_quality(args.out, study), write_population(args.out, study),
                 write_selection_health(args.out, study), write_class_coverage(args.out, study),
                 write_draw_balance(args.out, study), write_client_cost(args.out, study),
                 *write_against(args.out, "fedcor"), *write_ablations(args.out, args.ablations)):
        print(path.read_text())


if __name__ == "__main__":
    sys.exit(run_script(main, "heterogeneity_sampling.py"))
