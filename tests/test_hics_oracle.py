"""hics_oracle: HiCS-FL's clustering and sampling on the true label distributions."""

from __future__ import annotations

import json
import math

import numpy as np

from conftest import make_config
from fedsim.experiment import build_experiment, run_experiment
from fedsim.selection.hics_oracle import HiCSOracleSampler


def oracle(histograms: np.ndarray, k: int = 2, seed: int = 0) -> HiCSOracleSampler:
    sampler = HiCSOracleSampler(gamma0=4.0, lam=10.0)
    sampler.setup(histograms.sum(axis=1), k, 100, np.random.default_rng(seed))
    sampler.receive_label_distributions(histograms)
    return sampler


def test_oracle_uses_true_entropies_from_round_one_and_favours_balanced_clients():
    one_class = np.array([[50, 0, 0, 0]] * 3 + [[0, 50, 0, 0]] * 3)
    balanced = np.array([[10, 10, 10, 10]] * 2)
    sampler = oracle(np.vstack([one_class, balanced]), k=2)
    h = sampler.entropies()
    assert np.allclose(h[:6], 0.0) and np.allclose(h[6:], math.log(4))
    picks = [k for t in range(1, 41) for k in sampler.select(t, np.arange(8), 2, {})]
    assert sampler.diagnostics()["phase"] == "cluster"  # no warm-up
    assert np.mean(np.array(picks) >= 6) > 0.4  # 2 of 8 clients, picked far above their 25% share


def test_oracle_run_end_to_end_records_its_name(tmp_path, small_overrides):
    summary = run_experiment(build_experiment(make_config(small_overrides + ["sampler=hics_oracle"])), tmp_path)
    assert summary["sampler"] == "hics_oracle"
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(len(set(r["selected"])) == 3 for r in rows)
