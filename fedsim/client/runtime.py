"""What a client process needs to train: the data of every partition and a model recipe.

A :class:`ClientRuntime` is picklable and small when pickled (dataset source + partition
indices + model recipe): Flower's Ray engine ships it to each worker, which then loads
the dataset once and reuses it for every client it runs. In the in-process engine the
driver's already-loaded arrays are shared directly.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from fedsim.data.datasets import DatasetArrays


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
        self._dataset = dataset
        self._model: nn.Module | None = None
        self._tensors: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_dataset=None, _model=None, _tensors={})
        return state

    @property
    def num_clients(self) -> int:
        """Number of partitions (clients)."""
        return len(self.client_indices)

    @property
    def dataset(self) -> DatasetArrays:
        """The full dataset, loaded on first use in this process."""
        if self._dataset is None:
            self._dataset = self.source.load()
        return self._dataset

    def client_tensors(self, partition_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A client's training inputs and labels as tensors (cached per process)."""
        if partition_id not in self._tensors:
            idx = self.client_indices[partition_id]
            x = torch.from_numpy(np.ascontiguousarray(self.dataset.x_train[idx]))
            y = torch.from_numpy(np.ascontiguousarray(self.dataset.y_train[idx]))
            self._tensors[partition_id] = (x, y)
        return self._tensors[partition_id]

    def model(self) -> nn.Module:
        """A model instance reused across clients of this process (weights are overwritten)."""
        if self._model is None:
            self._model = self.model_factory()
        return self._model
