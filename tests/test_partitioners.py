"""Partitioner invariants: every example once, no empty client, seeded, skew follows alpha."""

from __future__ import annotations

import numpy as np
import pytest

from fedsim.data.partitioners import (
    DirichletPartitioner,
    FlwrDatasetsPartitioner,
    GroupsPartitioner,
    IidPartitioner,
    ShardsPartitioner,
)
from fedsim.data.stats import label_entropies, label_histograms
from fedsim.errors import ConfigError

LABELS = np.repeat(np.arange(10), 200)  # 2,000 examples, 10 balanced classes


def _flwr_dirichlet():
    from functools import partial

    from flwr_datasets.partitioner import DirichletPartitioner as FlwrDirichlet

    return FlwrDatasetsPartitioner(partial(FlwrDirichlet, partition_by="label", alpha=0.5, min_partition_size=5, seed=3))


PARTITIONERS = {
    "iid": lambda: IidPartitioner(),
    "dirichlet": lambda: DirichletPartitioner(alpha=0.3),
    "groups": lambda: GroupsPartitioner([0.001, 0.01, 1.0]),
    "shards": lambda: ShardsPartitioner(shards_per_client=2),
    "flwr": _flwr_dirichlet,
}


@pytest.mark.parametrize("name", PARTITIONERS)
def test_every_example_assigned_exactly_once_and_no_empty_client(name):
    parts = PARTITIONERS[name]().split(LABELS, 12, np.random.default_rng(0))
    assert parts.num_clients == 12
    assert parts.sizes.min() > 0
    everything = np.concatenate(parts.client_indices)
    assert len(everything) == len(LABELS)
    assert np.array_equal(np.sort(everything), np.arange(len(LABELS)))


@pytest.mark.parametrize("name", PARTITIONERS)
def test_same_seed_same_partition_other_seed_differs(name):
    a = PARTITIONERS[name]().split(LABELS, 12, np.random.default_rng(7))
    b = PARTITIONERS[name]().split(LABELS, 12, np.random.default_rng(7))
    assert all(np.array_equal(x, y) for x, y in zip(a.client_indices, b.client_indices))
    if name != "flwr":  # the flwr partitioner's own seed is fixed in its config
        c = PARTITIONERS[name]().split(LABELS, 12, np.random.default_rng(8))
        assert not all(np.array_equal(x, y) for x, y in zip(a.client_indices, c.client_indices))


def test_dirichlet_skew_increases_as_alpha_falls():
    mean_entropy = []
    for alpha in (100.0, 1.0, 0.1, 0.01):
        parts = DirichletPartitioner(alpha=alpha).split(LABELS, 10, np.random.default_rng(1))
        mean_entropy.append(label_entropies(label_histograms(LABELS, parts, 10)).mean())
    assert all(a > b for a, b in zip(mean_entropy, mean_entropy[1:])), mean_entropy
    assert mean_entropy[0] > 0.95 * np.log(10)


def test_groups_records_each_clients_group_and_groups_differ_in_skew():
    parts = GroupsPartitioner([0.001, 100.0]).split(LABELS, 10, np.random.default_rng(0))
    assert parts.groups.tolist() == [0] * 5 + [1] * 5
    entropy = label_entropies(label_histograms(LABELS, parts, 10))
    assert entropy[:5].mean() < 1.2 < 2.2 < entropy[5:].mean()  # ~2 classes each vs ~all 10


def test_shards_give_few_classes_per_client():
    parts = ShardsPartitioner(shards_per_client=2).split(LABELS, 10, np.random.default_rng(0))
    classes = [len(np.unique(LABELS[idx])) for idx in parts.client_indices]
    assert max(classes) <= 2


def test_bad_alpha_is_a_config_error():
    with pytest.raises(ConfigError, match="alpha"):
        DirichletPartitioner(alpha=0.0)
    with pytest.raises(ConfigError, match="alphas"):
        GroupsPartitioner([0.1, -1.0])
