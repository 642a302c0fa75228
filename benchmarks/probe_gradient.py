"""Seconds per DivFL probe of one client on one CPU core: one pass against two.

A DivFL (ideal) round probes every client for its loss and full-batch gradient, so on
Fashion-MNIST setting 2 the probe, not training, sets the round time. This compares
the former probe (an evaluation pass, then a gradient pass in batches of 1024) with
``evaluate_with_gradient`` (loss, accuracy and gradient from one pass) at several batch
sizes, on a client-sized batch of random images. Ratios come from one run; absolute
times on a shared machine are not meant to be quoted.

    python benchmarks/probe_gradient.py --examples 1200 --repeats 5
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from fedsim.client.training import evaluate_model, evaluate_with_gradient
from fedsim.models import FmnistCnnReference, paper_network


def two_pass_probe(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> None:
    """The former probe: an evaluation pass, then a separate gradient pass."""
    evaluate_model(model, x, y)
    model.zero_grad(set_to_none=True)
    for start in range(0, len(y), batch_size):
        loss = F.cross_entropy(model(x[start : start + batch_size]), y[start : start + batch_size], reduction="sum")
        (loss / len(y)).backward()
    model.zero_grad(set_to_none=True)


def seconds_per_call(probe: Callable[[], object], repeats: int) -> float:
    """Mean wall seconds of ``probe`` over ``repeats`` calls, after one warm-up call."""
    probe()
    start = time.perf_counter()
    for _ in range(repeats):
        probe()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    """Time each probe variant and print (and write) a markdown table of ratios."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=1200, help="examples on the probed client")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", default="auto", choices=["auto", "fmnist_cnn_reference"],
                        help="the paper's FMNIST CNN (auto) or the authors' code's")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/probe_gradient.md"))
    args = parser.parse_args()

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = (FmnistCnnReference((1, 28, 28), 10) if args.model == "fmnist_cnn_reference"
             else paper_network((1, 28, 28), 10, "fmnist"))
    x = torch.randn(args.examples, 1, 28, 28)
    y = torch.randint(0, 10, (args.examples,))

    baseline = seconds_per_call(lambda: two_pass_probe(model, x, y), args.repeats)
    rows = [("two passes (evaluate, then gradient in batches of 1024)", baseline)]
    for batch_size in (64, 128, 256, 1024):
        seconds = seconds_per_call(lambda: evaluate_with_gradient(model, x, y, batch_size), args.repeats)
        rows.append((f"one pass, batches of {batch_size}", seconds))

    lines = [
        f"DivFL probe of one client ({args.examples} examples, model `{args.model}`, 1 thread), "
        f"mean of {args.repeats} calls.",
        "",
        "| probe | seconds | time relative to two passes |",
        "|---|---|---|",
        *[f"| {name} | {seconds:.3f} | {seconds / baseline:.2f} |" for name, seconds in rows],
    ]
    table = "\n".join(lines)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(f"Command: `python benchmarks/probe_gradient.py --examples {args.examples} "
                        f"--repeats {args.repeats} --model {args.model}`\n\n{table}\n")


if __name__ == "__main__":
    main()
