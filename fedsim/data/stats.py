"""Per-client label statistics: the ground truth HiCS-FL's estimates are judged against."""

from __future__ import annotations

import numpy as np
from scipy.stats import entropy

from fedsim.data.partitioners import Partitioning


def label_histograms(labels: np.ndarray, partitioning: Partitioning, num_classes: int) -> np.ndarray:
    """Count of each class per client, shape (num_clients, num_classes)."""
    return np.stack(
        [np.bincount(labels[idx], minlength=num_classes) for idx in partitioning.client_indices]
    )


def label_entropies(histograms: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of each client's label distribution."""
    return entropy(histograms.T.astype(np.float64))


def partition_summary(labels: np.ndarray, partitioning: Partitioning, num_classes: int) -> dict:
    """JSON-ready statistics for the run folder: sizes, histograms, entropies, groups."""
    hist = label_histograms(labels, partitioning, num_classes)
    return {
        "num_clients": partitioning.num_clients,
        "num_classes": num_classes,
        "sizes": partitioning.sizes.tolist(),
        "label_histograms": hist.tolist(),
        "label_entropy": [round(float(h), 6) for h in label_entropies(hist)],
        "groups": None if partitioning.groups is None else partitioning.groups.tolist(),
    }
