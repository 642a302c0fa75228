"""Dataset sources: each loads a train/test split into memory as numpy arrays.

Sources are small classes so Hydra can build them from ``conf/dataset/*.yaml`` by
``_target_``; a user's own source only needs a ``load() -> DatasetArrays`` method.
Nothing here downloads: files come from a local root, a package, or are generated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedsim.data.idx import read_cifar_batch, read_idx
from fedsim.errors import ConfigError


@dataclass
class DatasetArrays:
    """A dataset held in memory: float32 inputs, int64 labels, and its class count."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input example (without the batch dimension)."""
        return tuple(self.x_train.shape[1:])


def _standardise(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale to zero mean / unit std with the training set's per-channel statistics."""
    axes = (0,) + tuple(range(2, x_train.ndim)) if x_train.ndim > 2 else (0, 1)
    mean = x_train.mean(axis=axes, keepdims=True)
    std = x_train.std(axis=axes, keepdims=True) + 1e-8
    return ((x_train - mean) / std).astype(np.float32), ((x_test - mean) / std).astype(np.float32)


def _require(path: Path, dataset: str, how_to_get: str) -> Path:
    """Return ``path`` if it exists, else raise a one-line error saying how to get it."""
    if not path.exists():
        raise ConfigError(
            f"dataset={dataset}: missing file {path.name} (looked in {path.parent}); "
            f"{how_to_get}, or set dataset.root=<folder holding it>"
        )
    return path


class DigitsSource:
    """scikit-learn's bundled 8x8 digits (1,797 images): the no-download default.

    Split 80/20 (stratified) with a fixed split seed so every run shares the test set.
    """

    name = "digits"

    def __init__(self, test_fraction: float = 0.2, split_seed: int = 0) -> None:
        self.test_fraction = test_fraction
        self.split_seed = split_seed

    def load(self) -> DatasetArrays:
        """Load and split the digits."""
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        x = digits.data.astype(np.float32) / 16.0
        y = digits.target.astype(np.int64)
        x_tr, x_te, y_tr, y_te = train_test_split(
            x, y, test_size=self.test_fraction, random_state=self.split_seed, stratify=y
        )
        x_tr, x_te = _standardise(x_tr, x_te)
        return DatasetArrays(self.name, x_tr, y_tr, x_te, y_te, num_classes=10)


class IdxSource:
    """MNIST-format data (Fashion-MNIST, MNIST) from the four IDX files under ``root``."""

    FILES = {
        "x_train": "train-images-idx3-ubyte",
        "y_train": "train-labels-idx1-ubyte",
        "x_test": "t10k-images-idx3-ubyte",
        "y_test": "t10k-labels-idx1-ubyte",
    }

    def __init__(self, name: str, root: str, how_to_get: str = "copy the IDX files there") -> None:
        self.name = name
        self.root = Path(root).expanduser()
        self.how_to_get = how_to_get

    def _find(self, stem: str) -> Path:
        for candidate in (self.root / f"{stem}.gz", self.root / stem):
            if candidate.exists():
                return candidate
        return _require(self.root / f"{stem}.gz", self.name, self.how_to_get)

    def load(self) -> DatasetArrays:
        """Read the IDX files and standardise the images to (n, 1, 28, 28) float32."""
        arrays = {key: read_idx(self._find(stem)) for key, stem in self.FILES.items()}
        x_tr = arrays["x_train"].astype(np.float32)[:, None] / 255.0
        x_te = arrays["x_test"].astype(np.float32)[:, None] / 255.0
        x_tr, x_te = _standardise(x_tr, x_te)
        y_tr = arrays["y_train"].astype(np.int64)
        y_te = arrays["y_test"].astype(np.int64)
        return DatasetArrays(self.name, x_tr, y_tr, x_te, y_te, num_classes=int(y_tr.max()) + 1)


class Cifar10Source:
    """CIFAR-10 from the standard python batches (``data_batch_1..5``, ``test_batch``)."""

    name = "cifar10"

    def __init__(self, root: str) -> None:
        root_path = Path(root).expanduser()
        nested = root_path / "cifar-10-batches-py"
        self.root = nested if nested.is_dir() else root_path

    def load(self) -> DatasetArrays:
        """Read the five training batches and the test batch."""
        how = "unpack the CIFAR-10 python version (cifar-10-python.tar.gz) there"
        train = [
            read_cifar_batch(_require(self.root / f"data_batch_{i}", self.name, how))
            for i in range(1, 6)
        ]
        x_te, y_te = read_cifar_batch(_require(self.root / "test_batch", self.name, how))
        x_tr = np.concatenate([x for x, _ in train]).astype(np.float32) / 255.0
        y_tr = np.concatenate([y for _, y in train])
        x_tr, x_te = _standardise(x_tr, x_te.astype(np.float32) / 255.0)
        return DatasetArrays(self.name, x_tr, y_tr, x_te, y_te, num_classes=10)


class SyntheticSource:
    """Gaussian class clusters in ``dim`` dimensions: quick, learnable data for tests."""

    name = "synthetic"

    def __init__(
        self,
        num_train: int = 1000,
        num_test: int = 300,
        num_classes: int = 10,
        dim: int = 20,
        separation: float = 3.0,
        data_seed: int = 0,
    ) -> None:
        self.num_train, self.num_test = num_train, num_test
        self.num_classes, self.dim = num_classes, dim
        self.separation, self.data_seed = separation, data_seed

    def load(self) -> DatasetArrays:
        """Generate the data (same ``data_seed`` gives the same arrays)."""
        rng = np.random.default_rng(self.data_seed)
        centres = rng.normal(0.0, self.separation, size=(self.num_classes, self.dim))

        def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
            y = np.arange(n) % self.num_classes
            rng.shuffle(y)
            x = centres[y] + rng.normal(size=(n, self.dim))
            return x.astype(np.float32), y.astype(np.int64)

        x_tr, y_tr = draw(self.num_train)
        x_te, y_te = draw(self.num_test)
        return DatasetArrays(self.name, x_tr, y_tr, x_te, y_te, self.num_classes)
