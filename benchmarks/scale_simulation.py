"""A cross-device-scale simulation: 100,000 clients, K = 100, a small model, 20 rounds.

Runs fedsim in-process on synthetic data (IID, 2 examples per client, an MLP), with
the given samplers, and reports per-round seconds (train / selection), the whole run's
wall time and the process's peak memory. HiCS-FL uses its scalable mode; note that with
N = 100,000 and K = 100 its warm-up (every client reports once) lasts 1,000 rounds, so a
20-round run exercises the warm-up path, not the clustering (timed separately by
``hics_selection_time.py``).

    python benchmarks/scale_simulation.py --clients 100000 --rounds 20 --samplers random hics
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path


from fedsim.config import compose_config as make_config  # noqa: E402
from fedsim.experiment import build_experiment, run_experiment  # noqa: E402
from fedsim.results.recorder import read_jsonl  # noqa: E402


def run(clients: int, rounds: int, k: int, sampler: str) -> dict:
    """One run; returns timings."""
    extra = ["sampler.mode=scalable"] if sampler == "hics" else []
    config = make_config(
        [
            "dataset=synthetic", f"dataset.num_train={2 * clients}", "dataset.num_test=2000",
            "partitioner=iid", f"num_clients={clients}", f"clients_per_round={k}", f"num_rounds={rounds}",
            "model=mlp", "model.hidden=[32]", "train.epochs=1", "progress=false", "checkpoint_every=0",
            f"sampler={sampler}", *extra,
        ]
    )
    started = time.perf_counter()
    experiment = build_experiment(config)
    built = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as folder:
        summary = run_experiment(experiment, Path(folder) / "run")
        rows = read_jsonl(Path(folder) / "run" / "metrics.jsonl")
    return {
        "build_seconds": built,
        "run_seconds": summary["wall_seconds"],
        "round_seconds": statistics.mean(r["train_seconds"] + r["selection_seconds"] for r in rows[1:]),
        "selection_seconds": statistics.mean(r["selection_seconds"] for r in rows[1:]),
        "accuracy": summary["final_accuracy"],
    }


def main() -> None:
    """Run each sampler at scale and print/save a table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--clients-per-round", type=int, default=100)
    parser.add_argument("--samplers", nargs="+", default=["random", "hics"])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/scale_simulation.md"))
    args = parser.parse_args()
    lines = [
        f"N = {args.clients}, K = {args.clients_per_round}, {args.rounds} rounds, MLP (32 hidden), IID synthetic data",
        "",
        "| sampler | set-up s | run s (incl. node discovery) | s/round (rounds 2..R) | selection s/round | final acc. |",
        "|---|---|---|---|---|---|",
    ]
    for sampler in args.samplers:
        r = run(args.clients, args.rounds, args.clients_per_round, sampler)
        lines.append(
            f"| {sampler} | {r['build_seconds']:.1f} | {r['run_seconds']:.1f} | {r['round_seconds']:.3f} | "
            f"{r['selection_seconds']:.4f} | {r['accuracy']:.3f} |"
        )
        print(lines[-1], flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    lines += ["", f"Peak memory of the process (all runs): {peak:.2f} GiB"]
    print(lines[-1])
    command = "python benchmarks/scale_simulation.py " + " ".join(sys.argv[1:])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(f"Produced by: `{command}`\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
