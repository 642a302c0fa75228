"""Seconds for ``fedsim-compare`` end to end on 40 synthetic runs x 200 rounds.

Builds 8 samplers x 5 seeds of fedsim-shaped run folders (config.yaml, metrics.jsonl with
5 picks of 50 clients per round and 10 per-class accuracies, partition.json with five
heterogeneity groups, summary.json) in a temporary folder, then times
``python -m fedsim.compare <folder>`` as a subprocess (interpreter start, imports, loading,
statistics, report and all PNGs). Target: under 10 s.

    python benchmarks/compare_speed.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

SAMPLERS = ["random", "hics", "powd", "clustered", "divfl", "fedcor", "s7", "s8"]


def build(root: Path, seeds: int = 5, rounds: int = 200, clients: int = 50, k: int = 5) -> int:
    """Write len(SAMPLERS) x seeds runs under ``root``; returns the number of runs."""
    groups = [i // (clients // 5) for i in range(clients)]
    for s_i, sampler in enumerate(SAMPLERS):
        for seed in range(seeds):
            rng = np.random.default_rng(100 * s_i + seed)
            run = root / f"{sampler}_seed{seed}"
            run.mkdir(parents=True)
            config = {
                "dataset": {"name": "fmnist"},
                "partitioner": {"_target_": "fedsim.data.partitioners.GroupsPartitioner",
                                "alphas": [0.001, 0.002, 0.005, 0.01, 0.2], "min_size_fraction": 0.2},
                "sampler": {"_target_": f"x.{sampler.capitalize()}Sampler"},
                "seed": seed, "num_clients": clients, "clients_per_round": k, "num_rounds": rounds,
            }
            (run / "config.yaml").write_text(yaml.safe_dump(config))
            level = 0.8 * (1 - np.exp(-np.arange(1, rounds + 1) / (40 + 5 * s_i)))
            lines = []
            for r in range(rounds):
                acc = float(np.clip(level[r] + rng.normal(0, 0.03), 0, 1))
                row = {"round": r + 1, "accuracy": round(acc, 4), "loss": 1 - acc, "train_loss": 0.5,
                       "selected": rng.choice(clients, k, replace=False).tolist(), "failed": [],
                       "per_class_accuracy": np.clip(acc + rng.normal(0, 0.1, 10), 0, 1).round(4).tolist()}
                lines.append(json.dumps(row))
            (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
            (run / "partition.json").write_text(json.dumps({"num_clients": clients, "groups": groups}))
            (run / "summary.json").write_text(json.dumps({"sampler": sampler, "final_accuracy": acc}))
    return len(SAMPLERS) * seeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "sweep"
        n = build(root)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "fedsim.compare", str(root), "--out", str(Path(tmp) / "out")],
                           check=True, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - start)
        files = sorted(p.name for p in (Path(tmp) / "out").iterdir())
    print(f"{n} runs x 200 rounds: fedsim-compare end to end {min(times):.2f} s best, "
          f"{sum(times) / len(times):.2f} s mean of {args.repeats} ({', '.join(f'{t:.2f}' for t in times)})")
    print("wrote:", ", ".join(files))


if __name__ == "__main__":
    main()
