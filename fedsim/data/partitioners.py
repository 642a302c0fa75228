"""Partitioners: split a training set's indices across simulated clients.

Every partitioner has ``split(labels, num_clients, rng) -> Partitioning``; Hydra builds it
from ``conf/partitioner/*.yaml`` by ``_target_``, so a user's own class (anything with
that method, returning a :class:`Partitioning` or a list of index arrays) plugs in with
``partitioner._target_=mypkg.MyPartitioner`` and no change to fedsim.

All are seeded through the ``rng`` they are given and none leaves a client empty.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from fedsim.errors import ConfigError


@dataclass
class Partitioning:
    """Which training examples each client holds, and (optionally) its heterogeneity group."""

    client_indices: list[np.ndarray]
    groups: np.ndarray | None = None

    @property
    def num_clients(self) -> int:
        """Number of clients."""
        return len(self.client_indices)

    @property
    def sizes(self) -> np.ndarray:
        """Number of examples per client."""
        return np.array([len(idx) for idx in self.client_indices], dtype=np.int64)


def as_partitioning(result: Any) -> Partitioning:
    """Accept a :class:`Partitioning` or a plain list of index arrays (a user's partitioner)."""
    if isinstance(result, Partitioning):
        return result
    return Partitioning([np.asarray(idx, dtype=np.int64) for idx in result])


def check_partitioning(partitioning: Partitioning, num_examples: int, num_clients: int) -> None:
    """Fail with a clear message if clients are missing, empty or hold invalid indices."""
    if partitioning.num_clients != num_clients:
        raise ConfigError(
            f"partitioner: produced {partitioning.num_clients} clients but num_clients={num_clients}"
        )
    empty = [k for k, idx in enumerate(partitioning.client_indices) if len(idx) == 0]
    if empty:
        raise ConfigError(
            f"partitioner: client(s) {empty[:5]} got no data; use fewer clients or a larger alpha"
        )
    allidx = np.concatenate(partitioning.client_indices)
    if allidx.min() < 0 or allidx.max() >= num_examples:
        raise ConfigError("partitioner: produced an index outside the training set")


def _check_alpha(alpha: float, setting: str = "partitioner.alpha") -> None:
    if not alpha > 0:
        raise ConfigError(f"{setting}={alpha}: must be > 0 (e.g. 0.1 for strong label skew)")


class IidPartitioner:
    """Shuffle and deal equal-size shares."""

    def split(self, labels: np.ndarray, num_clients: int, rng: np.random.Generator) -> Partitioning:
        """Split ``len(labels)`` indices uniformly at random."""
        if num_clients > len(labels):
            raise ConfigError(f"num_clients={num_clients} exceeds the {len(labels)} training examples")
        return Partitioning(list(np.array_split(rng.permutation(len(labels)), num_clients)))


def dirichlet_split(
    labels: np.ndarray,
    num_clients: int,
    alpha: float,
    rng: np.random.Generator,
    min_size_fraction: float = 0.0,
    max_tries: int = 1000,
    min_size: int = 10,
) -> list[np.ndarray]:
    """Class-wise Dirichlet(alpha) label skew, NIID-Bench style.

    For each class, proportions over clients are drawn from Dirichlet(alpha); a client
    already holding more than the average share gets no more (the NIID-Bench balance
    rule). The draw is repeated until every client holds at least ``min_size`` examples
    (NIID-Bench: 10) and ``min_size_fraction`` x the average size (the HiCS-FL authors'
    code: 0.2), and always at least one.
    """
    _check_alpha(alpha)
    n = len(labels)
    min_size = max(1, min(int(min_size), n // num_clients), int(min_size_fraction * n / num_clients))
    classes = np.unique(labels)
    by_class = [np.flatnonzero(labels == c) for c in classes]
    for _ in range(max_tries):
        buckets: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
        sizes = np.zeros(num_clients, dtype=np.int64)
        for members in by_class:
            members = rng.permutation(members)
            props = rng.dirichlet(np.full(num_clients, alpha))
            props = np.where(sizes < n / num_clients, props, 0.0)
            if not np.isfinite(props).all() or props.sum() <= 0:
                eligible = sizes < n / num_clients
                props = eligible / max(eligible.sum(), 1)
            props = props / props.sum()
            cuts = (np.cumsum(props) * len(members)).astype(int)[:-1]
            for client, part in enumerate(np.split(members, cuts)):
                buckets[client].append(part)
                sizes[client] += len(part)
        if sizes.min() >= min_size:
            return [np.sort(np.concatenate(b)) for b in buckets]
    raise ConfigError(
        f"partitioner.alpha={alpha}: could not give each of {num_clients} clients at least "
        f"{min_size} examples in {max_tries} draws; use fewer clients, a larger alpha or a "
        f"smaller partitioner.min_size / partitioner.min_size_fraction"
    )


class DirichletPartitioner:
    """Label skew: per-class Dirichlet(alpha) proportions (smaller alpha = more skew)."""

    def __init__(self, alpha: float = 0.5, min_size: int = 10, min_size_fraction: float = 0.0) -> None:
        _check_alpha(alpha)
        self.alpha = alpha
        self.min_size = min_size
        self.min_size_fraction = min_size_fraction

    def split(self, labels: np.ndarray, num_clients: int, rng: np.random.Generator) -> Partitioning:
        """Deal the whole training set by Dirichlet(alpha)."""
        return Partitioning(
            dirichlet_split(labels, num_clients, self.alpha, rng, self.min_size_fraction, min_size=self.min_size)
        )


class GroupsPartitioner:
    """The HiCS-FL paper's mixed-heterogeneity setting.

    The training set is split into as many equal random parts as there are ``alphas``;
    part g is dealt by Dirichlet(alphas[g]) to its share of the clients, who form
    heterogeneity group g (recorded in ``Partitioning.groups``).
    """

    def __init__(self, alphas: Sequence[float], min_size_fraction: float = 0.2) -> None:
        if len(alphas) == 0:
            raise ConfigError("partitioner.alphas: give at least one alpha, e.g. [0.001,0.5]")
        for alpha in alphas:
            _check_alpha(float(alpha), "partitioner.alphas")
        self.alphas = [float(a) for a in alphas]
        self.min_size_fraction = min_size_fraction

    def split(self, labels: np.ndarray, num_clients: int, rng: np.random.Generator) -> Partitioning:
        """Split into groups, then deal each group's part by its own alpha."""
        num_groups = len(self.alphas)
        if num_clients < num_groups:
            raise ConfigError(
                f"num_clients={num_clients}: the groups partitioner needs at least one client "
                f"per alpha ({num_groups})"
            )
        parts = np.array_split(rng.permutation(len(labels)), num_groups)
        client_blocks = np.array_split(np.arange(num_clients), num_groups)
        indices: list[np.ndarray] = []
        groups = np.empty(num_clients, dtype=np.int64)
        for g, (part, block) in enumerate(zip(parts, client_blocks)):
            local = dirichlet_split(labels[part], len(block), self.alphas[g], rng, self.min_size_fraction, min_size=1)
            indices.extend(np.sort(part[idx]) for idx in local)
            groups[block] = g
        return Partitioning(indices, groups)


class ShardsPartitioner:
    """Pathological skew: sort by label, cut into shards, give each client ``shards_per_client``."""

    def __init__(self, shards_per_client: int = 2) -> None:
        if shards_per_client < 1:
            raise ConfigError(f"partitioner.shards_per_client={shards_per_client}: must be >= 1")
        self.shards_per_client = shards_per_client

    def split(self, labels: np.ndarray, num_clients: int, rng: np.random.Generator) -> Partitioning:
        """Deal label-sorted shards at random."""
        num_shards = num_clients * self.shards_per_client
        if num_shards > len(labels):
            raise ConfigError(
                f"partitioner.shards_per_client={self.shards_per_client}: {num_shards} shards "
                f"exceed the {len(labels)} training examples"
            )
        order = rng.permutation(len(labels))
        order = order[np.argsort(labels[order], kind="stable")]
        shards = np.array_split(order, num_shards)
        deal = rng.permutation(num_shards).reshape(num_clients, self.shards_per_client)
        return Partitioning([np.sort(np.concatenate([shards[s] for s in row])) for row in deal])


class FlwrDatasetsPartitioner:
    """Adapter for any ``flwr_datasets`` partitioner.

    ``partitioner`` is a callable taking ``num_partitions`` (Hydra: ``_partial_: true``),
    e.g. ``flwr_datasets.partitioner.DirichletPartitioner`` with ``partition_by: label``.
    The labels are wrapped in an in-memory ``datasets.Dataset`` (no download) and each
    partition's row indices are read back. Partitioning happens once, in the driver.
    """

    def __init__(self, partitioner: Callable[..., Any]) -> None:
        self.factory = partitioner

    def split(self, labels: np.ndarray, num_clients: int, rng: np.random.Generator) -> Partitioning:
        """Run the flwr-datasets partitioner on a (label, row) table."""
        from datasets import Dataset

        inner = self.factory(num_partitions=num_clients)
        if hasattr(inner, "_seed") and getattr(inner, "_seed", None) is None:
            inner._seed = int(rng.integers(2**31))
        inner.dataset = Dataset.from_dict({"label": labels.tolist(), "row": list(range(len(labels)))})
        return Partitioning(
            [np.sort(np.asarray(inner.load_partition(k)["row"], dtype=np.int64)) for k in range(num_clients)]
        )
