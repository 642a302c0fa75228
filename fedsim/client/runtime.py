"""What a client process needs to train: the data of every partition and a model recipe.

A :class:`ClientRuntime` is picklable and small when pickled (dataset source + partition
indices + model recipe): Flower's Ray engine ships it to each worker, which then loads
the dataset once and reuses it for every client it runs. The loaded data lives in a
per-process cache keyed by the runtime's id, so it survives the ClientApp being
unpickled again for every message. In the in-process engine the driver's already-loaded
arrays are shared directly.

``device`` (a ``device`` setting: auto, cpu, cuda, cuda:N) is resolved in each process
that runs clients: client tensors and the model live there. In a Ray client actor,
``auto`` means the GPU Ray gave the actor (``engine.num_gpus_per_client > 0``) and the
CPU otherwise; an explicit ``cuda`` uses the actor's GPU share.
"""

from __future__ import annotations

import uuid
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from fedsim.data.datasets import DatasetArrays
from fedsim.devices import resolve_device

# Per-process caches, keyed by ClientRuntime.key: loaded datasets, client tensors, models.
_DATASETS: dict[str, DatasetArrays] = {}
_TENSORS: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}
_MODELS: dict[str, nn.Module] = {}
_DEVICES: dict[str, torch.device] = {}


def ray_gpu_ids() -> list | None:
    """The GPUs Ray assigned to this process when it is a Ray actor, else None."""
    import sys

    if "ray" not in sys.modules:
        return None
    import ray

    try:
        if not ray.is_initialized() or ray.get_runtime_context().get_actor_id() is None:
            return None
        return list(ray.get_gpu_ids())
    except Exception:  # noqa: BLE001 - not a Ray worker after all
        return None


def process_device(spec: str | torch.device) -> torch.device:
    """The device clients of this process compute on, for a ``device`` setting."""
    gpu_ids = ray_gpu_ids()
    if gpu_ids is not None and str(spec).strip().lower() == "auto":
        # Ray exposes the assigned GPU(s) as cuda:0.. through CUDA_VISIBLE_DEVICES.
        return resolve_device("cuda") if gpu_ids else torch.device("cpu")
    return resolve_device(spec)


class ClientRuntime:
    """Lazy, per-process access to client data and a reusable model instance."""

    def __init__(
        self,
        source: Any,
        client_indices: list[np.ndarray],
        model_factory: Callable[[], nn.Module],
        dataset: DatasetArrays | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        self.source = source
        self.client_indices = client_indices
        self.model_factory = model_factory
        self.device_spec = str(device)
        self.key = uuid.uuid4().hex
        if dataset is not None:
            _DATASETS[self.key] = dataset

    def release(self) -> None:
        """Drop this runtime's cached data and model from this process (end of a run)."""
        _DATASETS.pop(self.key, None)
        _MODELS.pop(self.key, None)
        _DEVICES.pop(self.key, None)
        for cache_key in [k for k in _TENSORS if k[0] == self.key]:
            del _TENSORS[cache_key]

    @property
    def num_clients(self) -> int:
        """Number of partitions (clients)."""
        return len(self.client_indices)

    @property
    def device(self) -> torch.device:
        """The device this process's clients compute on (resolved once per process)."""
        if self.key not in _DEVICES:
            _DEVICES[self.key] = process_device(self.device_spec)
        return _DEVICES[self.key]

    def prepare(self) -> None:
        """Build every client's tensors now (before worker processes fork and share them)."""
        for partition_id in range(self.num_clients):
            self.client_tensors(partition_id)

    @property
    def dataset(self) -> DatasetArrays:
        """The full dataset, loaded on first use in this process."""
        if self.key not in _DATASETS:
            _DATASETS[self.key] = self.source.load()
        return _DATASETS[self.key]

    def client_tensors(self, partition_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A client's training inputs and labels as tensors on :attr:`device` (cached per process)."""
        cache_key = (self.key, partition_id)
        if cache_key not in _TENSORS:
            idx = self.client_indices[partition_id]
            x = torch.from_numpy(np.ascontiguousarray(self.dataset.x_train[idx]))
            y = torch.from_numpy(np.ascontiguousarray(self.dataset.y_train[idx]))
            if self.device.type != "cpu":
                x, y = x.to(self.device), y.to(self.device)
            _TENSORS[cache_key] = (x, y)
        return _TENSORS[cache_key]

    def model(self) -> nn.Module:
        """A model instance reused across clients of this process (weights are overwritten)."""
        if self.key not in _MODELS:
            _MODELS[self.key] = self.model_factory().to(self.device)
        return _MODELS[self.key]
