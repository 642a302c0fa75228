"""A user's own partitioner and sampler plug in by ``_target_`` without editing fedsim."""

from __future__ import annotations

import json

import numpy as np

from conftest import make_config
from fedsim.experiment import build_experiment, run_experiment
from fedsim.results.recorder import read_jsonl

BASE = ["dataset=synthetic", "num_clients=5", "clients_per_round=2", "num_rounds=2", "progress=false"]


def test_own_partitioner_and_sampler_by_target(tmp_path):
    config = make_config(
        BASE
        + [
            "partitioner=iid",
            "partitioner._target_=examples.my_plugins.FirstKClassesPartitioner",
            "+partitioner.classes_per_client=2",
            "sampler=random",
            "sampler._target_=examples.my_plugins.LargestClientsSampler",
            "~sampler.proportional",
        ]
    )
    run_experiment(build_experiment(config), tmp_path)
    partition = json.loads((tmp_path / "partition.json").read_text())
    assert all(np.count_nonzero(h) == 2 for h in partition["label_histograms"])
    largest = set(np.argsort(partition["sizes"])[-2:].tolist())
    assert all(set(r["selected"]) == largest for r in read_jsonl(tmp_path / "metrics.jsonl"))
