"""Partitioner invariants: every example once, no empty client, seeded, skew follows alpha."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedsim.data.idx import read_idx
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
    "groups_random": lambda: GroupsPartitioner([0.001, 0.01, 1.0], split="random"),
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


def test_shards_give_few_classes_per_client():
    parts = ShardsPartitioner(shards_per_client=2).split(LABELS, 10, np.random.default_rng(0))
    classes = [len(np.unique(LABELS[idx])) for idx in parts.client_indices]
    assert max(classes) <= 2


@pytest.mark.parametrize("split", ["stratified", "random"])
def test_groups_records_each_clients_group_and_groups_differ_in_skew_in_both_splits(split):
    parts = GroupsPartitioner([0.001, 100.0], split=split).split(LABELS, 10, np.random.default_rng(0))
    assert parts.groups.tolist() == [0] * 5 + [1] * 5
    entropy = label_entropies(label_histograms(LABELS, parts, 10))
    assert entropy[:5].mean() < 1.2 < 2.2 < entropy[5:].mean()


def _group_class_counts(labels, parts, num_classes):
    hist = label_histograms(labels, parts, num_classes)
    return np.stack([hist[parts.groups == g].sum(axis=0) for g in np.unique(parts.groups)])


def test_stratified_groups_get_equal_shares_of_every_class():
    # Divisible counts: every group gets exactly 50 of each class.
    parts = GroupsPartitioner([0.001, 0.01, 0.1, 1.0]).split(LABELS, 8, np.random.default_rng(3))
    assert (_group_class_counts(LABELS, parts, 10) == 50).all()
    # Uneven class sizes (7, 12, 30, 31 examples): shares differ by at most one example.
    labels = np.repeat(np.arange(4), [7, 12, 30, 31])
    parts = GroupsPartitioner([0.5, 0.5, 0.5]).split(labels, 3, np.random.default_rng(0))
    counts = _group_class_counts(labels, parts, 4)
    assert (counts.max(axis=0) - counts.min(axis=0) <= 1).all()
    assert counts.sum(axis=0).tolist() == [7, 12, 30, 31]
    # The random split does not stratify: some class is shared unequally.
    rand = GroupsPartitioner([0.001, 0.01, 0.1, 1.0], split="random").split(LABELS, 8, np.random.default_rng(3))
    assert not (_group_class_counts(LABELS, rand, 10) == 50).all()


def test_random_split_reproduces_the_partition_made_before_the_switch():
    # Pinned from fedsim's GroupsPartitioner before ``split`` existed (same stream, same result).
    parts = GroupsPartitioner([0.001, 0.01, 1.0], split="random").split(LABELS, 12, np.random.default_rng(0))
    assert parts.sizes.tolist() == [182, 209, 97, 179, 196, 217, 129, 125, 176, 113, 197, 180]
    assert [int(idx.sum()) for idx in parts.client_indices] == [
        245432, 260804, 83962, 118156, 188150, 177900, 112914, 156924, 168814, 116919, 201644, 167381,
    ]


FMNIST_LABELS = Path("/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz")


@pytest.mark.skipif(not FMNIST_LABELS.exists(), reason="Fashion-MNIST is not installed (dataset-fashion-mnist)")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fmnist_setting2_low_alpha_clients_hold_a_single_class(seed):
    # The paper's FMNIST setting 2: with the authors' stratified split, clients 0-29
    # (alphas .001 .002 .005) hold one class each (28-30 here); the random split gives 12-25.
    labels = read_idx(FMNIST_LABELS).astype(np.int64)
    parts = GroupsPartitioner([0.001, 0.002, 0.005, 0.01, 0.2]).split(labels, 50, np.random.default_rng(seed))
    entropy = label_entropies(label_histograms(labels, parts, 10))
    assert int((entropy[:30] < 0.05).sum()) >= 25


def test_bad_alpha_is_a_config_error():
    with pytest.raises(ConfigError, match="alpha"):
        DirichletPartitioner(alpha=0.0)
    with pytest.raises(ConfigError, match="alphas"):
        GroupsPartitioner([0.1, -1.0])


@pytest.mark.parametrize("bad", [0, -1, 0.0, float("nan"), float("inf"), -float("inf"), "abc", None, True])
def test_alpha_must_be_a_finite_positive_number_in_every_constructor(bad):
    with pytest.raises(ConfigError) as err:
        DirichletPartitioner(alpha=bad)
    assert str(err.value).startswith(f"partitioner.alpha={bad}:") and "\n" not in str(err.value)
    with pytest.raises(ConfigError) as err:
        GroupsPartitioner([0.1, bad])
    assert str(err.value).startswith(f"partitioner.alphas: {bad} ") and "\n" not in str(err.value)


def test_groups_split_and_alphas_shape_are_checked():
    with pytest.raises(ConfigError, match="partitioner.split=classwise"):
        GroupsPartitioner([0.1], split="classwise")
    with pytest.raises(ConfigError, match="partitioner.alphas"):
        GroupsPartitioner([])
    with pytest.raises(ConfigError, match="partitioner.alphas"):
        GroupsPartitioner(0.1)
    assert DirichletPartitioner(alpha=2).alpha == 2.0 and GroupsPartitioner([1, 0.5]).alphas == [1.0, 0.5]
