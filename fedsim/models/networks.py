"""The networks fedsim trains.

Each ``conf/model/*.yaml`` names one of them by ``_target_`` (``auto``: :func:`paper_network`);
fedsim calls it as ``target(input_shape, num_classes, **settings)``, adding the dataset's
name as ``dataset=`` when the target takes a ``dataset`` argument. A user's own network
plugs in the same way, ``model._target_=pkg.MyNet``.

Every network names its output layer ``head`` (an ``nn.Linear``): HiCS-FL reads the
update of ``head.bias`` (and ``head.weight``) and must find it without guessing.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

OUTPUT_LAYER = "head"


def output_layer_names() -> tuple[str, str]:
    """State-dict keys of the output layer's weight and bias."""
    return f"{OUTPUT_LAYER}.weight", f"{OUTPUT_LAYER}.bias"


class Mlp(nn.Module):
    """Flatten -> [Linear -> ReLU] x len(hidden) -> head. Used for digits and synthetic data."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, hidden: Sequence[int] = (64,)) -> None:
        super().__init__()
        in_features = int(torch.tensor(input_shape).prod())
        layers: list[nn.Module] = [nn.Flatten()]
        for width in hidden:
            layers += [nn.Linear(in_features, width), nn.ReLU()]
            in_features = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.head(self.body(x))


class FmnistCnn(nn.Module):
    """The paper's Fashion-MNIST CNN: conv5x5(16)-pool-conv5x5(32)-pool-fc."""

    def __init__(self, input_shape: tuple[int, ...] = (1, 28, 28), num_classes: int = 10) -> None:
        super().__init__()
        channels, height, _ = input_shape
        self.body = nn.Sequential(
            nn.Conv2d(channels, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
        )
        side = ((height - 4) // 2 - 4) // 2
        self.head = nn.Linear(32 * side * side, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.head(self.body(x))


class FmnistCnnReference(nn.Module):
    """The FMNIST CNN of the authors' code (BatchNorm, PReLU, Xavier init).

    ``init_gain`` is the gain of the Xavier-uniform initialisation of every conv and linear
    weight, by the activation name ``torch.nn.init.calculate_gain`` takes: ``"linear"``
    (gain 1, fedsim's default) or ``"relu"`` (gain sqrt(2), the authors' code:
    ``server/server_base.py``). With BatchNorm after each conv, weights sqrt(2) larger train
    with about half the effective learning rate (``docs/authors-parity.md``).
    """

    INIT_GAINS = ("linear", "relu")

    def __init__(self, input_shape: tuple[int, ...] = (1, 28, 28), num_classes: int = 10,
                 init_gain: str = "linear") -> None:
        super().__init__()
        if init_gain not in self.INIT_GAINS:
            raise ValueError(f"model.init_gain={init_gain!r}: choose one of {', '.join(self.INIT_GAINS)}")
        self.init_gain = init_gain
        channels, height, _ = input_shape
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1, bias=False), nn.PReLU(), nn.BatchNorm2d(32),
            nn.Conv2d(32, 32, 3, padding=1), nn.PReLU(), nn.BatchNorm2d(32), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.PReLU(), nn.BatchNorm2d(64), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * (height // 4) ** 2, 64), nn.ReLU(),
        )
        self.head = nn.Linear(64, num_classes)
        gain = nn.init.calculate_gain(init_gain)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight, gain=gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.head(self.body(x))


class Cifar10Cnn(nn.Module):
    """The paper's CIFAR-10 CNN (three 3x3 convs with dropout, fc 1024-64, head)."""

    def __init__(self, input_shape: tuple[int, ...] = (3, 32, 32), num_classes: int = 10, dropout: float = 0.2) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(input_shape[0], 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(dropout),
            nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(dropout),
            nn.Conv2d(64, 64, 3), nn.Dropout(dropout),
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, 64), nn.ReLU(),
        )
        self.head = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.head(self.body(x))


PAPER_NETWORKS = {"digits": Mlp, "synthetic": Mlp, "fmnist": FmnistCnn, "mnist": FmnistCnn, "cifar10": Cifar10Cnn}
"""The HiCS-FL paper's network per dataset name (``model=auto``)."""


def paper_network(input_shape: tuple[int, ...], num_classes: int, dataset: str = "") -> nn.Module:
    """The paper's network for ``dataset`` (an MLP for a dataset the paper does not use)."""
    return PAPER_NETWORKS.get(dataset, Mlp)(tuple(input_shape), num_classes)
