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
from fedsim.safe_io import RECORDS_LIMIT, open_write, parse_json, read_text, write_text_atomic


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


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write strict JSON atomically (see :func:`write_text_atomic`)."""
    write_text_atomic(path, strict_json(payload, indent=1))


def record_problem(line: str, previous_round: int, num_rounds: int) -> str | None:
    """Why one ``metrics.jsonl`` line is not a record fedsim wrote (None when it is one)."""
    try:
        row = parse_json(line)
    except ValueError as exc:
        return f"not strict JSON ({str(exc).splitlines()[0]})"
    if not isinstance(row, dict):
        return "not a JSON object"
    number = row.get("round")
    if isinstance(number, bool) or not isinstance(number, int):
        return f"round is {number!r}, not a whole number"
    if not previous_round < number <= num_rounds:
        return f"round {number} is not between {previous_round + 1} and num_rounds={num_rounds}"
    selected = row.get("selected", [])
    if not isinstance(selected, list) or any(isinstance(c, bool) or not isinstance(c, int) or c < 0
                                             for c in selected):
        return "selected is not a list of client ids"
    accuracy = row.get("accuracy")
    if accuracy is not None and (isinstance(accuracy, bool) or not isinstance(accuracy, (int, float))
                                 or not 0.0 <= accuracy <= 1.0):
        return f"accuracy {accuracy!r} is not a number in [0, 1]"
    return None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file, skipping a torn last line (or any line that is not a JSON object).

    Read through :mod:`fedsim.safe_io`: a link, a special file, more than
    :data:`~fedsim.safe_io.RECORDS_LIMIT` bytes or invalid UTF-8 is refused in one line.
    """
    rows = []
    if os.path.lexists(path):
        for line in read_text(path, RECORDS_LIMIT).splitlines():
            try:
                row = parse_json(line)
            except ValueError:
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
        if not os.path.lexists(path):
            return
        kept = [row for row in read_jsonl(path) if row.get("round", 0) <= last_round]
        write_text_atomic(path, "".join(strict_json(row) + "\n" for row in kept))

    def rows(self) -> list[dict[str, Any]]:
        """The metrics rows written so far."""
        return self.read_rows(self.run_dir)

    @classmethod
    def check_records(cls, run_dir: str | Path, num_rounds: int) -> None:
        """Refuse (ConfigError, naming file and line) records that fedsim did not write.

        Every line but a torn last one must be a strict-JSON object whose ``round`` is a whole
        number from 1 to ``num_rounds``, in increasing order, with an ``accuracy`` that is
        null or a number in [0, 1]. A folder is untrusted: these rows decide where a resumed
        run continues.
        """
        path = Path(run_dir) / cls.METRICS
        lines = read_text(path, RECORDS_LIMIT).splitlines() if os.path.lexists(path) else []
        last = 0
        for number, line in enumerate(lines[:-1], start=1):
            problem = record_problem(line, last, num_rounds)
            if problem:
                raise ConfigError(f"{path}: line {number}: {problem}; the records cannot be continued")
            last = parse_json(line)["round"]

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
        with open_write(self.run_dir / name, append=True) as handle:
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
        failed = sum(len(r.get("failed", [])) for r in rows)
        rejected = sum(len(r.get("rejected", {})) for r in rows)
        # a round trained when some selected client's reply was used (``failed`` includes the rejected)
        trained = sum(len(r.get("selected", [])) > len(r.get("failed", [])) for r in rows)
        summary.update(
            final_accuracy=accuracies[-1] if accuracies else None,
            best_accuracy=max(accuracies) if accuracies else None,
            failed_client_rounds=failed,
            rejected_replies=rejected,
            rounds_trained=trained,
            no_usable_reply=bool(rows) and trained == 0,
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
