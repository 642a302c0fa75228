"""The paper's Fashion-MNIST setting 2 with every sampler: rounds to 75% next to Table 2.

Runs ``fedsim +experiment=paper_fmnist_s2 sampler=<s> seed=<k>`` into ``<out>/<s>_seed<k>`` for
every sampler and seed, as one Hydra multirun on the joblib launcher (``experiments/sweep.py``). The same seed gives every sampler the same partitions, initial
model and client shuffling, so differences come from the sampler and runs pair by seed.
fedsim skips runs that already finished and resumes unfinished ones from their checkpoint,
so the study can be completed over several sittings: rerun the same command.

Then it compares every run in ``--out`` with :func:`fedsim.compare.compare` (the same as
``fedsim-compare <out> --target 0.75 --smooth 5``: ``comparison.md`` / ``.csv``,
``paired.csv``, ``per_run.csv``, ``selection.csv`` and the PNGs) and writes
``paper_summary.md``: per sampler, rounds to the target per seed (raw and on a
``--smooth``-round trailing mean; ``>200`` = never, censored), the Kaplan-Meier median, the
ratio random / sampler with its 95% interval, and the paper's Table 2 beside them; then the
probe and training seconds per round.

    python experiments/paper_fmnist_s2.py --seeds 0 1 2 --jobs 2
    python experiments/paper_fmnist_s2.py --samplers divfl_stale --seeds 0 1 2   # add a variant
    python experiments/paper_fmnist_s2.py --summarise-only                        # tables only
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from fedsim.compare import compare
from fedsim.compare.report import interval, km_cell, md_table, num
from fedsim.errors import run_script
from fedsim.results.archive import unpacked
from sweep import run_sweep

SAMPLERS = ["random", "powd", "clustered", "divfl", "fedcor", "hics"]  # the paper's six: what a plain run launches
# Table 2 of the HiCS-FL paper, FMNIST setting 2: rounds to 75% test accuracy.
PAPER_ROUNDS_TO_75 = {"random": 149, "powd": 79, "clustered": 114, "divfl": 478, "fedcor": 88, "hics": 60}
DEFAULT_OUT = Path("experiments/results/paper_fmnist_s2")
DISPLAY_NAMES = {
    "random": "random (size-proportional)", "powd": "pow-d (d = N)", "clustered": "clustered sampling",
    "divfl": "DivFL (ideal)", "fedcor": "FedCor", "hics": "HiCS-FL",
    "divfl_stale": "DivFL (authors' code: last updates, stochastic greedy)",
}


def _order(samplers: list[str]) -> list[str]:
    """The paper's six in its order, then any other sampler with runs (alphabetical)."""
    return [s for s in PAPER_ROUNDS_TO_75 if s in samplers] + sorted(s for s in samplers if s not in PAPER_ROUNDS_TO_75)


def cost_table(rounds: pd.DataFrame) -> pd.DataFrame:
    """Per sampler: mean probe and training seconds per round over every recorded round."""
    cols = [c for c in ("probe_seconds", "train_seconds") if c in rounds]
    if not cols:
        return pd.DataFrame(columns=["sampler"])
    return rounds.groupby("sampler")[cols].mean().reset_index()


