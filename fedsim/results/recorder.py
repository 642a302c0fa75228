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

    def __init__(self, run_dir: str | Path, resume_after_round: int | None = None) -> None:
        """Start a new run's records, or (``resume_after_round``) continue an old run's.

        A new run refuses a folder that already holds one. Resuming keeps the rows of
        rounds up to ``resume_after_round`` (the checkpoint) and drops later ones, which
        the resumed run recomputes.
        """
        self.run_dir = Path(run_dir)
        if resume_after_round is None:
            if (self.run_dir / self.METRICS).exists():
                raise ConfigError(
                    f"output folder {self.run_dir} already holds a run; choose another "
                    f"(hydra.run.dir=...) or continue it with resume={self.run_dir}"
                )
            self.run_dir.mkdir(parents=True, exist_ok=True)
        else:
            for name in (self.METRICS, self.SAMPLER):
                self._truncate(name, resume_after_round)

    def _truncate(self, name: str, last_round: int) -> None:
        """Keep only rows of rounds <= last_round (rewritten atomically)."""
        path = self.run_dir / name
        if not path.exists():
            return
        kept = [row for row in read_jsonl(path) if row.get("round", 0) <= last_round]
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(json.dumps(row) + "\n" for row in kept))
        os.replace(tmp, path)

    def rows(self) -> list[dict[str, Any]]:
        """The metrics rows written so far."""
        return read_jsonl(self.run_dir / self.METRICS)

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
