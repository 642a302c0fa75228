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

from fedsim.errors import ConfigError, first_line


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


def _check_alpha(alpha: Any, setting: str = "partitioner.alpha", entry: bool = False) -> float:
    """The one range rule for a Dirichlet concentration: a finite number > 0.

    Each partitioner constructor that takes an alpha calls this (nothing else checks it).
    ``entry=True`` words the message for one value of a list setting
    (``partitioner.alphas: -1 must be ...``), otherwise ``partitioner.alpha=-1: must be ...``.
    Returns the value as a float.
    """
    head = f"{setting}: {alpha!s}" if entry else f"{setting}={alpha!s}:"
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        value = float("nan")
    if isinstance(alpha, bool) or not (np.isfinite(value) and value > 0):
        raise ConfigError(f"{head} must be a finite number > 0 (e.g. 0.1 for strong label skew)")
    return value


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
    setting: str = "partitioner.alpha",
    underflow: str = "uniform",
) -> list[np.ndarray]:
    """Class-wise Dirichlet(alpha) label skew, NIID-Bench style.

    For each class, proportions over clients are drawn from Dirichlet(alpha); a client
    already holding at least the average share gets no more (the NIID-Bench balance
    rule). The draw is repeated until every client holds at least ``min_size`` examples
    (NIID-Bench: 10) and ``min_size_fraction`` x the average size (the HiCS-FL authors'
    code: 0.2), and always at least one.

    With a tiny alpha the Dirichlet proportions of most clients are exactly 0 in floating
    point, so all the mass can land on clients the balance rule has closed. ``underflow``
    says what happens then: ``"uniform"`` spreads the class evenly over the open clients
    (fedsim's first rule, kept so earlier partitions reproduce); ``"redraw"`` draws
    Dirichlet(alpha) over the open clients only, which is the distribution that masking
    and renormalising stands for, without the underflow (a tiny alpha then still gives
    the class to one client, as in the HiCS-FL authors' code).

    ``alpha`` is not range-checked here: the partitioner constructors own that rule
    (:func:`_check_alpha`). ``setting`` names the alpha in the error message.
    """
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
                if underflow == "redraw" and eligible.any():
                    props = np.zeros(num_clients)
                    props[eligible] = rng.dirichlet(np.full(int(eligible.sum()), alpha))
                else:
                    props = eligible / max(eligible.sum(), 1)
            props = props / props.sum()
            cuts = (np.cumsum(props) * len(members)).astype(int)[:-1]
            for client, part in enumerate(np.split(members, cuts)):
                buckets[client].append(part)
                sizes[client] += len(part)
        if sizes.min() >= min_size:
            return [np.sort(np.concatenate(b)) for b in buckets]
    raise ConfigError(
        f"{setting}={alpha}: could not give each of {num_clients} clients at least "
        f"{min_size} examples in {max_tries} draws; use fewer clients, a larger alpha or a "
        f"smaller partitioner.min_size / partitioner.min_size_fraction"
    )


class DirichletPartitioner:
    """Label skew: per-class Dirichlet(alpha) proportions (smaller alpha = more skew)."""

    def __init__(self, alpha: float = 0.5, min_size: int = 10, min_size_fraction: float = 0.0) -> None:
        self.alpha = _check_alpha(alpha)
        self.min_size = min_size
        self.min_size_fraction = min_size_fraction

    def split(self, labels: np.ndarray, num_clients: int, rng: np.random.Generator) -> Partitioning:
        """Deal the whole training set by Dirichlet(alpha)."""
        return Partitioning(
            dirichlet_split(labels, num_clients, self.alpha, rng, self.min_size_fraction, min_size=self.min_size)
        )


class GroupsPartitioner:
    """The HiCS-FL paper's mixed-heterogeneity setting: one client group per alpha.

    The training set is cut into as many parts as there are ``alphas``; part g is dealt
    by class-wise Dirichlet(alphas[g]) (:func:`dirichlet_split`, with the balance rule and
    the re-draw until every client holds ``min_size_fraction`` x the part's average size)
    to the g-th block of clients, who form heterogeneity group g (recorded in
    ``Partitioning.groups``). Clients are numbered group by group.

    ``split`` chooses how the parts are cut:

    - ``"stratified"`` (default; the HiCS-FL authors' code, ``partition_data_various_alpha``):
      the examples of each class are shuffled and cut into ``len(alphas)`` consecutive
      near-equal blocks, and part g takes block g of every class, so every part holds
      the same share of every class (up to one example per class; the authors' code
      drops that remainder, which is empty on Fashion-MNIST and CIFAR-10). Each part is
      dealt with ``dirichlet_split(..., underflow="redraw")``: when the Dirichlet mass of
      a class underflows onto clients that are already full, the class is re-dealt by
      Dirichlet(alpha) over the open clients, so a tiny alpha still gives it to one
      client. With alphas .001/.002/.005 on Fashion-MNIST nearly every client of those
      groups then holds exactly one class.
    - ``"random"``: the parts are equal random (not class-stratified) slices of a
      shuffled training set, so their class counts vary and a low-alpha client can pick
      up a second class. This is fedsim's earlier behaviour, kept exactly (same random
      stream, and ``underflow="uniform"``: a class whose mass underflows is spread
      evenly over the open clients) so runs made before the switch reproduce with
      ``partitioner.split=random``.
    """

    SPLITS = ("stratified", "random")

    def __init__(
        self, alphas: Sequence[float], min_size_fraction: float = 0.2, split: str = "stratified"
    ) -> None:
        if isinstance(alphas, (str, bytes)) or not hasattr(alphas, "__len__"):
            raise ConfigError(f"partitioner.alphas: {alphas!s} is not a list; give one alpha per group, e.g. [0.001,0.5]")
        if len(alphas) == 0:
            raise ConfigError("partitioner.alphas: give at least one alpha, e.g. [0.001,0.5]")
        self.alphas = [_check_alpha(alpha, "partitioner.alphas", entry=True) for alpha in alphas]
        if split not in self.SPLITS:
            raise ConfigError(f"partitioner.split={split}: expected one of {', '.join(self.SPLITS)}")
        self.split_mode = split
        self.min_size_fraction = min_size_fraction

    def split(self, labels: np.ndarray, num_clients: int, rng: np.random.Generator) -> Partitioning:
        """Cut into parts (stratified or random), then deal each part by its own alpha."""
        num_groups = len(self.alphas)
        if num_clients < num_groups:
            raise ConfigError(
                f"num_clients={num_clients}: the groups partitioner needs at least one client "
                f"per alpha ({num_groups})"
            )
        if self.split_mode == "stratified":
            parts = _stratified_parts(labels, num_groups, rng)
            underflow = "redraw"
        else:
            parts = np.array_split(rng.permutation(len(labels)), num_groups)
            underflow = "uniform"
        client_blocks = np.array_split(np.arange(num_clients), num_groups)
        indices: list[np.ndarray] = []
        groups = np.empty(num_clients, dtype=np.int64)
        for g, (part, block) in enumerate(zip(parts, client_blocks)):
            local = dirichlet_split(
                labels[part], len(block), self.alphas[g], rng, self.min_size_fraction, min_size=1,
                setting=f"partitioner.alphas[{g}]", underflow=underflow,
            )
            indices.extend(np.sort(part[idx]) for idx in local)
            groups[block] = g
        return Partitioning(indices, groups)


