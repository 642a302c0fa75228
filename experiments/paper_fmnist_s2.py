"""The paper's Fashion-MNIST setting 2 with every sampler: rounds to 75% next to Table 2.

Runs ``fedsim +experiment=paper_fmnist_s2 sampler=<s> seed=<k> hydra.run.dir=<out>/<s>_seed<k>``
for every sampler and seed. The same seed gives every sampler the same partitions, initial
model and client shuffling, so differences come from the sampler. fedsim skips runs that
already finished and resumes unfinished ones from their checkpoint, so the study can be
completed over several sittings: rerun the same command.

Then it writes, into ``--out``, for all six samplers (and any other with runs there):
- ``paper_summary.md``: the headline table, rounds to the target per seed and mean ± std,
  read off the raw curve and off a ``--smooth W``-round trailing mean (default 5), next to
  the paper's Table 2;
- ``paper_table.md`` / ``paper_table.json`` (raw) and ``paper_table_smooth<W>.*``: per
  sampler, rounds to the target for every seed (unfinished runs shown with the rounds
  recorded so far), mean ± std over the seeds that reached it, speed-up over random, final
  and second-half accuracy, the paper's Table 2 numbers, probe/training seconds per round, and
  each sampler's share of selections per heterogeneity group;
- ``comparison.md`` / ``comparison.csv`` / ``accuracy.png`` / ``participation.png`` from
  :func:`fedsim.results.compare.compare` (finished runs only, raw curve).

    python experiments/paper_fmnist_s2.py --seeds 0 1 2 --jobs 2
    python experiments/paper_fmnist_s2.py --samplers divfl_stale --seeds 0 1 2   # add a variant
    python experiments/paper_fmnist_s2.py --summarise-only                        # tables only
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fedsim.results.analysis import accuracy_curve, load_run, rounds_to_target
from fedsim.results.compare import compare, load_runs, participation_shares

SAMPLERS = ["random", "powd", "clustered", "divfl", "fedcor", "hics"]
# Table 2 of the HiCS-FL paper, FMNIST setting 2: rounds to 75% test accuracy.
PAPER_ROUNDS_TO_75 = {"random": 149, "powd": 79, "clustered": 114, "divfl": 478, "fedcor": 88, "hics": 60}
DEFAULT_OUT = Path("experiments/results/paper_fmnist_s2")
DISPLAY_NAMES = {
    "random": "random", "powd": "pow-d (d = N)", "clustered": "clustered sampling",
    "divfl": "DivFL (ideal)", "fedcor": "FedCor", "hics": "HiCS-FL",
    "divfl_stale": "DivFL (authors' code: last updates, stochastic greedy)",
}


def run_one(out: Path, sampler: str, seed: int, rounds: int, extra: list[str]) -> Path:
    """Run one (sampler, seed); fedsim skips it if finished and resumes it if not."""
    run_dir = out / f"{sampler}_seed{seed}"
    command = [
        sys.executable, "-m", "fedsim.cli", "+experiment=paper_fmnist_s2", f"sampler={sampler}",
        f"seed={seed}", f"num_rounds={rounds}", "progress=false", f"hydra.run.dir={run_dir}", *extra,
    ]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return run_dir


def second_half_stats(rows: list[dict[str, Any]]) -> tuple[float, float]:
    """Mean accuracy over the second half of the evaluated rounds, and the mean absolute
    change between consecutive evaluations there: a level and a noise that, unlike the
    final or the first-reaching round, do not hinge on one round."""
    accuracies = [a for _, a in accuracy_curve(rows)]
    half = accuracies[len(accuracies) // 2 :]
    swings = [abs(b - a) for a, b in zip(half, half[1:])]
    return statistics.fmean(half), statistics.fmean(swings) if swings else 0.0


def _mean_of(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [float(r[key]) for r in rows if r.get(key) is not None]
    return statistics.fmean(values) if values else None


def seed_record(run_dir: Path, target: float, smooth: int) -> dict[str, Any] | None:
    """One run's rounds to target, accuracies, seconds per round and whether it finished
    (None if the folder holds no run)."""
    if not (run_dir / "metrics.jsonl").is_file():
        return None
    run = load_run(run_dir)
    finished = run["summary"] is not None
    late_mean, late_swing = second_half_stats(run["rows"]) if finished else (None, None)
    return {
        "finished": finished,
        "rounds_recorded": len(run["rows"]),
        # a round reached in an unfinished run is already final: later rounds cannot undo it
        "rounds_to_target": rounds_to_target(run["rows"], target, smooth),
        "final_accuracy": run["summary"]["final_accuracy"] if finished else None,
        "second_half_accuracy": late_mean,
        "second_half_swing": late_swing,
        "probe_seconds_per_round": _mean_of(run["rows"], "probe_seconds"),
        "train_seconds_per_round": _mean_of(run["rows"], "train_seconds"),
    }


def _fmean_or_none(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def summarise(out: Path, samplers: list[str], seeds: list[int], target: float, smooth: int = 1) -> dict[str, Any]:
    """Per sampler: per-seed records and statistics over the seeds whose outcome is known.

    A seed's outcome is known when it reached the target (finished or not) or finished
    without reaching it; unfinished runs that have not reached it yet are listed apart.
    """
    table: dict[str, Any] = {}
    for sampler in samplers:
        records = {seed: seed_record(out / f"{sampler}_seed{seed}", target, smooth) for seed in seeds}
        records = {seed: r for seed, r in records.items() if r is not None}
        known = {s: r for s, r in records.items() if r["finished"] or r["rounds_to_target"] is not None}
        reached = [float(r["rounds_to_target"]) for r in known.values() if r["rounds_to_target"] is not None]
        finals = [r["final_accuracy"] for r in records.values() if r["final_accuracy"] is not None]
        table[sampler] = {
            "seeds": records,
            "known": len(known),
            "reached": len(reached),
            "rounds_mean": statistics.fmean(reached) if reached else None,
            "rounds_std": statistics.stdev(reached) if len(reached) > 1 else None,
            "final_accuracy_mean": statistics.fmean(finals) if finals else None,
            "finished": len(finals),
            **{
                f"{key}_mean": _fmean_or_none([r[key] for r in records.values()])
                for key in (
                    "second_half_accuracy", "second_half_swing", "probe_seconds_per_round", "train_seconds_per_round"
                )
            },
            "paper_rounds": PAPER_ROUNDS_TO_75.get(sampler),
        }
    base = table.get("random", {}).get("rounds_mean")
    for row in table.values():
        row["speedup_vs_random"] = base / row["rounds_mean"] if base and row["rounds_mean"] else None
        paper_base, paper = PAPER_ROUNDS_TO_75["random"], row["paper_rounds"]
        row["paper_speedup_vs_random"] = paper_base / paper if paper else None
    return table


def participation_table(out: Path, samplers: list[str], seeds: list[int]) -> str:
    """Markdown: per sampler, the share of all selections (finished runs, all rounds) that
    went to each heterogeneity group of the partition."""
    rows, all_groups = {}, set()
    for sampler in samplers:
        run_dirs = [out / f"{sampler}_seed{k}" for k in seeds]
        runs, _ = load_runs([d for d in run_dirs if (d / "metrics.jsonl").is_file()])
        shares = participation_shares(runs) if runs else None
        if shares:
            rows[sampler] = (len(runs), shares)
            all_groups.update(shares)
    groups = sorted(all_groups)
    lines = [
        "| sampler | finished runs | " + " | ".join(f"group {g}" for g in groups) + " |",
        "|---|---|" + "---|" * len(groups),
    ]
    for sampler, (n_runs, shares) in rows.items():
        cells = " | ".join(f"{shares.get(g, 0.0):.0%}" for g in groups)
        lines.append(f"| {sampler} | {n_runs} | {cells} |")
    return "\n".join(lines) + "\n"


def _outcome_cell(record: dict[str, Any]) -> str:
    """One seed's rounds to target, ``never``, or ``not yet (N rounds run)``."""
    if record["rounds_to_target"] is not None:
        return str(record["rounds_to_target"])
    return "never" if record["finished"] else f"not yet ({record['rounds_recorded']} rounds run)"


