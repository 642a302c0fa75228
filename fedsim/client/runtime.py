"""What a client process needs to train: the data of every partition and a model recipe.

A :class:`ClientRuntime` is picklable and small when pickled (dataset source + partition
indices + model recipe): Flower's Ray engine ships it to each worker, which then loads
the dataset once and reuses it for every client it runs. The loaded data lives in a
per-process cache keyed by the runtime's id, so it survives the ClientApp being
unpickled again for every message. In the in-process engine the driver's already-loaded
arrays are shared directly.
"""

from __future__ import annotations

import uuid
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from fedsim.data.datasets import DatasetArrays

# Per-process caches, keyed by ClientRuntime.key: loaded datasets, client tensors, models.
_DATASETS: dict[str, DatasetArrays] = {}
_TENSORS: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}
_MODELS: dict[str, nn.Module] = {}


class ClientRuntime:
    """Lazy, per-process access to client data and a reusable model instance."""

    def __init__(
        self,
        source: Any,
        client_indices: list[np.ndarray],
        model_factory: Callable[[], nn.Module],
        dataset: DatasetArrays | None = None,
    ) -> None:
        self.source = source
        self.client_indices = client_indices
        self.model_factory = model_factory
        self.key = uuid.uuid4().hex
        if dataset is not None:
            _DATASETS[self.key] = dataset

    def release(self) -> None:
        """Drop this runtime's cached data and model from this process (end of a run)."""
        _DATASETS.pop(self.key, None)
        _MODELS.pop(self.key, None)
        for cache_key in [k for k in _TENSORS if k[0] == self.key]:
            del _TENSORS[cache_key]

    @property
    def num_clients(self) -> int:
        """Number of partitions (clients)."""
        return len(self.client_indices)

    @property
    def dataset(self) -> DatasetArrays:
        """The full dataset, loaded on first use in this process."""
        if self.key not in _DATASETS:
            _DATASETS[self.key] = self.source.load()
        return _DATASETS[self.key]

    def client_tensors(self, partition_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A client's training inputs and labels as tensors (cached per process)."""
        cache_key = (self.key, partition_id)
        if cache_key not in _TENSORS:
            idx = self.client_indices[partition_id]
            x = torch.from_numpy(np.ascontiguousarray(self.dataset.x_train[idx]))
            y = torch.from_numpy(np.ascontiguousarray(self.dataset.y_train[idx]))
            _TENSORS[cache_key] = (x, y)
        return _TENSORS[cache_key]

    def model(self) -> nn.Module:
        """A model instance reused across clients of this process (weights are overwritten)."""
        if self.key not in _MODELS:
            _MODELS[self.key] = self.model_factory()
        return _MODELS[self.key]