def paper_summary(result: dict[str, Any], target: float, smooth: int, command: str) -> str:
    """The headline table (see the module docstring) from a :func:`fedsim.compare.compare` result."""
    summary = result["summary"].set_index("sampler")
    paired = result["paired"]
    ratios = {}
    if not paired.empty:
        for _, row in paired[paired["column"].isin(["rtt_raw", "rtt_smooth"])].iterrows():
            ratios[(row["sampler"], row["column"])] = interval(row["ratio"], row["ratio_low"], row["ratio_high"], 2)
    base = PAPER_ROUNDS_TO_75["random"]
    rows = []
    for sampler in _order(list(summary.index)):
        r = summary.loc[sampler]
        paper = PAPER_ROUNDS_TO_75.get(sampler)
        rows.append([
            DISPLAY_NAMES.get(sampler, sampler), r["rtt_raw_per_seed"], km_cell(r["rtt_raw_km_median"], r["R"]),
            ratios.get((sampler, "rtt_raw"), "1 (baseline)" if sampler == "random" else "-"),
            r["rtt_smooth_per_seed"], km_cell(r["rtt_smooth_km_median"], r["R"]),
            ratios.get((sampler, "rtt_smooth"), "1 (baseline)" if sampler == "random" else "-"),
            "-" if paper is None else paper, "-" if paper is None else f"{base / paper:.2f}",
        ])
    lines = [
        f"Produced by: `{command}`. Rounds to {target:.0%} test accuracy per seed (seeds 0, 1, 2...). "
        f"\"raw\": first round at or above {target:.0%}; \"{smooth}-round mean\": first round whose trailing "
        f"mean over {smooth} evaluated rounds is at or above it; `>R`: never within the R rounds run "
        "(censored, kept). KM median: Kaplan-Meier median over seeds. random / sampler: ratio of rounds "
        "to target paired by seed (> 1: faster than random), geometric mean [95% t-interval on the log "
        "scale], censored runs counted as R. The paper's numbers are single runs.",
        "",
        md_table(["sampler", "raw, per seed", "raw: KM median", "raw: random / sampler [95% CI]",
                  f"{smooth}-round mean, per seed", f"{smooth}-round: KM median",
                  f"{smooth}-round: random / sampler [95% CI]", "paper: rounds", "paper: random / sampler"], rows),
        "",
    ]
    cost = cost_table(result["study"].finished().rounds)
    if {"probe_seconds", "train_seconds"} <= set(cost.columns):
        cost_rows = [[DISPLAY_NAMES.get(s, s), num(c["probe_seconds"], 1), num(c["train_seconds"], 1),
                      f"{(c['probe_seconds'] + c['train_seconds']) * 200 / 60:.0f}"]
                     for s in _order(list(cost["sampler"])) for _, c in cost[cost["sampler"] == s].iterrows()]
        lines += ["Cost: means over every round of every finished run, from the records' `probe_seconds` and "
                  "`train_seconds` (evaluation comes on top).", "",
                  md_table(["sampler", "probe s/round", "training s/round",
                            "probe + training, minutes per 200 rounds"], cost_rows), ""]
    return "\n".join(lines)


def summarise(out: Path, target: float = 0.75, smooth: int = 5, command: str = "") -> str:
    """Compare every run in ``out`` (report, CSVs, PNGs) and write ``paper_summary.md``; return it."""
    result = compare([out], target=target, smooth=smooth, out=out)
    if not result["runs"]:
        return "no finished runs\n"
    text = paper_summary(result, target, smooth, command)
    (out / "paper_summary.md").write_text(text)
    return text


def main() -> None:
    """Parse arguments, run what is missing, write the tables and plots."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samplers", nargs="+", default=SAMPLERS, help="sampler presets (conf/sampler/*.yaml)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--target", type=float, default=0.75)
    parser.add_argument("--smooth", type=int, default=5, help="trailing-mean window for the smoothed reading")
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (one core each)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--summarise-only", action="store_true", help="only rebuild the tables and plots")
    args, extra = parser.parse_known_args()
    if args.smooth < 1:
        parser.error(f"--smooth must be >= 1 (got {args.smooth})")
    args.out.mkdir(parents=True, exist_ok=True)
    with unpacked(args.out):  # records are kept packed: runs.parquet (zstd); finished runs skipped
        if not args.summarise_only:
            run_sweep(args.out, "paper_fmnist_s2", args.samplers, args.seeds, args.jobs,
                      [f"num_rounds={args.rounds}", *extra])
        command = "python " + " ".join(sys.argv)
        print(summarise(args.out, args.target, args.smooth, command))


if __name__ == "__main__":
    sys.exit(run_script(main, "paper_fmnist_s2.py"))
