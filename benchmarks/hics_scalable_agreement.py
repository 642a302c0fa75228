"""Agreement of HiCS-FL's scalable clustering with the exact mode (adjusted Rand index).

Clients get the synthetic bias updates of ``hics_selection_time.synthetic_reports`` (the
paper's five Dirichlet groups); the exact mode's clusters (Ward on the rows of the N x N
distance matrix) are compared with ``scalable_clusters`` for several micro-cluster counts
m. With m >= N the scalable mode has nothing to approximate, so rows with m < N measure
the approximation itself: with N <= ``--direct-factor`` x m (default 4, as in
``scalable_clusters``) its micro-clusters are Ward's first merges on landmark profiles,
above that k-means ones (``--direct-factor 1`` forces k-means, the method before Ward
micro-clusters). Prints a markdown table and writes it to ``--out``.

    python benchmarks/hics_scalable_agreement.py --n 1000 --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import adjusted_rand_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hics_selection_time import synthetic_reports  # noqa: E402

from fedsim.selection.geometry import hics_distance_matrix  # noqa: E402
from fedsim.selection.hics import estimate_entropy, ward_clusters  # noqa: E402
from fedsim.selection.hics_scalable import hics_embedding, scalable_clusters  # noqa: E402


def main() -> None:
    """Parse arguments, compare exact and scalable clusters per seed and m, save the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--clusters", type=int, default=None, help="M (default: K = N/10, at most 100)")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--temperature", type=float, default=0.0025)
    parser.add_argument("--lam", type=float, default=10.0)
    parser.add_argument("--micro", nargs="+", type=int, default=[250, 500, 1000])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--direct-factor", type=float, default=4.0,
                        help="Ward micro-clusters up to this many times m clients, k-means above (1: always k-means)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/hics_scalable_agreement.md"))
    args = parser.parse_args()
    m_clusters = args.clusters or max(5, min(100, args.n // 10))
    scores: dict[int, list[float]] = {m: [] for m in args.micro}
    seconds: dict[int, list[float]] = {m: [] for m in args.micro}
    exact_seconds = []
    for seed in args.seeds:
        reports = synthetic_reports(args.n, args.classes, np.random.default_rng(seed))
        updates = np.array([r.bias_update for r in reports])
        entropies = estimate_entropy(updates, args.temperature)
        start = time.perf_counter()
        exact = ward_clusters(hics_distance_matrix(updates, entropies, args.lam), m_clusters)
        exact_seconds.append(time.perf_counter() - start)
        for m in args.micro:
            start = time.perf_counter()
            embedding = hics_embedding(updates, entropies, args.lam)
            labels, _ = scalable_clusters(embedding, m_clusters, np.random.default_rng(seed), args.lam, max_micro=m,
                                          direct_factor=args.direct_factor)
            seconds[m].append(time.perf_counter() - start)
            scores[m].append(adjusted_rand_score(exact, labels))
    lines = [
        f"N = {args.n}, M = {m_clusters} clusters, C = {args.classes}, T = {args.temperature}, "
        f"lambda = {args.lam}, seeds {args.seeds}; exact clustering {np.mean(exact_seconds):.3f} s (mean); "
        f"Ward micro-clusters for N <= {args.direct_factor:g} m, k-means above",
        "",
        "| micro-clusters m | ARI per seed | ARI mean | ARI min | scalable seconds (mean) |",
        "|---|---|---|---|---|",
    ]
    for m in args.micro:
        note = (" (m >= N: no approximation)" if m >= args.n
                else " (Ward micro-clusters)" if args.n <= args.direct_factor * m else " (k-means micro-clusters)")
        per_seed = " ".join(f"{s:.3f}" for s in scores[m])
        lines.append(
            f"| {m}{note} | {per_seed} | {np.mean(scores[m]):.3f} | {np.min(scores[m]):.3f} | {np.mean(seconds[m]):.3f} |"
        )
    print("\n".join(lines), flush=True)
    command = "python benchmarks/hics_scalable_agreement.py " + " ".join(
        f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
        for k, v in vars(args).items()
        if k != "out" and v is not None
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(f"Produced by: `{command}`\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
