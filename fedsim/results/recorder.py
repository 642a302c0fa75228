"""Writes a run's records as the run goes, so a crash loses nothing already done.

Files in the run folder:
- ``config.yaml``: the resolved configuration;
- ``partition.json``: per-client sizes, label histograms, label entropy, groups;
- ``metrics.jsonl``: one JSON line per round (flushed and fsynced as rounds finish);
- ``sampler.jsonl``: the sampler's per-round diagnostics, when it has any;
- ``summary.json``: final/best accuracy, rounds run, wall time (written atomically).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fedsim.errors import ConfigError


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON to a temporary file and rename it over ``path`` (never half-written)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as handle:
        json.dump(payload, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file, skipping a torn last line."""
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


class RunRecorder:
    """Appends per-round lines and writes the run's other files."""

    METRICS = "metrics.jsonl"
    SAMPLER = "sampler.jsonl"
    SUMMARY = "summary.json"
    PARTITION = "partition.json"
    CONFIG = "config.yaml"

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        if (self.run_dir / self.METRICS).exists():
            raise ConfigError(
                f"output folder {self.run_dir} already holds a run; choose another "
                f"(hydra.run.dir=...) instead of overwriting it"
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)

    def write_config(self, yaml_text: str) -> None:
        """Save the resolved configuration."""
        (self.run_dir / self.CONFIG).write_text(yaml_text)

    def write_partition(self, stats: dict[str, Any]) -> None:
        """Save the partition statistics (the ground truth of heterogeneity)."""
        write_json_atomic(self.run_dir / self.PARTITION, stats)

    def _append(self, name: str, row: dict[str, Any]) -> None:
        with open(self.run_dir / name, "a") as handle:
            handle.write(json.dumps(row) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def log_round(self, row: dict[str, Any]) -> None:
        """Append one round's metrics."""
        self._append(self.METRICS, row)

    def log_sampler(self, row: dict[str, Any]) -> None:
        """Append one round's sampler diagnostics."""
        self._append(self.SAMPLER, row)

    def write_summary(self, summary: dict[str, Any]) -> None:
        """Save the run's summary."""
        write_json_atomic(self.run_dir / self.SUMMARY, summary)
