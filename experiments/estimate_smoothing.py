"""Offline what-if: would averaging a client's entropy estimates over its participations rank better?

Reads finished runs (``sampler.jsonl``: every client's latest estimate per round, from the
rounds before it; ``metrics.jsonl``: who trained), rebuilds the estimate each of a client's
participations produced, and compares, per round after every client has been estimated, the
Spearman correlation with the true label entropy of: the latest estimate (what the sampler
uses), the mean of all of the client's estimates so far, and the mean of its last three.
The selections are the run's own, so this says how well a smoothed estimate would have
ranked the same clients, not what the sampler would then have picked. Meant for tuning
runs (seeds 100-101), not for the seeds a study reports.

    python -m fedsim.results.archive unpack experiments/results/heterogeneity_s2_tuning/explore07  # records are packed
    python experiments/estimate_smoothing.py experiments/results/heterogeneity_s2_tuning/explore07/hics_diverse_seed10{0,1} \
        --out experiments/results/heterogeneity_s2_tuning/estimate_smoothing.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from fedsim.compare.report import md_table
from fedsim.results.entropy_report import estimates
from fedsim.results.recorder import read_jsonl

SMOOTHINGS = {
    "latest": lambda history: history[-1],
    "mean of all": lambda history: float(np.mean(history)),
    "mean of last 3": lambda history: float(np.mean(history[-3:])),
}


def smoothed_spearman(run_dir: Path) -> pd.DataFrame:
    """Per round after warm-up: Spearman of each smoothing of the estimates with the true entropy.

    ``sampler.jsonl`` row t holds the estimates round t was chosen with, so the estimate a
    client's participation in round t produced is in row t + 1: the history is built from
    that row, joined on the round numbers. Each scored round checks that "latest" is exactly
    the sampler's own estimate in that row (a ValueError if the records do not line up).
    """
    true = np.asarray(json.loads((run_dir / "partition.json").read_text())["label_entropy"], dtype=float)
    by_round = {row["round"]: estimates(row) for row in read_jsonl(run_dir / "sampler.jsonl")}
    history: list[list[float]] = [[] for _ in true]
    rows = []
    for metrics in read_jsonl(run_dir / "metrics.jsonl"):
        after = by_round.get(metrics["round"] + 1)
        if after is None:
            continue
        for client in metrics["selected"]:
            if not np.isnan(after[client]):
                history[client].append(float(after[client]))
        if any(not h for h in history):
            continue
        latest = np.array([h[-1] for h in history])
        if not np.allclose(latest, after, rtol=0, atol=1e-12):
            raise ValueError(f"{run_dir}: round {metrics['round'] + 1}'s estimates are not the latest of the "
                             "clients' participations; sampler.jsonl and metrics.jsonl do not line up")
        for name, smooth in SMOOTHINGS.items():
            estimate = [smooth(h) for h in history]
            rows.append({"run": run_dir.name, "round": metrics["round"] + 1, "smoothing": name,
                         "spearman": spearmanr(estimate, true).statistic})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    table = pd.concat([smoothed_spearman(run) for run in args.runs])
    summary = table.groupby(["run", "smoothing"], sort=False)["spearman"].agg(
        lowest="min", mean="mean", below=lambda r: (r < 0.8).mean()).reset_index()
    lines = [[r.run, r.smoothing, f"{r.lowest:.2f}", f"{r.mean:.2f}", f"{r.below:.2f}"] for r in summary.itertuples()]
    command = " ".join(["python experiments/estimate_smoothing.py", *map(str, sys.argv[1:])])
    text = (f"Produced by: `{command}`. Spearman of the clients' estimated entropies with their true label "
            "entropy, per round after every client has an estimate, on the runs' own selections.\n\n"
            + md_table(["run", "estimate", "lowest round", "mean", "share of rounds < 0.8"], lines) + "\n")
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