def _mean_cell(row: dict[str, Any], decimals: int) -> str:
    """Mean ± std of the rounds to target, with seeds reached/known."""
    if row["known"] == 0:
        return "-"
    if row["rounds_mean"] is None:
        return f"never ({row['reached']}/{row['known']})"
    std = "-" if row["rounds_std"] is None else f"{row['rounds_std']:.{decimals}f}"
    return f"{row['rounds_mean']:.{decimals}f} ± {std} ({row['reached']}/{row['known']})"


def to_markdown(table: dict[str, Any], target: float, command: str, smooth: int = 1) -> str:
    """The measured table with the paper's Table 2 beside it."""
    how = f"first round at or above {target:.0%}" if smooth == 1 else (
        f"first round whose trailing mean over {smooth} evaluated rounds is at or above {target:.0%}"
    )
    lines = [
        f"# Fashion-MNIST setting 2: rounds to {target:.0%} test accuracy",
        "",
        f"Produced by: `{command}`. Rounds to target = {how}.",
        "",
        "| sampler | rounds to target, per seed | mean ± std (seeds reached / known) | speed-up vs random "
        "| final acc. (finished runs) | 2nd-half acc. | 2nd-half swing | paper: rounds | paper: speed-up |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for sampler, row in table.items():
        cells = ", ".join(f"{seed}: {_outcome_cell(record)}" for seed, record in row["seeds"].items()) or "no runs"
        mean = _mean_cell(row, decimals=1)
        speedup = "-" if row["speedup_vs_random"] is None else f"{row['speedup_vs_random']:.2f}"
        final = "-" if row["final_accuracy_mean"] is None else f"{row['final_accuracy_mean']:.3f} (n={row['finished']})"
        late = "-" if row["second_half_accuracy_mean"] is None else f"{row['second_half_accuracy_mean']:.3f}"
        swing = "-" if row["second_half_swing_mean"] is None else f"{row['second_half_swing_mean']:.3f}"
        paper = "-" if row["paper_rounds"] is None else str(row["paper_rounds"])
        paper_speedup = "-" if row["paper_speedup_vs_random"] is None else f"{row['paper_speedup_vs_random']:.2f}"
        lines.append(
            f"| {sampler} | {cells} | {mean} | {speedup} | {final} | {late} | {swing} | {paper} | {paper_speedup} |"
        )
    lines += [
        "",
        "Mean and std are over the seeds that reached the target (std: sample std, ddof=1). "
        "2nd-half acc.: mean test accuracy over the second half of the evaluated rounds; 2nd-half "
        "swing: mean |change| of accuracy between consecutive evaluations there (finished runs, "
        "averaged over seeds). "
        "Speed-up = random's mean rounds / this sampler's. A run that is still unfinished counts "
        "once it has reached the target (later rounds cannot change that round) and is otherwise "
        "left out as `not yet`.",
        "",
        "## Cost",
        "",
        "| sampler | probe s/round | training s/round | probe + training, minutes per 200 rounds |",
        "|---|---|---|---|",
    ]
    for sampler, row in table.items():
        probe, train = row["probe_seconds_per_round_mean"], row["train_seconds_per_round_mean"]
        if probe is None or train is None:
            lines.append(f"| {sampler} | - | - | - |")
            continue
        lines.append(f"| {sampler} | {probe:.1f} | {train:.1f} | {(probe + train) * 200 / 60:.0f} |")
    lines += [
        "",
        "Means over every recorded round of every seed (unfinished runs included), from the "
        "records' `probe_seconds` and `train_seconds`; evaluation of the global model comes on "
        "top. Seconds depend on how many runs shared the cores (see the study's notes).",
    ]
    return "\n".join(lines) + "\n"


def summary_markdown(raw: dict[str, Any], smoothed: dict[str, Any], smooth: int, target: float, command: str) -> str:
    """The headline table: per sampler, rounds to target on the raw curve and on a
    ``smooth``-round trailing mean (per seed, and mean ± std with seeds reached/known),
    next to the paper's Table 2. Both readings come from the same records."""
    lines = [
        f"Produced by: `{command}`. Rounds to {target:.0%} test accuracy. \"raw\": first round at or "
        f"above {target:.0%}; \"{smooth}-round mean\": first round whose trailing mean over {smooth} "
        "evaluated rounds is at or above it. Mean ± std over the seeds that reached it "
        "(seeds reached/seeds whose outcome is known).",
        "",
        f"| sampler | raw, per seed | raw, mean ± std (reached/known) | {smooth}-round mean, per seed "
        f"| {smooth}-round mean, mean ± std | paper |",
        "|---|---|---|---|---|---|",
    ]
    for sampler, row in raw.items():
        smooth_row = smoothed[sampler]
        raw_seeds = ", ".join(_outcome_cell(r) for r in row["seeds"].values()) or "no runs"
        smooth_seeds = ", ".join(_outcome_cell(r) for r in smooth_row["seeds"].values()) or "no runs"
        paper = "-" if row["paper_rounds"] is None else str(row["paper_rounds"])
        lines.append(
            f"| {DISPLAY_NAMES.get(sampler, sampler)} | {raw_seeds} | {_mean_cell(row, decimals=0)} "
            f"| {smooth_seeds} | {_mean_cell(smooth_row, decimals=0)} | {paper} |"
        )
    return "\n".join(lines) + "\n"


def write_tables(out: Path, samplers: list[str], seeds: list[int], target: float, smooth: int, command: str) -> str:
    """Write ``paper_table.*``, ``paper_table_smooth<W>.*`` (when ``smooth`` > 1) and
    ``paper_summary.md`` into ``out``; return the summary (the raw table if ``smooth`` is 1)."""
    participation = participation_table(out, samplers, seeds)
    tables, texts = {}, {}
    for window in sorted({1, smooth}):
        stem = "paper_table" if window == 1 else f"paper_table_smooth{window}"
        tables[window] = summarise(out, samplers, seeds, target, window)
        texts[window] = (
            to_markdown(tables[window], target, command, window)
            + "\n## Share of selections per heterogeneity group\n\n"
            + participation
        )
        (out / f"{stem}.json").write_text(json.dumps(tables[window], indent=1))
        (out / f"{stem}.md").write_text(texts[window])
    if smooth == 1:
        return texts[1]
    summary = summary_markdown(tables[1], tables[smooth], smooth, target, command)
    (out / "paper_summary.md").write_text(summary)
    return summary


def samplers_to_tabulate(out: Path, requested: list[str]) -> list[str]:
    """The six study samplers, then any other requested or with ``<name>_seed<k>`` runs in
    ``out``: the tables cover the whole study, not only the runs made this time."""
    recorded = sorted({d.name.rsplit("_seed", 1)[0] for d in out.glob("*_seed*") if d.is_dir()})
    return list(dict.fromkeys([*SAMPLERS, *requested, *recorded]))


def main() -> None:
    """Parse arguments, run what is missing, write the tables and plots."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samplers", nargs="+", default=SAMPLERS, help="sampler presets (conf/sampler/*.yaml)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--target", type=float, default=0.75)
    parser.add_argument(
        "--smooth", type=int, default=5,
        help="also read rounds to target off a trailing mean of this many rounds (1: raw only)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (one core each)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--summarise-only", action="store_true", help="only rebuild the tables and plots")
    args, extra = parser.parse_known_args()
    if args.smooth < 1:
        parser.error(f"--smooth must be >= 1 (got {args.smooth})")
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.summarise_only:
        jobs = [(s, k) for k in args.seeds for s in args.samplers]
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for future in [pool.submit(run_one, args.out, s, k, args.rounds, extra) for s, k in jobs]:
                future.result()
    samplers = samplers_to_tabulate(args.out, args.samplers)
    command = "python " + " ".join(sys.argv)
    summary = write_tables(args.out, samplers, args.seeds, args.target, args.smooth, command)
    compare([args.out], target=args.target)
    print(summary)


if __name__ == "__main__":
    main()
