"""Model aggregation: plain or data-size-weighted mean of client weights."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from flwr.app import Array, ArrayRecord


def average_arrays(records: Sequence[ArrayRecord], weights: Sequence[float] | None = None) -> ArrayRecord:
    """Average ArrayRecords key by key; ``weights`` None gives the plain mean.

    Integer arrays (e.g. BatchNorm's ``num_batches_tracked``) are averaged in float64
    and cast back to their dtype.
    """
    if not records:
        raise ValueError("average_arrays needs at least one record")
    factors = np.full(len(records), 1.0 / len(records)) if weights is None else np.asarray(weights, float)
    factors = factors / factors.sum()
    averaged: dict[str, Array] = {}
    for key in records[0].keys():
        stack = [record[key].numpy() for record in records]
        total = sum(f * a.astype(np.float64) for f, a in zip(factors, stack))
        averaged[key] = Array(np.asarray(total, dtype=stack[0].dtype))
    return ArrayRecord(averaged)
