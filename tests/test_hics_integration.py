"""HiCS-FL end to end: estimates track true heterogeneity; it favours balanced clients early."""

from __future__ import annotations

import json

import numpy as np
import torch

from conftest import make_config
from fedsim.client.training import LocalTrainingConfig, train_locally
from fedsim.experiment import build_experiment, run_experiment
from fedsim.models import Mlp
from fedsim.results.entropy_report import entropy_agreement
from fedsim.results.recorder import read_jsonl

# 15 clients in three groups of 5 over 5 classes: one class each, mixed, balanced.
# The classes overlap (separation 1) so updates stay informative for a few rounds.
GROUPS = [
    "dataset=synthetic",
    "dataset.num_train=1500",
    "dataset.num_classes=5",
    "dataset.separation=1.0",
    "partitioner=groups",
    "partitioner.alphas=[0.001,0.1,1000.0]",
    "num_clients=15",
    "clients_per_round=3",
    "num_rounds=30",
    "progress=false",
    "train.lr=0.05",
    "train.momentum=0.0",
    "train.epochs=1",
    "hics.temperature=0.01",
]
WARMUP_ROUNDS = 5  # ceil(15 / 3)


def _run(tmp_path, sampler):
    run_dir = tmp_path / sampler
    summary = run_experiment(build_experiment(make_config(GROUPS + [f"sampler={sampler}"])), run_dir)
    return summary, run_dir


def test_hics_estimates_track_true_entropy_and_favour_balanced_clients(tmp_path):
    summary, run_dir = _run(tmp_path, "hics")
    diagnostics = read_jsonl(run_dir / "sampler.jsonl")
    true_entropy = np.array(json.loads((run_dir / "partition.json").read_text())["label_entropy"])
    after_warmup = np.array(diagnostics[WARMUP_ROUNDS]["entropy"], dtype=float)  # used to select round 6
    assert entropy_agreement(after_warmup, true_entropy) >= 0.8
    assert (run_dir / "entropy_estimate.png").stat().st_size > 0
    report = json.loads((run_dir / "entropy_report.json").read_text())
    assert report["clients_with_estimate"] == 15 and summary["entropy_spearman"] == report["spearman"]

    groups = np.array(json.loads((run_dir / "partition.json").read_text())["groups"])
    balanced = set(np.flatnonzero(groups == 2).tolist())

    def balanced_picks(rows):
        early = [r for r in rows if WARMUP_ROUNDS < r["round"] <= WARMUP_ROUNDS + 10]
        return sum(p in balanced for r in early for p in r["selected"])

    hics_rows = read_jsonl(run_dir / "metrics.jsonl")
    _, random_dir = _run(tmp_path, "random")
    random_rows = read_jsonl(random_dir / "metrics.jsonl")
    assert balanced_picks(hics_rows) > balanced_picks(random_rows)
    assert diagnostics[-1]["phase"] == "cluster" and diagnostics[-1]["gamma_t"] < 4.0


def test_bias_update_sums_to_zero_under_plain_sgd():
    torch.manual_seed(0)
    model = Mlp((8,), 5)
    x, y = torch.randn(64, 8), torch.randint(0, 5, (64,))
    before = model.head.bias.detach().clone()
    config = LocalTrainingConfig(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=0.0, epochs=2, batch_size=16)
    train_locally(model, x, y, config, seed=1)
    delta = model.head.bias.detach() - before
    assert delta.abs().max() > 1e-3  # it did move
    assert abs(float(delta.sum())) < 1e-5


def test_hicsfl_is_a_flower_strategy_usable_with_start(tmp_path):
    from flwr.app import ArrayRecord

    from fedsim import HiCSFL
    from fedsim.client.app import make_client_app
    from fedsim.client.runtime import ClientRuntime
    from fedsim.engine.inline import InlineGrid

    experiment = build_experiment(make_config(GROUPS[:-4] + ["progress=false"]))
    runtime = ClientRuntime(None, experiment.partitioning.client_indices, experiment.model_factory, experiment.dataset)
    grid = InlineGrid(make_client_app(runtime), 15)
    strategy = HiCSFL(clients_per_round=3, num_rounds=7, temperature=0.01, proximal_mu=0.01)
    from flwr.app import ConfigRecord

    result = strategy.start(
        grid=grid,
        initial_arrays=experiment.initial_arrays,
        num_rounds=7,
        train_config=ConfigRecord({"lr": 0.05, "epochs": 1, "batch_size": 32}),
    )
    assert isinstance(result.arrays, ArrayRecord)
    assert strategy.sampler.diagnostics()["phase"] == "cluster"
    assert not np.isnan(strategy.sampler.entropies()).any()  # warm-up reached every client
