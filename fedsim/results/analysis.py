"""Reading run records: accuracy curves and rounds to a target accuracy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fedsim.results.recorder import read_jsonl


def accuracy_curve(rows: list[dict[str, Any]]) -> list[tuple[int, float]]:
    """(round, accuracy) for the rounds that were evaluated."""
    return [(int(r["round"]), float(r["accuracy"])) for r in rows if r.get("accuracy") is not None]


def rounds_to_target(rows: list[dict[str, Any]], target: float) -> int | None:
    """First round whose global accuracy is >= ``target``; None if never reached."""
    for server_round, accuracy in accuracy_curve(rows):
        if accuracy >= target:
            return server_round
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
