"""Experiment presets compose to the settings their sources give."""

from __future__ import annotations

import pytest

from conftest import make_config


def test_authors_fmnist_setting_2_preset_matches_the_codes_config():
    cfg = make_config(["+experiment=authors_fmnist_s2", "sampler=hics_reference"])
    assert (cfg.num_clients, cfg.clients_per_round, cfg.train.epochs, cfg.train.batch_size) == (50, 10, 1, 64)
    assert (cfg.train.lr, cfg.train.momentum, cfg.train.weight_decay) == (0.001, 0.9, 5e-4)
    assert cfg.algorithm.proximal_mu == 0.5 and cfg.train.keep_optimizer_state is True
    assert (cfg.sampler.temperature, cfg.sampler.lam, cfg.sampler.gamma0, cfg.sampler.num_clusters) == (0.001, 10, 4, 5)
    assert cfg.model._target_.endswith("FmnistCnnReference")
    # the two differences docs/authors-parity.md found to change numbers
    assert cfg.model.init_gain == "relu" and cfg.dataset.normalization == "half"
    # and the fallback's tree as the code builds it; hics_reference elsewhere keeps its recorded default
    assert cfg.sampler.fallback_tree == "rows"
    assert make_config(["sampler=hics_reference"]).sampler.fallback_tree == "distances"


@pytest.mark.parametrize("sampler, proportional", [("random", False), ("random_proportional", True)])
def test_two_random_presets(sampler, proportional):
    cfg = make_config([f"sampler={sampler}"])
    assert cfg.sampler.proportional is proportional and cfg.sampler.name == sampler


PAPER_TRAINING = {"num_rounds": 200, "train.optimizer": "sgd", "train.lr": 0.001, "train.momentum": 0.9,
                  "train.weight_decay": 5e-4, "train.epochs": 2, "train.batch_size": 64, "hics.temperature": 0.0025,
                  "hics.gamma0": 4.0, "hics.lam": 10.0, "hics.num_clusters": None}


def _get(cfg, dotted):
    for key in dotted.split("."):
        cfg = cfg[key]
    return cfg


@pytest.mark.parametrize("experiment, partitioner, clients, partition", [
    ("paper_fmnist_s1", "GroupsPartitioner", (50, 5), {"alphas": [0.001, 0.002, 0.005, 0.01, 0.5]}),
    ("paper_fmnist_s2", "GroupsPartitioner", (50, 5), {"alphas": [0.001, 0.002, 0.005, 0.01, 0.2]}),
    ("paper_fmnist_s3", "GroupsPartitioner", (50, 5), {"alphas": [0.001] * 5}),
    ("fmnist_dirichlet01", "DirichletPartitioner", (100, 10), {"alpha": 0.1}),
    ("fmnist_dirichlet03", "DirichletPartitioner", (100, 10), {"alpha": 0.3}),
    ("fmnist_shards", "ShardsPartitioner", (100, 10), {"shards_per_client": 2}),
    ("fmnist_s2_unreliable", "GroupsPartitioner", (50, 5), {"alphas": [0.001, 0.002, 0.005, 0.01, 0.2]}),
    ("fmnist_s2_dynamic", "GroupsPartitioner", (50, 5), {"alphas": [0.001, 0.002, 0.005, 0.01, 0.2]}),
])
def test_fmnist_settings_share_the_papers_training(experiment, partitioner, clients, partition):
    """Settings 1-3 and the wider settings differ only in partition, client counts and faults."""
    cfg = make_config([f"+experiment={experiment}", "sampler=hics_diverse"])
    assert {key: _get(cfg, key) for key in PAPER_TRAINING} == PAPER_TRAINING
    assert cfg.dataset.name == "fmnist" and "normalization" not in cfg.dataset  # IdxSource default: standardize
    assert cfg.model._target_.endswith("FmnistCnn") and cfg.algorithm._target_.endswith("FedAvg")
    assert cfg.partitioner._target_.endswith(partitioner) and (cfg.num_clients, cfg.clients_per_round) == clients
    assert {key: _get(cfg, f"partitioner.{key}") for key in partition} == partition
    faults = experiment.rsplit("_", 1)[-1]
    assert (cfg.faults.client_failure_prob, cfg.faults.straggler_prob) == ((0.3, 0.05) if faults == "unreliable" else (0, 0))
    assert (cfg.faults.availability is not None) is (faults == "dynamic")
    # the variant's frozen settings are the preset's, whatever the setting
    assert (cfg.sampler.gamma0, cfg.sampler.exploration_rate, cfg.sampler.estimator) == (2.0, 0.7, "positive_part")
