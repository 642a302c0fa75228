"""Reading run records: accuracy curves and rounds to a target accuracy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fedsim.results.recorder import read_jsonl


def accuracy_curve(rows: list[dict[str, Any]]) -> list[tuple[int, float]]:
    """(round, accuracy) for the rounds that were evaluated."""
    return [(int(r["round"]), float(r["accuracy"])) for r in rows if r.get("accuracy") is not None]


def rounds_to_target(rows: list[dict[str, Any]], target: float, window: int = 1) -> int | None:
    """First round at which accuracy reaches ``target``; None if never reached.

    With ``window`` > 1 the test is on the mean of the last ``window`` evaluated rounds
    (a trailing moving average, first defined once ``window`` evaluations exist), so one
    lucky round of a noisy curve does not count as reaching the target. ``window=1`` is
    the usual "first round at or above the target".
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    curve = accuracy_curve(rows)
    for end in range(window - 1, len(curve)):
        recent = [accuracy for _, accuracy in curve[end - window + 1 : end + 1]]
        if sum(recent) / window >= target:
            return curve[end][0]
    return None


def load_run(run_dir: str | Path) -> dict[str, Any]:
    """A run folder's metrics rows, summary (None if unfinished) and resolved config text."""
    run_dir = Path(run_dir)
    summary_path = run_dir / "summary.json"
    return {
        "dir": run_dir,
        "rows": read_jsonl(run_dir / "metrics.jsonl"),
        "summary": json.loads(summary_path.read_text()) if summary_path.exists() else None,
    }
