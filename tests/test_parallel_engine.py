"""The in-process engine with worker processes gives the same results as sequential."""

from __future__ import annotations

from conftest import make_config
from fedsim.experiment import build_experiment, run_experiment
from fedsim.results.checkpoint import load_checkpoint
from fedsim.results.recorder import read_jsonl
from fedsim.server.loop import TIMING_COLUMNS

TIMINGS = set(TIMING_COLUMNS)
BASE = ["dataset=synthetic", "num_clients=6", "clients_per_round=4", "num_rounds=3", "progress=false", "train.epochs=1"]


def test_two_workers_give_identical_metrics_and_model(tmp_path):
    runs = {}
    for workers in (1, 2):
        run_dir = tmp_path / f"w{workers}"
        run_experiment(build_experiment(make_config(BASE + [f"engine.workers={workers}", "sampler=hics"])), run_dir)
        rows = [{k: v for k, v in r.items() if k not in TIMINGS} for r in read_jsonl(run_dir / "metrics.jsonl")]
        runs[workers] = (rows, load_checkpoint(run_dir).arrays)
    assert runs[1][0] == runs[2][0]
    for key in runs[1][1].keys():
        assert (runs[1][1][key].numpy() == runs[2][1][key].numpy()).all()
