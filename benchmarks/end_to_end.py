"""End-to-end seconds of one FMNIST setting-2 run: this checkout against an older commit.

Checks out ``--base`` (default 453e6cf, the commit before the performance issue) into a
temporary git worktree and starts the same run in both trees at the same moment, one process
each with one torch thread, so both see the same machine load:

- base: ``fedsim +experiment=paper_fmnist_s2 sampler=random seed=S num_rounds=R``
- this checkout: the same, with the switches that reproduce the base's defaults
  (``sampler=random_proportional partitioner.split=random``: the base's ``random`` drew by
  data share and its groups were random slices).

With ``--one-at-a-time`` the runs go one after the other instead, each alone on the machine
(base first): a run of this checkout then has a spare core for its central evaluation, which
it runs in a background thread while the next round trains (``eval_in_background``, on by
default); ``--inline-too`` adds a third run of this checkout with ``eval_in_background=false``,
to show what that part is worth.

Then it checks that the ``metrics.jsonl`` files agree (every column but the timings equal;
floats within ``--tolerance``) and writes the wall seconds of each and their ratio.

    python benchmarks/end_to_end.py --rounds 200 --out benchmarks/results/end_to_end_200.md
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMING = ("seconds", "wall")  # columns whose name contains one of these may differ


def start(tree: Path, run_dir: Path, overrides: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "FLWR_TELEMETRY_ENABLED": "0"}
    return subprocess.Popen([sys.executable, "-m", "fedsim.cli", *overrides, f"hydra.run.dir={run_dir}"], cwd=tree,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def run_jobs(jobs: dict[str, tuple[Path, Path, list[str]]], together: bool) -> dict[str, float]:
    """Run ``name -> (tree, run folder, overrides)`` together or one at a time; seconds each took."""
    ended: dict[str, float] = {}
    batches = [list(jobs)] if together else [[name] for name in jobs]
    for batch in batches:
        began = time.time()
        procs = {name: start(*jobs[name]) for name in batch}
        while len(procs) > sum(name in ended for name in procs):
            for name, proc in procs.items():
                if name not in ended and proc.poll() is not None:
                    ended[name] = time.time() - began
            time.sleep(0.5)
        for name, proc in procs.items():
            if proc.returncode != 0:
                sys.exit(f"{name} run failed (exit {proc.returncode}): {proc.stderr.read()[-2000:]}")
    return ended


def differences(base: Path, new: Path, tolerance: float) -> tuple[int, float]:
    """(number of rows or non-timing values that differ beyond ``tolerance``, largest float gap)."""
    rows_a = [json.loads(line) for line in (base / "metrics.jsonl").read_text().splitlines()]
    rows_b = [json.loads(line) for line in (new / "metrics.jsonl").read_text().splitlines()]
    bad, gap = abs(len(rows_a) - len(rows_b)), 0.0
    for a, b in zip(rows_a, rows_b):
        for key in set(a) & set(b):
            if any(t in key for t in TIMING):
                continue
            x, y = a[key], b[key]
            if isinstance(x, float) or isinstance(y, float):
                if x is None or y is None or not (math.isfinite(x) and math.isfinite(y)):
                    bad += x != y
                    continue
                gap = max(gap, abs(x - y))
                bad += abs(x - y) > tolerance
            else:
                bad += x != y
    return bad, gap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="453e6cf")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerance", type=float, default=1e-6)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--one-at-a-time", action="store_true", help="run base, then this checkout, each alone")
    parser.add_argument("--inline-too", action="store_true",
                        help="also run this checkout with eval_in_background=false")
    args = parser.parse_args()

    common = ["+experiment=paper_fmnist_s2", f"seed={args.seed}", f"num_rounds={args.rounds}", "progress=false"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(tmp / "base"), args.base], cwd=ROOT, check=True)
        try:
            load_start = os.getloadavg()[0]
            same_as_base = common + ["sampler=random_proportional", "partitioner.split=random"]
            jobs = {"base": (tmp / "base", tmp / "run_base", common + ["sampler=random"]),
                    "new": (ROOT, tmp / "run_new", same_as_base)}
            if args.inline_too:
                jobs["new_inline"] = (ROOT, tmp / "run_new_inline", same_as_base + ["eval_in_background=false"])
            ended = run_jobs(jobs, together=not args.one_at_a_time)
            load_end = os.getloadavg()[0]
            wall = {name: json.loads((tmp / f"run_{name}" / "summary.json").read_text())["wall_seconds"]
                    for name in jobs}
            bad, gap = differences(tmp / "run_base", tmp / "run_new", args.tolerance)
            if args.inline_too:
                bad_inline, gap_inline = differences(tmp / "run_base", tmp / "run_new_inline", args.tolerance)
                bad, gap = bad + bad_inline, max(gap, gap_inline)
            final = json.loads((tmp / "run_new" / "summary.json").read_text()).get("final_accuracy")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tmp / "base")], cwd=ROOT)

    command = " ".join(["python benchmarks/end_to_end.py", *sys.argv[1:]])
    how = ("one after the other, each alone on the machine" if args.one_at_a_time
           else "started together")
    labels = {"base": args.base, "new": "this checkout", "new_inline": "this checkout, eval_in_background=false"}
    table = "".join(f"| {labels[name]} | {wall[name]:.1f} | {ended[name]:.1f} |\n" for name in jobs)
    speedups = "".join(f"- speed-up, base / {labels[name]}: **{wall['base'] / wall[name]:.2f}x** (wall_seconds), "
                       f"{ended['base'] / ended[name]:.2f}x (process)\n" for name in jobs if name != "base")
    text = (
        f"Produced by: `{command}`\n\n"
        f"FMNIST setting 2, {args.rounds} rounds, seed {args.seed}, random sampler, central evaluation every round; "
        f"commit {args.base} and this checkout {how}, one process and one torch thread each "
        f"(load average {load_start:.1f} at the start, {load_end:.1f} at the end; 2 shared cores).\n\n"
        "| run | wall_seconds (summary) | process seconds |\n|---|---|---|\n"
        f"{table}\n{speedups}"
        f"- records: {bad} values differ beyond {args.tolerance:g} (largest float gap {gap:.2e}); "
        f"final accuracy {final}\n"
    )
    print(text)
    if args.out:
        args.out.write_text(text)
    if bad:
        sys.exit(1)


if __name__ == "__main__":
    main()
