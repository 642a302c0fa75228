"""Plain-PyTorch local training and evaluation (no Flower in here).

Kept free of Flower so the same code is the ceiling in benchmarks and is unit-testable.
Batches are cut from in-memory tensors with a seeded permutation (no DataLoader):
cheaper on small models and exactly reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fedsim.config_schema import TrainConfig


@dataclass
class LocalTrainingConfig(TrainConfig):
    """One client's local training: the ``train.*`` settings plus FedProx's proximal term.

    In a Flower message the keys are kebab-case (``batch-size``, ``proximal-mu``), Flower's
    style; ``proximal-mu`` is set by the server's strategy, never by the ``train`` settings.
    """

    proximal_mu: float = 0.0

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "LocalTrainingConfig":
        """Build from a message's config record (kebab-case) or a dict of settings (snake_case)."""
        kwargs = {}
        for field in fields(cls):
            for key in (field.name.replace("_", "-"), field.name):
                if key in values:
                    kwargs[field.name] = values[key]
                    break
        config = cls(**kwargs)
        config.epochs, config.batch_size = int(config.epochs), int(config.batch_size)
        return config

    def as_message_config(self) -> dict[str, Any]:
        """The ``train`` settings as a message's config entries (kebab-case; no ``proximal-mu``)."""
        return {f.name.replace("_", "-"): getattr(self, f.name) for f in fields(TrainConfig)}


@dataclass
class LocalTrainingResult:
    """What local training reports besides the new weights."""

    num_steps: int
    mean_loss: float
    optimizer_state: dict[str, np.ndarray] | None = None  # with ``keep_optimizer_state``


def optimizer_state_arrays(optimizer: torch.optim.Optimizer) -> dict[str, np.ndarray]:
    """The optimizer's per-parameter state (momentum buffers, Adam moments) as named CPU arrays."""
    return {f"{index}.{name}": value.detach().cpu().numpy().copy()
            for index, state in optimizer.state_dict()["state"].items()
            for name, value in state.items() if torch.is_tensor(value)}


def load_optimizer_state_arrays(optimizer: torch.optim.Optimizer, arrays: dict[str, np.ndarray]) -> None:
    """Put :func:`optimizer_state_arrays` back (same model and optimizer kind)."""
    device = next(p.device for group in optimizer.param_groups for p in group["params"])
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in arrays.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = torch.as_tensor(value).to(device)
    saved = optimizer.state_dict()
    optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})


def make_optimizer(model: nn.Module, config: LocalTrainingConfig) -> torch.optim.Optimizer:
    """SGD (with momentum) or Adam, with weight decay."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    raise ValueError(f"train.optimizer={config.optimizer}: use sgd or adam")


def train_locally(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    config: LocalTrainingConfig,
    seed: int,
    optimizer_state: dict[str, np.ndarray] | None = None,
) -> LocalTrainingResult:
    """Train ``model`` in place for ``config.epochs`` epochs of shuffled mini-batches.

    With ``proximal_mu > 0`` the FedProx term (mu/2)||w - w_global||^2 is added, with
    w_global the weights the model held on entry. With ``keep_optimizer_state`` the
    optimizer starts from ``optimizer_state`` (this client's state from its last
    participation, if any) and the result carries the state it ends with.
    """
    generator = torch.Generator().manual_seed(seed)  # on the CPU: same batches on every device
    optimizer = make_optimizer(model, config)
    if config.keep_optimizer_state and optimizer_state:
        load_optimizer_state_arrays(optimizer, optimizer_state)
    anchor = [p.detach().clone() for p in model.parameters()] if config.proximal_mu > 0 else None
    model.train()
    losses: list[torch.Tensor] = []  # read back once at the end (no per-step device sync)
    n = len(y)
    for _ in range(config.epochs):
        order = torch.randperm(n, generator=generator)
        if order.device != x.device:
            order = order.to(x.device)
        for start in range(0, n, config.batch_size):
            batch = order[start : start + config.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x[batch]), y[batch])
            if anchor is not None:
                prox = sum(((p - a) ** 2).sum() for p, a in zip(model.parameters(), anchor))
                loss = loss + 0.5 * config.proximal_mu * prox
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
    total_loss = 0.0
    for value in torch.stack(losses).tolist() if losses else []:
        total_loss += value  # same float64 sum, in the same order, as adding step by step
    steps = len(losses)
    kept = optimizer_state_arrays(optimizer) if config.keep_optimizer_state else None
    return LocalTrainingResult(num_steps=steps, mean_loss=total_loss / max(steps, 1), optimizer_state=kept)


@torch.inference_mode()
def evaluate_model(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> tuple[float, float]:
    """Mean cross-entropy loss and accuracy of ``model`` on (x, y) (on their device)."""
    model.eval()
    losses, hits = [], []
    for start in range(0, len(y), batch_size):
        logits = model(x[start : start + batch_size])
        target = y[start : start + batch_size]
        losses.append(F.cross_entropy(logits, target, reduction="sum"))
        hits.append((logits.argmax(dim=1) == target).sum())
    total_loss = 0.0
    for value in torch.stack(losses).tolist() if losses else []:
        total_loss += value
    correct = int(torch.stack(hits).sum()) if hits else 0
    n = max(len(y), 1)
    return total_loss / n, correct / n


def evaluate_with_gradient(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 128
) -> tuple[float, float, np.ndarray]:
    """Mean loss, accuracy and the flattened gradient of the mean loss over all of (x, y).

    One forward and one backward pass per batch give all three, so a DivFL probe costs
    about half of a separate evaluation plus a gradient pass. On one CPU core, batches of
    128 to 256 are the fastest for the small CNNs (``benchmarks/probe_gradient.py``).
    """
    model.eval()
    model.zero_grad(set_to_none=True)
    n = max(len(y), 1)
    losses, hits = [], []
    for start in range(0, len(y), batch_size):
        logits = model(x[start : start + batch_size])
        target = y[start : start + batch_size]
        batch_loss = F.cross_entropy(logits, target, reduction="sum")
        (batch_loss / n).backward()
        losses.append(batch_loss.detach())
        hits.append((logits.detach().argmax(dim=1) == target).sum())
    total_loss = 0.0
    for value in torch.stack(losses).tolist() if losses else []:
        total_loss += value
    correct = int(torch.stack(hits).sum()) if hits else 0
    grads = [p.grad.detach().reshape(-1) for p in model.parameters() if p.grad is not None]
    model.zero_grad(set_to_none=True)
    return total_loss / n, correct / n, torch.cat(grads).cpu().numpy().astype(np.float32)

