"""The store of each client's latest full model update, shared by the samplers that need one.

Clustered sampling measures angles between clients' latest updates and DivFL (stale
variant) covers them by facility location; both read this one store.
"""

from __future__ import annotations

import numpy as np

from fedsim.selection.base import ClientReport
from fedsim.selection.geometry import angles_from_gram, distances_from_gram


class LatestUpdates:
    """Each client's latest full model update (zeros until seen) and their Gram matrix.

    Updates are kept in float32 (N x |theta|); the Gram matrix is refreshed only for the
    rows of clients that reported, so a round costs O(K N |theta|), not O(N^2 |theta|).
    """

    def __init__(self, num_clients: int) -> None:
        self.num_clients = num_clients
        self.updates: np.ndarray | None = None
        self.gram = np.zeros((num_clients, num_clients))
        self.seen = np.zeros(num_clients, dtype=bool)

    def store(self, reports: list[ClientReport]) -> None:
        """Keep the model updates of these reports (those without one are skipped)."""
        changed = []
        for report in reports:
            if report.model_update is None:
                continue
            vec = np.asarray(report.model_update, dtype=np.float32).ravel()
            if self.updates is None:
                self.updates = np.zeros((self.num_clients, vec.size), dtype=np.float32)
            self.updates[report.partition_id] = vec
            self.seen[report.partition_id] = True
            changed.append(report.partition_id)
        if not changed:
            return
        rows = self.updates[changed].astype(np.float64) @ self.updates.T.astype(np.float64)
        self.gram[changed, :] = rows
        self.gram[:, changed] = rows.T

    def angles(self, ids: np.ndarray) -> np.ndarray:
        """Angles (radians) between the latest updates of the given clients."""
        return angles_from_gram(self.gram[np.ix_(ids, ids)])

    def distances(self, ids: np.ndarray) -> np.ndarray:
        """Euclidean distances ``||g_i - g_j||`` among the given clients."""
        return distances_from_gram(self.gram[np.ix_(ids, ids)])
