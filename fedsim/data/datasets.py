"""Dataset sources: each loads a train/test split into memory as numpy arrays.

Sources are small classes so Hydra can build them from ``conf/dataset/*.yaml`` by
``_target_``; a user's own source only needs a ``load() -> DatasetArrays`` method.
Nothing here downloads: files come from a local root, a package, or are generated.
"""

from __future__ import annotations

import math

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedsim.data.idx import check_labels, read_cifar_batch, read_idx
from fedsim.devices import check_fits_in_memory
from fedsim.errors import ConfigError, DataError


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
        if not 0.0 < float(test_fraction) < 1.0:
            raise ConfigError(f"dataset.test_fraction={test_fraction}: must be a fraction in (0, 1), e.g. 0.2")
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

    NORMALIZATIONS = ("standardize", "half")
    """How pixels in [0, 1] are scaled: ``standardize`` (zero mean and unit standard deviation with
    the training set's statistics, fedsim's default) or ``half`` ((x - 0.5) / 0.5, in [-1, 1]:
    torchvision's ``Normalize(0.5, 0.5)`` as the HiCS-FL authors' code uses it)."""

    # Class counts of the datasets known by name; others take ``num_classes`` or infer it.
    KNOWN_CLASSES = {"mnist": 10, "fmnist": 10, "fashion-mnist": 10, "fashion_mnist": 10, "kmnist": 10}

    def __init__(
        self,
        name: str,
        root: str,
        how_to_get: str = "copy the IDX files there",
        num_classes: int | None = None,
        normalization: str = "standardize",
    ) -> None:
        if normalization not in self.NORMALIZATIONS:
            raise ConfigError(f"dataset.normalization={normalization}: choose one of {', '.join(self.NORMALIZATIONS)}")
        self.normalization = normalization
        self.name = name
        self.root = Path(root).expanduser()
        self.how_to_get = how_to_get
        self.num_classes = num_classes if num_classes is not None else self.KNOWN_CLASSES.get(name.lower())

    def _find(self, stem: str) -> Path:
        for candidate in (self.root / f"{stem}.gz", self.root / stem):
            if candidate.exists():
                return candidate
        return _require(self.root / f"{stem}.gz", self.name, self.how_to_get)

    def load(self) -> DatasetArrays:
        """Read the IDX files and standardise the images to (n, 1, 28, 28) float32."""
        paths = {key: self._find(stem) for key, stem in self.FILES.items()}
        arrays = {key: read_idx(path) for key, path in paths.items()}
        for split in ("train", "test"):
            images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
            if images.ndim != 3 or images.shape[0] == 0:
                raise DataError(f"{paths[f'x_{split}']}: expected images of shape (n, height, width), got {images.shape}")
            if images.dtype.kind not in "ui":
                raise DataError(f"{paths[f'x_{split}']}: images must be integer pixels, got dtype {images.dtype}")
            arrays[f"y_{split}"] = check_labels(labels, paths[f"y_{split}"], self.num_classes)
            if len(arrays[f"y_{split}"]) != len(images):
                raise DataError(
                    f"{paths[f'y_{split}']}: {len(labels)} labels for the {len(images)} images "
                    f"of {paths[f'x_{split}'].name}"
                )
        if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
            raise DataError(
                f"{paths['x_test']}: test images are {arrays['x_test'].shape[1:]}, "
                f"training images {arrays['x_train'].shape[1:]}"
            )
        y_tr, y_te = arrays["y_train"], arrays["y_test"]
        num_classes = self.num_classes
        if num_classes is None:
            num_classes = int(y_tr.max()) + 1
            if y_te.size and int(y_te.max()) >= num_classes:
                raise DataError(
                    f"{paths['y_test']}: test label {int(y_te.max())} never occurs in the training "
                    f"labels (0..{num_classes - 1}); set dataset.num_classes"
                )
        x_tr = arrays["x_train"].astype(np.float32)[:, None] / 255.0
        x_te = arrays["x_test"].astype(np.float32)[:, None] / 255.0
        if self.normalization == "half":
            x_tr, x_te = (x_tr - 0.5) / 0.5, (x_te - 0.5) / 0.5
        else:
            x_tr, x_te = _standardise(x_tr, x_te)
        return DatasetArrays(self.name, x_tr, y_tr, x_te, y_te, num_classes=num_classes)


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
            read_cifar_batch(_require(self.root / f"data_batch_{i}", self.name, how), num_classes=10)
            for i in range(1, 6)
        ]
        x_te, y_te = read_cifar_batch(_require(self.root / "test_batch", self.name, how), num_classes=10)
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
        for key, value, low in (("num_train", num_train, 1), ("num_test", num_test, 1), ("num_classes", num_classes, 2),
                                 ("dim", dim, 1)):
            if value < low:
                raise ConfigError(f"dataset.{key}={value}: must be a whole number >= {low}")
        if not math.isfinite(float(separation)):
            raise ConfigError(f"dataset.separation={separation}: must be a finite number")
        # float64 draws, then float32 inputs and int64 labels: about 20 bytes per value plus the labels
        check_fits_in_memory((num_train + num_test) * (20.0 * dim + 16.0),
                             f"dataset num_train={num_train}, num_test={num_test}, dim={dim}",
                             "lower dataset.num_train, dataset.num_test or dataset.dim")
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
