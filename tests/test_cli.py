"""The fedsim command: one-line config errors with exit code 2, runs and sweeps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

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


@pytest.mark.slow
def test_rerunning_a_sweep_skips_finished_runs_and_resumes_unfinished(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "dataset=synthetic", "num_clients=4", "clients_per_round=2", "num_rounds=4",
            "checkpoint_every=2", "progress=false", "seed=0,1", f"hydra.sweep.dir={sweep}"]
    assert fedsim(*args, cwd=tmp_path).returncode == 0
    finished = next(sweep.glob("*seed=0*")) / "summary.json"
    before = finished.read_text()
    unfinished = next(sweep.glob("*seed=1*"))
    (unfinished / "summary.json").unlink()  # as if the sitting ended during this run
    rows_before = (unfinished / "metrics.jsonl").read_text()
    second = fedsim(*args, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "already finished; skipped" in second.stderr and "resuming" in second.stderr
    assert finished.read_text() == before
    assert (unfinished / "summary.json").exists()
    assert (unfinished / "metrics.jsonl").read_text().count("\n") == rows_before.count("\n")


def test_reusing_a_folder_of_a_different_run_is_refused(tmp_path):
    run = tmp_path / "run"
    base = ["dataset=synthetic", "num_clients=4", "clients_per_round=2", "num_rounds=1", "progress=false"]
    assert fedsim(*base, f"hydra.run.dir={run}", cwd=tmp_path).returncode == 0
    (run / "summary.json").unlink()
    result = fedsim(*base, "seed=5", f"hydra.run.dir={run}", cwd=tmp_path)
    assert result.returncode == 2 and "holds a different run" in result.stderr


def test_cifar10_paper_preset_runs_on_tiny_fixture_files(tmp_path):
    import pickle

    import numpy as np

    rng = np.random.default_rng(0)
    root = tmp_path / "cifar"
    root.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (60, 3072), dtype=np.uint8), b"labels": (np.arange(60) % 10).tolist()}
        (root / name).write_bytes(pickle.dumps(batch))
    result = fedsim(
        "+experiment=paper_cifar10_s2", f"dataset.root={root}", "num_clients=10", "clients_per_round=2",
        "num_rounds=1", "progress=false", "sampler=hics", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    config = (tmp_path / "run" / "config.yaml").read_text()
    assert "optimizer: adam" in config and "proximal_mu: 0.1" in config and "temperature: 0.0015" in config


def test_two_runs_into_one_folder_exactly_one_runs(tmp_path):
    """Two fedsim processes started on one run folder: one runs, the other is refused (exit 2)."""
    run_dir = tmp_path / "shared"
    commands = [[sys.executable, "-m", "fedsim.cli", f"sampler={s}", "num_rounds=15", "progress=false",
                 f"hydra.run.dir={run_dir}"] for s in ("random", "hics")]
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    outcomes = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in outcomes)
    assert codes == [0, 2], outcomes
    refused = next(err for code, err in outcomes if code == 2)
    assert "in use by another fedsim process" in refused or "already holds a run" in refused
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == list(range(1, 16))
    winner = json.loads((run_dir / "summary.json").read_text())["sampler"]
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["sampler"]["name"] == winner


def test_joblib_sweep_runs_each_job_in_its_own_folder(tmp_path):
    """The joblib launcher runs a sweep's jobs in parallel processes, one run folder each."""
    result = subprocess.run(
        [sys.executable, "-m", "fedsim.cli", "-m", "seed=0,1", "num_rounds=2", "progress=false",
         "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={tmp_path}",
         "hydra.sweep.subdir=${sampler.name}_seed${seed}"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for seed in (0, 1):
        rows = [json.loads(line) for line in (tmp_path / f"random_seed{seed}" / "metrics.jsonl").read_text().splitlines()]
        assert [r["round"] for r in rows] == [1, 2]
    first = (tmp_path / "random_seed0" / "metrics.jsonl").read_text()
    assert first != (tmp_path / "random_seed1" / "metrics.jsonl").read_text()  # different seeds, different runs


def test_resuming_a_finished_run_changes_nothing(tmp_path):
    """``fedsim resume=<finished run>`` says so, exits 0 and leaves every file as it was."""
    run_dir = tmp_path / "done"
    base = [sys.executable, "-m", "fedsim.cli", "num_rounds=2", "progress=false"]
    assert subprocess.run(base + [f"hydra.run.dir={run_dir}"], capture_output=True).returncode == 0
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    result = subprocess.run([sys.executable, "-m", "fedsim.cli", f"resume={run_dir}",
                             f"hydra.run.dir={tmp_path / 'elsewhere'}"], capture_output=True, text=True)
    assert result.returncode == 0 and "already finished" in result.stderr
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before