def _stratified_parts(labels: np.ndarray, num_parts: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Part g = block g of every class (each class shuffled, then cut into near-equal blocks)."""
    pieces: list[list[np.ndarray]] = [[] for _ in range(num_parts)]
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        for g, block in enumerate(np.array_split(members, num_parts)):
            pieces[g].append(block)
    return [np.sort(np.concatenate(p)) for p in pieces]


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
    """Adapter for any ``flwr_datasets`` partitioner, seeded or not.

    ``partitioner`` is a callable taking ``num_partitions`` (Hydra: ``_partial_: true``),
    e.g. ``flwr_datasets.partitioner.DirichletPartitioner`` with ``partition_by: label``,
    or ``flwr_datasets.partitioner.IidPartitioner``. The labels are wrapped in an
    in-memory ``datasets.Dataset`` (columns ``label`` and ``row``; no download) and each
    partition's row indices are read back. Partitioning happens once, in the driver.

    Seeding, from the run's partition stream (``rng``):

    - a partitioner whose constructor takes ``seed`` gets one drawn from ``rng``, unless
      the config fixes it (``partitioner.partitioner.seed=3``; ``null`` or leaving it out
      means "from the run seed"); one without a ``seed`` argument is called without it;
    - with ``shuffle`` (default), the rows are handed over in an order drawn from ``rng``,
      as flwr-datasets' ``FederatedDataset`` shuffles before partitioning: partitioners
      that cut the table in order (``IidPartitioner`` shards it contiguously) then give
      random, run-seeded partitions instead of label-sorted ones.
    """

    def __init__(self, partitioner: Callable[..., Any], shuffle: bool = True) -> None:
        self.factory = partitioner
        self.shuffle = shuffle

    def _name(self) -> str:
        import functools

        target = self.factory.func if isinstance(self.factory, functools.partial) else self.factory
        return getattr(target, "__name__", type(target).__name__)

    def _factory(self) -> tuple[Callable[..., Any], bool]:
        """The factory to call, and whether to pass it a seed drawn from the run.

        A ``seed: null`` the config carries (Hydra cannot delete a null key, so it stays
        when ``_target_`` is switched to a partitioner without a seed) is dropped; the run's
        seed is passed when the constructor takes ``seed`` and the config does not fix it.
        """
        import functools
        import inspect

        factory = self.factory
        if isinstance(factory, functools.partial) and "seed" in factory.keywords and factory.keywords["seed"] is None:
            keywords = {k: v for k, v in factory.keywords.items() if k != "seed"}
            factory = functools.partial(factory.func, *factory.args, **keywords)
        if isinstance(factory, functools.partial) and "seed" in factory.keywords:
            return factory, False  # fixed in the config
        try:
            parameter = inspect.signature(factory).parameters.get("seed")
        except (TypeError, ValueError):
            return factory, False
        return factory, parameter is not None and parameter.kind is not inspect.Parameter.POSITIONAL_ONLY

    def split(self, labels: np.ndarray, num_clients: int, rng: np.random.Generator) -> Partitioning:
        """Run the flwr-datasets partitioner on a (label, row) table."""
        from datasets import Dataset

        factory, seeded_by_run = self._factory()
        extra = {"seed": int(rng.integers(2**31))} if seeded_by_run else {}
        rows = rng.permutation(len(labels)) if self.shuffle else np.arange(len(labels))
        try:
            inner = factory(num_partitions=num_clients, **extra)
            inner.dataset = Dataset.from_dict({"label": labels[rows].tolist(), "row": rows.tolist()})
            parts = [np.asarray(inner.load_partition(k)["row"], dtype=np.int64) for k in range(num_clients)]
        except ConfigError:
            raise
        except Exception as exc:  # the flwr-datasets partitioner refusing its settings or the data
            reason = first_line(exc)
            raise ConfigError(f"partitioner: flwr-datasets {self._name()}: {reason}") from None
        return Partitioning([np.sort(part) for part in parts])
