"""The fedsim command: one-line config errors with exit code 2, runs and sweeps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def fedsim(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0"}
    return subprocess.run(
        [sys.executable, "-m", "fedsim.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.parametrize(
    "args,setting",
    [
        (["num_clients=5", "clients_per_round=6"], "clients_per_round=6"),
        (["partitioner.alpha=0"], "partitioner.alpha=0"),
        (["partitioner.alpha=-1"], "partitioner.alpha=-1"),
        (["sampler=no_such_sampler"], "sampler=no_such_sampler"),
        (["dataset=fmnist", "dataset.root=/nonexistent/fmnist"], "dataset=fmnist"),
        (["train.optimizer=rmsprop"], "train.optimizer=rmsprop"),
    ],
)
def test_bad_settings_stop_before_training_with_one_line_and_exit_2(tmp_path, args, setting):
    result = fedsim(*args, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("fedsim: error:")]
    assert len(error_lines) == 1 and setting in error_lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_misspelt_key_exits_2(tmp_path):
    result = fedsim("num_clientz=5", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode == 2


@pytest.mark.slow
def test_sweep_writes_one_folder_per_run(tmp_path):
    result = fedsim(
        "-m", "dataset=synthetic", "num_clients=4", "clients_per_round=2", "num_rounds=2",
        "progress=false", "seed=0,1", "partitioner.alpha=0.1,1.0",
        f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    summaries = sorted((tmp_path / "sweep").glob("*/summary.json"))
    assert len(summaries) == 4
    assert all(json.loads(p.read_text())["rounds_run"] == 2 for p in summaries)
