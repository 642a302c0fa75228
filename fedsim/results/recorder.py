"""Writes a run's records as the run goes, so a crash loses nothing already done.

Files in the run folder:
- ``config.yaml``: the resolved configuration;
- ``partition.json``: per-client sizes, label histograms, label entropy, groups;
- ``metrics.jsonl``: one JSON line per round (flushed and fsynced as rounds finish);
- ``sampler.jsonl``: the sampler's per-round diagnostics, when it has any;
- ``summary.json``: final/best accuracy, rounds run, wall time (written atomically).

Every record is strict JSON: a non-finite number (a diverged loss) is written as ``null``,
never as a bare ``NaN``. :class:`RecordsHook` and :class:`SummaryFile` are the round hooks
that write them as the run goes.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from fedsim.errors import ConfigError
from fedsim.hooks import RoundHook, RoundResult, RunContext


def finite_or_null(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, inf) replaced by None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(v) for v in value]
    return value


def strict_json(payload: Any, **kwargs: Any) -> str:
    """JSON text of ``payload`` with non-finite numbers as ``null`` (valid JSON everywhere)."""
    return json.dumps(finite_or_null(payload), allow_nan=False, **kwargs)


def write_text_atomic(path: Path, text: str) -> None:
    """Write text to a temporary file and rename it over ``path`` (never half-written)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write strict JSON atomically (see :func:`write_text_atomic`)."""
    write_text_atomic(path, strict_json(payload, indent=1))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file, skipping a torn last line."""
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict):  # anything else is not a record (a torn or foreign line)
                rows.append(row)
    return rows


METRICS_FILE = "metrics.jsonl"
"""A run's per-round records: the file that makes a folder a run folder."""


class RunRecorder:
    """Appends per-round lines and writes the run's other files."""

    METRICS = METRICS_FILE
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
        write_text_atomic(path, "".join(strict_json(row) + "\n" for row in kept))

    def rows(self) -> list[dict[str, Any]]:
        """The metrics rows written so far."""
        return self.read_rows(self.run_dir)

    @classmethod
    def check_records(cls, run_dir: str | Path) -> None:
        """Refuse (ConfigError) a ``metrics.jsonl`` with a line that is not a record, except a torn last one."""
        path = Path(run_dir) / cls.METRICS
        lines = path.read_text().splitlines() if path.exists() else []
        for number, line in enumerate(lines[:-1], start=1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                row = None
            if not isinstance(row, dict):
                raise ConfigError(f"{path}: line {number} is not a fedsim record; the records cannot be continued")

    @classmethod
    def read_rows(cls, run_dir: str | Path) -> list[dict[str, Any]]:
        """The metrics rows of the run in ``run_dir`` (none if it has no records)."""
        return read_jsonl(Path(run_dir) / cls.METRICS)

    def write_config(self, yaml_text: str) -> None:
        """Save the resolved configuration (atomically: a crash never leaves half a file)."""
        write_text_atomic(self.run_dir / self.CONFIG, yaml_text)

    def write_partition(self, stats: dict[str, Any]) -> None:
        """Save the partition statistics (the ground truth of heterogeneity)."""
        write_json_atomic(self.run_dir / self.PARTITION, stats)

    def _append(self, name: str, row: dict[str, Any]) -> None:
        with open(self.run_dir / name, "a") as handle:
            handle.write(strict_json(row) + "\n")
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


class RecordsHook(RoundHook):
    """Writes each round's ``metrics.jsonl`` row and ``sampler.jsonl`` diagnostics.

    At the end it adds to the summary what the rows tell: final and best accuracy (over
    every recorded round, those before a resume included), failed client-rounds and
    rejected replies, and whether every reply of the run failed or was rejected.
    """

    def __init__(self, recorder: RunRecorder) -> None:
        self.recorder = recorder

    def on_round_end(self, result: RoundResult) -> None:
        """Append the round's rows (flushed: a crash loses nothing written)."""
        self.recorder.log_round(result.row)
        if result.sampler_diagnostics:
            self.recorder.log_sampler({"round": result.server_round, **result.sampler_diagnostics})

    def on_run_end(self, summary: dict[str, Any]) -> None:
        """Accuracy and failure counts over every recorded round."""
        rows = self.recorder.rows()
        accuracies = [r["accuracy"] for r in rows if r.get("accuracy") is not None]
        selected = sum(len(r.get("selected", [])) for r in rows)
        failed = sum(len(r.get("failed", [])) for r in rows)
        rejected = sum(len(r.get("rejected", {})) for r in rows)
        summary.update(
            final_accuracy=accuracies[-1] if accuracies else None,
            best_accuracy=max(accuracies) if accuracies else None,
            failed_client_rounds=failed,
            rejected_replies=rejected,
            no_usable_reply=selected > 0 and failed + rejected >= selected,
        )


class SummaryFile(RoundHook):
    """Adds the run's identity and wall time to the summary and writes ``summary.json``.

    Put it last: it writes what the hooks before it added.
    """

    def __init__(self, recorder: RunRecorder, identity: dict[str, Any]) -> None:
        self.recorder = recorder
        self.identity = identity

    def on_run_start(self, context: RunContext) -> None:
        """Start the wall clock."""
        self._started = time.perf_counter()

    def on_run_end(self, summary: dict[str, Any]) -> None:
        """Write the summary file atomically."""
        summary.update(self.identity, wall_seconds=round(time.perf_counter() - self._started, 3))
        self.recorder.write_summary(summary)
