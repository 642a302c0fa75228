"""Every sampler runs end to end through the Flower strategy, on both engines."""

from __future__ import annotations

import pytest

from conftest import make_config
from fedsim.experiment import build_experiment, run_experiment
from fedsim.results.recorder import read_jsonl

SAMPLERS = {
    "random": [],
    "hics": ["hics.temperature=0.01"],
    "hics_reference": [],
    "powd": [],
    "powd_2k": [],
    "clustered": [],
    "divfl": [],
    "divfl_stale": [],
    "fedcor": ["sampler.warmup_rounds=2", "sampler.refit_every=2"],
}
BASE = [
    "dataset=synthetic",
    "dataset.num_train=600",
    "num_clients=8",
    "clients_per_round=3",
    "num_rounds=5",
    "progress=false",
    "train.epochs=1",
]
PROBING = {"powd", "powd_2k", "divfl", "fedcor"}


def run_sampler(tmp_path, name, engine):
    config = make_config(BASE + [f"sampler={name}", f"engine={engine}"] + SAMPLERS[name])
    run_dir = tmp_path / f"{name}-{engine}"
    summary = run_experiment(build_experiment(config), run_dir)
    return summary, read_jsonl(run_dir / "metrics.jsonl")


def check_rows(name, rows):
    assert [r["round"] for r in rows] == [1, 2, 3, 4, 5]
    for row in rows:
        assert 1 <= len(row["selected"]) <= 3
        assert len(set(row["selected"])) == len(row["selected"])
        assert all(0 <= p < 8 for p in row["selected"])
        assert row["selection_seconds"] >= 0
        assert row["probe_failures"] == 0 and row["failed"] == []
    extra = sum(r["extra_messages"] for r in rows)
    if name in PROBING:
        assert extra > 0 and sum(r["extra_bytes"] for r in rows) > 0
        assert sum(r["extra_client_examples"] for r in rows) > 0
    else:
        assert extra == 0


@pytest.mark.parametrize("name", SAMPLERS)
def test_sampler_runs_inline(tmp_path, name):
    summary, rows = run_sampler(tmp_path, name, "inline")
    check_rows(name, rows)
    assert summary["final_accuracy"] > 0.3  # 10 classes: chance is 0.1


@pytest.mark.slow
@pytest.mark.parametrize("name", SAMPLERS)
def test_sampler_runs_on_ray(tmp_path, name):
    _, rows = run_sampler(tmp_path, name, "ray")
    check_rows(name, rows)
