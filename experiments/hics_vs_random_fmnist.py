"""Samplers on Fashion-MNIST, paper setting 2: rounds to 75% accuracy (default: HiCS-FL vs random).

Runs ``fedsim +experiment=paper_fmnist_s2 sampler=<s> seed=<k>`` for every sampler and
seed (same seeds = same partitions, initial model and client shuffling); fedsim skips
runs that already finished and resumes unfinished ones from their checkpoint. Then writes ``results.md`` and ``results.json`` in ``--out``.

    python experiments/hics_vs_random_fmnist.py --seeds 0 1 2 --jobs 2
    python experiments/hics_vs_random_fmnist.py --samplers powd clustered divfl fedcor --seeds 0 1 2
        (the other baselines into the same folder; finished runs are skipped)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fedsim.results.analysis import load_run, rounds_to_target

PAPER_ROUNDS_TO_75 = {"random": 149, "powd": 79, "clustered": 114, "divfl": 478, "fedcor": 88, "hics": 60}  # Table 2


def run_one(out: Path, sampler: str, seed: int, rounds: int, extra: list[str]) -> Path:
    """Run one (sampler, seed); fedsim skips it if finished and resumes it if not."""
    run_dir = out / f"{sampler}_seed{seed}"
    command = [
        sys.executable, "-m", "fedsim.cli", "+experiment=paper_fmnist_s2", f"sampler={sampler}",
        f"seed={seed}", f"num_rounds={rounds}", "progress=false", f"hydra.run.dir={run_dir}", *extra,
    ]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return run_dir


def summarise(out: Path, samplers: list[str], seeds: list[int], target: float) -> dict:
    """Rounds to target per run, and mean/std per sampler."""
    table = {}
    for sampler in samplers:
        per_seed = {}
        for seed in seeds:
            run = load_run(out / f"{sampler}_seed{seed}")
            if run["summary"] is not None:
                per_seed[seed] = {
                    "rounds_to_target": rounds_to_target(run["rows"], target),
                    "final_accuracy": run["summary"]["final_accuracy"],
                    "best_accuracy": run["summary"]["best_accuracy"],
                }
        table[sampler] = per_seed
    return table


def to_markdown(table: dict, target: float, command: str) -> str:
    """The results table with the paper's numbers beside fedsim's."""
    lines = [
        f"# Fashion-MNIST setting 2: rounds to {target:.0%} accuracy",
        "",
        f"Produced by: `{command}`",
        "",
        "| sampler | rounds to target per seed | mean (seeds reached) | final acc. mean | paper |",
        "|---|---|---|---|---|",
    ]
    for sampler, per_seed in table.items():
        reached = [v["rounds_to_target"] for v in per_seed.values() if v["rounds_to_target"] is not None]
        cells = ", ".join(f"{s}: {v['rounds_to_target'] or 'never'}" for s, v in per_seed.items())
        mean = f"{statistics.mean(reached):.1f} ({len(reached)}/{len(per_seed)})" if reached else f"never (0/{len(per_seed)})"
        finals = [v["final_accuracy"] for v in per_seed.values()]
        final = f"{statistics.mean(finals):.4f}" if finals else "-"
        lines.append(f"| {sampler} | {cells} | {mean} | {final} | {PAPER_ROUNDS_TO_75.get(sampler, '-')} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Parse arguments, run what is missing, write the tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samplers", nargs="+", default=["hics", "random"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--target", type=float, default=0.75)
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (one core each)")
    parser.add_argument("--out", type=Path, default=Path("experiments/results/fmnist_s2_hics_vs_random"))
    parser.add_argument("--summarise-only", action="store_true", help="only rebuild the tables")
    args, extra = parser.parse_known_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.summarise_only:
        jobs = [(s, k) for k in args.seeds for s in args.samplers]
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for future in [pool.submit(run_one, args.out, s, k, args.rounds, extra) for s, k in jobs]:
                future.result()
    table = summarise(args.out, args.samplers, args.seeds, args.target)
    command = "python " + " ".join(sys.argv)
    (args.out / "results.json").write_text(json.dumps(table, indent=1))
    (args.out / "results.md").write_text(to_markdown(table, args.target, command))
    print((args.out / "results.md").read_text())


if __name__ == "__main__":
    main()
