"""Central evaluation of the global model on the global test set."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from flwr.app import ArrayRecord
from torch import nn

from fedsim.client.training import evaluate_model


class CentralEvaluator:
    """Loss and accuracy of global weights on a fixed test set."""

    def __init__(self, x_test: np.ndarray, y_test: np.ndarray, model_factory: Callable[[], nn.Module]) -> None:
        self.x = torch.from_numpy(np.ascontiguousarray(x_test))
        self.y = torch.from_numpy(np.ascontiguousarray(y_test))
        self.model = model_factory()

    def __call__(self, arrays: ArrayRecord) -> tuple[float, float]:
        """Return (loss, accuracy)."""
        self.model.load_state_dict(arrays.to_torch_state_dict())
        return evaluate_model(self.model, self.x, self.y)
