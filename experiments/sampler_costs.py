"""Extra cost per round of every sampler on one common setting, as a markdown table.

Setting: the bundled digits, 20 Dirichlet(0.5) clients, K = 5, 30 rounds, inline engine,
seed 0 (FedCor's warm-up shortened to 5 rounds so its greedy rounds are included). Per
round, averaged over the run: extra messages (pre-selection probes: requests + replies),
extra array bytes moved by them, extra examples the clients processed for them, and the
server's selection seconds. Training traffic itself (K models each way) is the same for
every sampler and is shown once.

    python experiments/sampler_costs.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

from fedsim.config import compose_config
from fedsim.experiment import build_experiment, run_experiment
from fedsim.results.recorder import read_jsonl

SAMPLERS = {
    "random": [],
    "hics": [],
    "hics_reference": [],
    "powd (d = N)": ["sampler=powd"],
    "powd_2k (d = 2K)": ["sampler=powd_2k"],
    "clustered": [],
    "divfl (ideal)": ["sampler=divfl"],
    "divfl_stale": [],
    "fedcor": ["sampler.warmup_rounds=5"],
}
BASE = ["num_clients=20", "clients_per_round=5", "num_rounds=30", "progress=false", "checkpoint_every=0"]


def measure(label: str, extra: list[str]) -> dict[str, float]:
    """Run one sampler and average its per-round costs."""
    name = label.split(" ")[0]
    overrides = BASE + ([f"sampler={name}"] if not any(e.startswith("sampler=") for e in extra) else []) + extra
    with tempfile.TemporaryDirectory() as folder:
        summary = run_experiment(build_experiment(compose_config(overrides)), Path(folder) / "run")
        rows = read_jsonl(Path(folder) / "run" / "metrics.jsonl")

    def mean(key: str) -> float:
        return statistics.mean(r[key] for r in rows)

    return {
        "messages": mean("extra_messages"),
        "kib": mean("extra_bytes") / 1024,
        "examples": mean("extra_client_examples"),
        "selection": mean("selection_seconds"),
        "train_kib": mean("train_reply_bytes") / 1024,
        "accuracy": summary["final_accuracy"],
    }


def main() -> None:
    """Measure every sampler; print and save the table."""
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("experiments/results/sampler_costs.md")
    lines = [
        "| sampler | extra messages / round | extra KiB / round | extra client examples / round | selection ms / round | final acc. |",
        "|---|---|---|---|---|---|",
    ]
    train_kib = None
    for label, extra in SAMPLERS.items():
        cost = measure(label, extra)
        train_kib = cost["train_kib"]
        lines.append(
            f"| {label} | {cost['messages']:.1f} | {cost['kib']:.1f} | {cost['examples']:.0f} | "
            f"{1000 * cost['selection']:.2f} | {cost['accuracy']:.3f} |"
        )
        print(lines[-1], flush=True)
    note = (
        f"Common to all: K = 5 training replies of {train_kib:.1f} KiB per round in total (weights plus the "
        "output-layer update), and 5 instructions carrying the global model."
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("Produced by: `python experiments/sampler_costs.py`\n\n" + "\n".join(lines) + f"\n\n{note}\n")


if __name__ == "__main__":
    main()
