"""Server-side HiCS-FL selection time per round, and its peak memory, as N grows.

Clients get synthetic bias updates shaped like real ones (lr x (label distribution -
softmax), plus noise) from the paper's five heterogeneity groups; every client reports
once (the warm-up), then one post-warm-up selection is timed. Each (mode, N) runs in its
own process with a time limit, so a size that does not fit reports "timed out" instead
of hanging the benchmark. Prints a markdown table and writes it to ``--out``.

    python benchmarks/hics_selection_time.py --sizes 50 1000 10000 --timeout 300
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time
from pathlib import Path

import numpy as np

from fedsim.selection.base import ClientReport

ALPHAS = (0.001, 0.002, 0.005, 0.01, 0.2)


def synthetic_reports(num_clients: int, num_classes: int, rng: np.random.Generator) -> list[ClientReport]:
    """Bias updates a client with label distribution D would send: lr * steps * (D - 1/C) + noise."""
    groups = np.arange(num_clients) * len(ALPHAS) // num_clients
    reports = []
    for k in range(num_clients):
        dist = rng.dirichlet(np.full(num_classes, ALPHAS[groups[k]]))
        bias = 0.01 * (dist - 1.0 / num_classes) + rng.normal(0, 1e-4, num_classes)
        weight = np.outer(bias, rng.normal(size=8))
        reports.append(ClientReport(k, 100, 1.0, 10, bias, weight))
    return reports


def measure(mode: str, num_clients: int, clients_per_round: int, num_classes: int, queue: mp.Queue) -> None:
    """Set up a sampler, feed every client's report, time one selection (child process)."""
    from fedsim.selection.hics import HiCSSampler

    rng = np.random.default_rng(0)
    sampler = HiCSSampler(mode=mode) if mode != "exact" else HiCSSampler()
    sampler.setup(np.full(num_clients, 100.0), clients_per_round, 200, np.random.default_rng(1))
    sampler.observe(0, synthetic_reports(num_clients, num_classes, rng))
    available = np.arange(num_clients)
    start = time.perf_counter()
    selected = sampler.select(10, available, clients_per_round, {})
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put({"seconds": seconds, "peak_mib": peak_mib, "selected": len(set(selected))})


def run_with_limit(mode: str, n: int, k: int, c: int, timeout: float) -> dict | None:
    """Run :func:`measure` in a child process; None if it ran past ``timeout``."""
    queue: mp.Queue = mp.get_context("fork").Queue()
    child = mp.get_context("fork").Process(target=measure, args=(mode, n, k, c, queue))
    child.start()
    child.join(timeout)
    if child.is_alive():
        child.kill()
        child.join()
        return None
    return queue.get() if not queue.empty() else None


def main() -> None:
    """Parse arguments, measure every (mode, N), print and save the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[50, 1000, 10000])
    parser.add_argument("--modes", nargs="+", default=["exact"])
    parser.add_argument("--clients-per-round", type=int, default=None, help="K (default: N/10, at most 100)")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/hics_selection_time.md"))
    args = parser.parse_args()
    lines = [
        "| mode | N | K | selection seconds | peak memory of the process (MiB) |",
        "|---|---|---|---|---|",
    ]
    for mode in args.modes:
        for n in args.sizes:
            k = args.clients_per_round or max(5, min(100, n // 10))
            result = run_with_limit(mode, n, k, args.classes, args.timeout)
            if result is None:
                lines.append(f"| {mode} | {n} | {k} | timed out (> {args.timeout:.0f} s) | - |")
            else:
                lines.append(f"| {mode} | {n} | {k} | {result['seconds']:.4f} | {result['peak_mib']:.0f} |")
            print(lines[-1], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/hics_selection_time.py " + " ".join(
        f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
        for k, v in vars(args).items() if k != "out" and v is not None
    )
    args.out.write_text(f"Produced by: `{command}`\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
