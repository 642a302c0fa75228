"""Reliability: resume after SIGKILL, injected faults, hostile replies, dynamic availability."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from flwr.app import Array, MetricRecord

from conftest import make_config
from fedsim.experiment import build_experiment, run_experiment
from fedsim.results.checkpoint import load_checkpoint
from fedsim.results.recorder import read_jsonl
from fedsim.server.loop import TIMING_COLUMNS

TIMINGS = set(TIMING_COLUMNS)
BASE = [
    "dataset=synthetic",
    "num_clients=8",
    "clients_per_round=3",
    "num_rounds=8",
    "progress=false",
    "train.epochs=1",
]


def strip(rows):
    return [{k: v for k, v in r.items() if k not in TIMINGS} for r in rows]


def fedsim(*args, cwd):
    env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0"}
    return subprocess.run([sys.executable, "-m", "fedsim.cli", *args], cwd=cwd, env=env, capture_output=True, text=True)


@pytest.mark.parametrize("sampler, crash_after, checkpointed", [
    ("random", 5, 3), ("hics", 5, 3),
    # Killed right after a checkpoint round's records: with the evaluation in the background the
    # next round has already trained (the sampler moved on), so the checkpoint must hold round 6's state.
    ("hics", 6, 6),
])
def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path, sampler, crash_after, checkpointed):
    args = BASE + [f"sampler={sampler}", "checkpoint_every=3", "hics.temperature=0.01"]
    full, killed = tmp_path / "full", tmp_path / "killed"
    assert fedsim(*args, f"hydra.run.dir={full}", cwd=tmp_path).returncode == 0
    crashed = fedsim(*args, f"crash_after_round={crash_after}", f"hydra.run.dir={killed}", cwd=tmp_path)
    assert crashed.returncode == -9  # SIGKILL
    assert len(read_jsonl(killed / "metrics.jsonl")) == crash_after
    assert load_checkpoint(killed).server_round == checkpointed
    resumed = fedsim(f"resume={killed}", f"hydra.run.dir={tmp_path / 'resume-log'}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert strip(read_jsonl(killed / "metrics.jsonl")) == strip(read_jsonl(full / "metrics.jsonl"))
    final_full, final_resumed = load_checkpoint(full), load_checkpoint(killed)
    assert final_full.server_round == final_resumed.server_round == 8
    for key in final_full.arrays.keys():
        np.testing.assert_array_equal(final_full.arrays[key].numpy(), final_resumed.arrays[key].numpy())


SAMPLERS = ["random", "hics", "powd", "clustered", "divfl", "fedcor"]


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_runs_survive_30_percent_failures_and_count_them(tmp_path, sampler):
    extra = ["sampler.warmup_rounds=2"] if sampler == "fedcor" else []
    config = make_config(BASE + [f"sampler={sampler}", "faults=unreliable"] + extra)
    summary = run_experiment(build_experiment(config), tmp_path)
    rows = read_jsonl(tmp_path / "metrics.jsonl")
    assert len(rows) == 8 and summary["failed_client_rounds"] > 0
    assert summary["failed_client_rounds"] == sum(len(r["failed"]) for r in rows)
    assert all(set(r["failure_reasons"]) == {str(p) for p in r["failed"]} for r in rows)
    assert summary["final_accuracy"] is not None


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_join_leave_schedule_only_available_clients_are_picked(tmp_path, sampler):
    extra = ["sampler.warmup_rounds=2"] if sampler == "fedcor" else []
    schedule = "faults.availability={initial:3,join_every:3,join_count:2,leave_after:6,leave_count:2}"
    config = make_config(BASE + [f"sampler={sampler}", schedule] + extra)
    run_experiment(build_experiment(config), tmp_path)
    rows = read_jsonl(tmp_path / "metrics.jsonl")
    for row in rows:
        r = row["round"]
        joined = 3 + 2 * ((r - 1) // 3)
        allowed = set(range(joined)) - (set(range(2)) if r > 6 else set())
        assert set(row["selected"]) <= allowed and row["available"] == len(allowed)


def test_hics_samples_a_newly_joined_client_in_the_next_round(tmp_path):
    schedule = "faults.availability={initial:6,join_every:5,join_count:2}"
    config = make_config(BASE + ["sampler=hics", "hics.temperature=0.01", schedule])
    run_experiment(build_experiment(config), tmp_path)
    rows = read_jsonl(tmp_path / "metrics.jsonl")
    assert {6, 7} <= set(rows[5]["selected"])  # clients 6 and 7 join in round 6


def test_a_round_where_every_client_fails_leaves_the_model_unchanged(tmp_path):
    config = make_config(BASE + ["num_rounds=2", "faults.always_fail=[0,1,2,3,4,5,6,7]"])
    summary = run_experiment(build_experiment(config), tmp_path)
    rows = read_jsonl(tmp_path / "metrics.jsonl")
    assert rows[0]["loss"] == rows[1]["loss"] and len(rows[1]["failed"]) == 3
    assert summary["failed_client_rounds"] == 6


HOSTILE = {
    "nan weights": lambda c: c["arrays"].__setitem__("head.bias", Array(np.full(10, np.nan, dtype=np.float32))),
    "wrong shape": lambda c: c["arrays"].__setitem__("head.bias", Array(np.zeros(3, dtype=np.float32))),
    "wrong dtype": lambda c: c["arrays"].__setitem__("head.bias", Array(np.zeros(10, dtype=np.float64))),
    "missing key": lambda c: c["arrays"].pop("head.bias"),
    "missing update": lambda c: c.pop("output_update"),
    "inf update": lambda c: c["output_update"].__setitem__("bias", Array(np.full(10, np.inf, dtype=np.float32))),
    "absurd num-examples": lambda c: c.__setitem__("metrics", MetricRecord({"num-examples": 10**9, "train-loss": 0.1, "num-steps": 1})),
    "missing metrics": lambda c: c.pop("metrics"),
}
HOSTILE_PID = 2


class HostileApp:
    """Wraps the ClientApp: partition HOSTILE_PID's training replies are corrupted."""

    def __init__(self, app, corrupt):
        self.app, self.corrupt = app, corrupt

    def __call__(self, message, context):
        reply = self.app(message, context)
        if context.node_config["partition-id"] == HOSTILE_PID and message.metadata.message_type.startswith("train"):
            self.corrupt(reply.content)
        return reply


@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_replies_are_rejected_recorded_and_harmless(tmp_path, monkeypatch, kind):
    import fedsim.experiment as experiment_module

    original = experiment_module.make_client_app
    monkeypatch.setattr(experiment_module, "make_client_app", lambda runtime: HostileApp(original(runtime), HOSTILE[kind]))
    config = make_config(BASE + ["dataset.num_classes=10"])
    run_experiment(build_experiment(config), tmp_path / "hostile")
    monkeypatch.setattr(experiment_module, "make_client_app", original)
    dead = make_config(BASE + [f"faults.always_fail=[{HOSTILE_PID}]"])
    run_experiment(build_experiment(dead), tmp_path / "dead")

    hostile_rows = read_jsonl(tmp_path / "hostile" / "metrics.jsonl")
    dead_rows = read_jsonl(tmp_path / "dead" / "metrics.jsonl")
    picked = [r for r in hostile_rows if HOSTILE_PID in r["selected"]]
    assert picked, "the hostile client was never selected; pick another seed"
    assert all(str(HOSTILE_PID) in r["rejected"] for r in picked)
    assert [r["accuracy"] for r in hostile_rows] == [r["accuracy"] for r in dead_rows]
    assert [r["loss"] for r in hostile_rows] == [r["loss"] for r in dead_rows]
