"""Examples of a user's own partitioner and sampler, plugged into fedsim by ``_target_``.

    fedsim partitioner=iid partitioner._target_=examples.my_plugins.FirstKClassesPartitioner \\
        +partitioner.classes_per_client=2
    fedsim sampler=random sampler._target_=examples.my_plugins.LargestClientsSampler \\
        ~sampler.proportional

Neither needs any change to fedsim: a partitioner has ``split(labels, num_clients, rng)``,
a sampler subclasses :class:`fedsim.selection.Sampler` and implements ``choose`` (the base
class's ``select`` hands it the sorted available ids and how many to pick).
"""

from __future__ import annotations

import numpy as np

from fedsim.selection import ProbeReport, Sampler


class FirstKClassesPartitioner:
    """Client k gets the examples of classes k, k+1, ... (mod C), dealt round-robin."""

    def __init__(self, classes_per_client: int = 2) -> None:
        self.classes_per_client = classes_per_client

    def split(self, labels: np.ndarray, num_clients: int, rng: np.random.Generator) -> list[np.ndarray]:
        """Return one index array per client (a plain list is accepted)."""
        classes = np.unique(labels)
        owners: dict[int, list[int]] = {int(c): [] for c in classes}
        for client in range(num_clients):
            for j in range(self.classes_per_client):
                owners[int(classes[(client + j) % len(classes)])].append(client)
        parts: list[list[int]] = [[] for _ in range(num_clients)]
        for c, clients in owners.items():
            if not clients:  # fewer clients than classes: this class is left out
                continue
            members = rng.permutation(np.flatnonzero(labels == c))
            for client, chunk in zip(clients, np.array_split(members, len(clients))):
                parts[client].extend(chunk.tolist())
        return [np.sort(np.array(p, dtype=np.int64)) for p in parts]


class LargestClientsSampler(Sampler):
    """Always the K available clients with the most data (a deliberately naive baseline)."""

    def choose(self, server_round: int, available: np.ndarray, count: int, probes: dict[int, ProbeReport]) -> list[int]:
        """Sort available clients by size, largest first."""
        order = np.argsort(-self.client_sizes[available], kind="stable")
        return [int(available[i]) for i in order[:count]]
