"""How well HiCS-FL's entropy estimate ranks clients, as a function of temperature T.

Runs the warm-up of Fashion-MNIST setting 2 (ceil(N/K) rounds: every client reports its
bias update once, from a young global model), then computes the Spearman correlation
between entropy(softmax(delta_b / T)) and the true label entropy for several T, from
the bias updates stored in the run's checkpoint. Writes ``estimator_check.md``.

    python experiments/hics_estimator_check.py --seed 0
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from fedsim.results.checkpoint import load_checkpoint
from fedsim.selection.hics import estimate_entropy

TEMPERATURES = [0.0005, 0.0025, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0]


def main() -> None:
    """Run the warm-up (if not done yet) and tabulate Spearman vs T."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("experiments/results/fmnist_s2_estimator_check"))
    args, extra = parser.parse_known_args()
    run_dir = args.out / f"seed{args.seed}"
    if not (run_dir / "summary.json").exists():
        subprocess.run(
            [sys.executable, "-m", "fedsim.cli", "+experiment=paper_fmnist_s2", "sampler=hics", f"seed={args.seed}",
             "num_rounds=10", "checkpoint_every=10", "progress=false", f"hydra.run.dir={run_dir}", *extra],
            check=True, stdout=subprocess.DEVNULL,
        )
    checkpoint = load_checkpoint(run_dir)
    signal = next(v for k, v in checkpoint.sampler_arrays.items() if k.endswith("_signal"))
    partition = json.loads((run_dir / "partition.json").read_text())
    truth = np.asarray(partition["label_entropy"])
    spread = np.median(signal.max(axis=1) - signal.min(axis=1))
    lines = [
        f"# HiCS-FL estimator after warm-up (FMNIST setting 2, seed {args.seed})",
        "",
        f"Produced by: `python {' '.join(sys.argv)}`",
        "",
        f"Median spread (max - min) of a client's delta_b: {spread:.4f}; paper T = 0.0025.",
        "",
        "| T | Spearman(estimated, true entropy) | mean estimated entropy (nats) |",
        "|---|---|---|",
    ]
    for temperature in TEMPERATURES:
        estimate = estimate_entropy(signal, temperature)
        rho = spearmanr(estimate, truth).statistic
        lines.append(f"| {temperature} | {rho:.3f} | {np.mean(estimate):.3f} |")
    lines += ["", f"True label entropy: mean {truth.mean():.3f}, max {truth.max():.3f} (ln 10 = 2.303)."]
    (args.out / f"estimator_check_seed{args.seed}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
