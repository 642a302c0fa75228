"""The faults fedsim was put through, whether each run survived, and what data was lost.

Each scenario runs a short simulation (synthetic data, 8 clients, 3 per round, 8 rounds)
and checks the records afterwards: every round has its row, the summary exists, failures
and rejections are counted, and (for the crash) the resumed run equals an uninterrupted
one. "Data lost" counts rounds whose records are missing or differ from the reference.

    python experiments/reliability_table.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from fedsim.config import compose_config
from fedsim.experiment import build_experiment, run_experiment
from fedsim.results.recorder import read_jsonl

BASE = ["dataset=synthetic", "num_clients=8", "clients_per_round=3", "num_rounds=8", "progress=false",
        "train.epochs=1", "hics.temperature=0.01"]
TIMINGS = {"selection_seconds", "probe_seconds", "train_seconds"}


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0"}
    return subprocess.run([sys.executable, "-m", "fedsim.cli", *args], cwd=cwd, env=env, capture_output=True, text=True)


def strip(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMINGS} for r in rows]


def in_process(folder: Path, overrides: list[str]) -> tuple[bool, int, str]:
    """Run in-process; (survived, rounds lost, what was counted)."""
    try:
        summary = run_experiment(build_experiment(compose_config(BASE + overrides)), folder)
    except Exception as exc:  # noqa: BLE001 - the point is to report it
        return False, 8, f"crashed: {exc}"
    rows = read_jsonl(folder / "metrics.jsonl")
    counted = f"{summary['failed_client_rounds']} failed client-rounds, {summary['rejected_replies']} rejected replies"
    return True, 8 - len(rows), counted


def sigkill_and_resume(folder: Path, sampler: str) -> tuple[bool, int, str]:
    """Kill the process after round 5 (checkpoint at 3), resume, compare to a clean run."""
    args = BASE + [f"sampler={sampler}", "checkpoint_every=3"]
    cli(*args, f"hydra.run.dir={folder / 'clean'}", cwd=folder)
    killed = cli(*args, "crash_after_round=5", f"hydra.run.dir={folder / 'killed'}", cwd=folder)
    resumed = cli(f"resume={folder / 'killed'}", f"hydra.run.dir={folder / 'log'}", cwd=folder)
    clean, again = strip(read_jsonl(folder / "clean" / "metrics.jsonl")), strip(read_jsonl(folder / "killed" / "metrics.jsonl"))
    lost = sum(a != b for a, b in zip(clean, again)) + abs(len(clean) - len(again))
    return resumed.returncode == 0, lost, f"killed with exit {killed.returncode}; resumed run identical: {lost == 0}"


def bad_config_after_a_run(folder: Path) -> tuple[bool, int, str]:
    """A bad override aimed at a finished run's folder must not touch its records."""
    run = folder / "run"
    cli(*BASE, f"hydra.run.dir={run}", cwd=folder)
    before = (run / "metrics.jsonl").read_bytes()
    bad = cli(*BASE, "clients_per_round=99", f"hydra.run.dir={run}", cwd=folder)
    unchanged = (run / "metrics.jsonl").read_bytes() == before
    return bad.returncode == 2 and unchanged, 0 if unchanged else 8, f"exit {bad.returncode}, records unchanged: {unchanged}"


SCENARIOS = {
    "SIGKILL after round 5, resume (random)": lambda d: sigkill_and_resume(d, "random"),
    "SIGKILL after round 5, resume (HiCS-FL)": lambda d: sigkill_and_resume(d, "hics"),
    "30% client failures + 5% stragglers (random)": lambda d: in_process(d, ["faults=unreliable"]),
    "30% client failures + 5% stragglers (HiCS-FL)": lambda d: in_process(d, ["faults=unreliable", "sampler=hics"]),
    "30% client failures + 5% stragglers (pow-d)": lambda d: in_process(d, ["faults=unreliable", "sampler=powd"]),
    "every client fails every round": lambda d: in_process(d, ["faults.always_fail=[0,1,2,3,4,5,6,7]"]),
    "join/leave schedule (HiCS-FL)": lambda d: in_process(
        d, ["sampler=hics", "faults.availability={initial:3,join_every:3,join_count:2,leave_after:6,leave_count:2}"]
    ),
    "bad config aimed at a finished run's folder": bad_config_after_a_run,
}


def main() -> None:
    """Run every scenario and print/save the table."""
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("experiments/results/reliability.md")
    lines = ["| fault | survived | rounds of records lost | what was recorded |", "|---|---|---|---|"]
    for name, scenario in SCENARIOS.items():
        with tempfile.TemporaryDirectory() as folder:
            survived, lost, note = scenario(Path(folder))
        lines.append(f"| {name} | {'yes' if survived else 'NO'} | {lost} | {note} |")
        print(lines[-1], flush=True)
    hostile = "Hostile replies (NaN/inf, wrong shape or dtype, missing keys, absurd num-examples): see tests/test_reliability.py"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("Produced by: `python experiments/reliability_table.py`\n\n" + "\n".join(lines) + f"\n\n{hostile}\n")


if __name__ == "__main__":
    main()
