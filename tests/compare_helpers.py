"""Tiny fedsim run folders for the fedsim.compare tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

RANDOM = {"_target_": "fedsim.selection.random.RandomSampler", "proportional": True}
HICS = {"_target_": "fedsim.selection.hics.HiCSSampler", "temperature": 0.0025}
GROUPS_PART = {"_target_": "fedsim.data.partitioners.GroupsPartitioner", "alphas": [0.001, 0.2], "min_size_fraction": 0.2}


def write_run(root: Path, name: str, *, sampler: dict[str, Any] = RANDOM, seed: int = 0,
              accuracies: list[float | None], summary_sampler: str | None = None, finished: bool = True,
              selected: list[list[int]] | None = None, groups: list[int] | None = (0, 0, 1, 1),  # type: ignore[assignment]
              per_class: list[list[float] | None] | None = None, hydra_choice: str | None = None,
              extra_config: dict[str, Any] | None = None, num_rounds: int | None = None) -> Path:
    """A run folder as fedsim writes it: config.yaml, metrics.jsonl, partition.json, summary.json."""
    run_dir = root / name
    run_dir.mkdir(parents=True)
    config = {
        "dataset": {"_target_": "fedsim.data.datasets.IdxSource", "name": "fmnist", "root": "/x"},
        "partitioner": GROUPS_PART, "sampler": sampler, "seed": seed, "num_clients": 4,
        "clients_per_round": 2, "num_rounds": num_rounds or len(accuracies), **(extra_config or {}),
    }
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    selected = selected or [[0, 1], [2, 3], [0, 2], [1, 3]]
    rows = []
    for i, accuracy in enumerate(accuracies):
        row = {"round": i + 1, "accuracy": accuracy, "loss": 1.0, "selected": selected[i % len(selected)], "failed": []}
        if per_class is not None:
            row["per_class_accuracy"] = per_class[i]
        rows.append(row)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if groups is not None:
        (run_dir / "partition.json").write_text(json.dumps({"num_clients": 4, "groups": list(groups)}))
    if finished:
        summary = {"final_accuracy": accuracies[-1], "wall_seconds": 1.0}
        if summary_sampler:
            summary["sampler"] = summary_sampler
        (run_dir / "summary.json").write_text(json.dumps(summary))
    if hydra_choice:
        (run_dir / ".hydra").mkdir()
        (run_dir / ".hydra" / "hydra.yaml").write_text(
            yaml.safe_dump({"hydra": {"runtime": {"choices": {"sampler": hydra_choice}}}}))
    return run_dir
