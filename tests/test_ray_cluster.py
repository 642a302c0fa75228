"""engine=ray engine.address=... runs on an existing Ray cluster (a local head on loopback)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import make_config
from fedsim.experiment import build_experiment, run_experiment
from fedsim.results.recorder import read_jsonl

RAY = Path(sys.executable).parent / "ray"
PORT = 6391


@pytest.fixture
def ray_head():
    if not RAY.exists() and shutil.which("ray") is None:
        pytest.skip("the ray command is not installed")
    command = str(RAY if RAY.exists() else shutil.which("ray"))
    started = subprocess.run(
        [command, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={PORT}", "--num-cpus=2",
         "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={tempfile.mkdtemp(prefix='fr', dir='/tmp')}"],  # short: socket paths
        capture_output=True, text=True, timeout=180,
    )
    assert started.returncode == 0, started.stderr
    yield f"127.0.0.1:{PORT}"
    subprocess.run([command, "stop", "--force"], capture_output=True, timeout=120)


@pytest.mark.slow
def test_runs_on_an_existing_local_ray_cluster(tmp_path, ray_head):
    overrides = ["dataset=synthetic", "num_clients=4", "clients_per_round=2", "num_rounds=2", "progress=false",
                 "engine=ray", f"engine.address={ray_head}"]
    summary = run_experiment(build_experiment(make_config(overrides)), tmp_path / "run")
    assert summary["engine"] == "ray"
    assert [r["round"] for r in read_jsonl(tmp_path / "run" / "metrics.jsonl")] == [1, 2]
