"""The FMNIST setting-2 workload on the CPU and on a GPU: same accuracies, seconds per round.

Runs ``+experiment=paper_fmnist_s2`` (random sampler, central evaluation every round) for
``--rounds`` rounds with fedsim's round calls (``round_profile.run_profiled``: the client
runtime and the central evaluator on the device; the evaluation in the background, as
fedsim runs by default, unless ``--eval-in-line``), once on the CPU and once on CUDA.
GPU kernels are not bit-identical to CPU ones, so accuracies are compared to a float
tolerance: ``--tolerance`` (default 0.02 absolute per round: the trajectories drift apart
by float rounding over rounds of SGD) on every round's accuracy, and the same clients
selected (selection does not depend on the model with the random sampler). Exits 0 and
says so when no GPU is visible.

    python benchmarks/gpu_check.py --rounds 20 --out benchmarks/results/gpu_check.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from round_profile import run_profiled, workload_config  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--tolerance", type=float, default=0.02)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--eval-in-line", action="store_true", help="evaluate in line (eval_in_background=false)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU visible here; skipped (CPU-only machine).")
        return 0
    results = {}
    for device in ("cpu", args.device):
        cfg = workload_config("fmnist_s2", args.rounds, ["sampler=random"])
        profile, _ = run_profiled(cfg, device=device, eval_in_background=not args.eval_in_line)
        seconds = profile.seconds_per_round[1:] or profile.seconds_per_round
        results[device] = {
            "accuracy": [row["accuracy"] for row in profile.rows],
            "loss": [row["loss"] for row in profile.rows],
            "selected": profile.selected,
            "s_per_round": float(np.mean(seconds)),
        }
        print(f"{device}: {results[device]['s_per_round']:.3f} s/round, final accuracy "
              f"{results[device]['accuracy'][-1]:.4f}", flush=True)
    cpu, gpu = results["cpu"], results[args.device]
    gaps = np.abs(np.array(cpu["accuracy"]) - np.array(gpu["accuracy"]))
    same_clients = cpu["selected"] == gpu["selected"]
    ok = bool(gaps.max() <= args.tolerance and same_clients)
    lines = [
        f"Produced by: `python benchmarks/gpu_check.py {' '.join(sys.argv[1:])}` on {torch.cuda.get_device_name()}",
        "",
        "| device | s/round (rounds 2..R) | final accuracy |",
        "|---|---|---|",
        f"| cpu (1 thread) | {cpu['s_per_round']:.3f} | {cpu['accuracy'][-1]:.4f} |",
        f"| {args.device} | {gpu['s_per_round']:.3f} | {gpu['accuracy'][-1]:.4f} |",
        "",
        f"- speed-up {cpu['s_per_round'] / gpu['s_per_round']:.2f}x; max per-round accuracy gap {gaps.max():.4f} "
        f"(tolerance {args.tolerance}); same clients every round: {same_clients}; **{'PASS' if ok else 'FAIL'}**",
    ]
    print("\n".join(lines))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
