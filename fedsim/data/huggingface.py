"""Hugging Face datasets from local disk: a ``DatasetDict`` saved with ``save_to_disk``.

``dataset=huggingface dataset.path=<folder>`` reads the folder with
``datasets.load_from_disk`` (memory-mapped Arrow files; never the network: get the data
on a machine with access, ``load_dataset(...).save_to_disk(folder)``, and copy the folder).
Images come out as the IDX and CIFAR sources give them: float32, channels first
(``(n, 1, H, W)`` for grayscale, ``(n, 3, H, W)`` for RGB), integer pixels divided by 255,
then standardised per channel with the training set's statistics; one-dimensional
feature columns stay ``(n, d)``. Labels are int64 in ``[0, num_classes)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fedsim.data.datasets import DatasetArrays, _standardise
from fedsim.data.idx import check_labels
from fedsim.errors import DataError, first_line


class HuggingFaceDiskSource:
    """A Hugging Face ``DatasetDict`` from a local folder (``DatasetDict.save_to_disk``).

    ``image_column`` holds the inputs (an ``Image`` feature, or arrays / nested lists of
    numbers), ``label_column`` the integer or ``ClassLabel`` labels. ``num_classes`` null
    takes the ``ClassLabel``'s count, else the largest training label + 1.
    ``image_mode`` (``L``, ``RGB``) converts every image to that mode first, for datasets
    whose images are of mixed modes. ``name`` is the dataset's name in the records (and for
    ``model=auto``: ``fmnist`` or ``cifar10`` pick the paper's networks).
    """

    def __init__(
        self,
        path: str,
        image_column: str = "image",
        label_column: str = "label",
        train_split: str = "train",
        test_split: str = "test",
        num_classes: int | None = None,
        name: str = "huggingface",
        image_mode: str | None = None,
    ) -> None:
        self.path = str(path)
        self.image_column = image_column
        self.label_column = label_column
        self.train_split = train_split
        self.test_split = test_split
        self.num_classes = num_classes
        self.name = name
        self.image_mode = image_mode

    def _open(self) -> Any:
        """The ``DatasetDict`` on disk (one-line DataError if it is not one)."""
        from datasets import DatasetDict, load_from_disk

        folder = Path(self.path).expanduser()
        if not folder.is_dir():
            raise DataError(f"dataset.path={self.path}: no such folder; save a DatasetDict there with "
                            f"DatasetDict.save_to_disk(folder)")
        try:
            loaded = load_from_disk(str(folder))
        except Exception as exc:  # not a saved dataset, or damaged Arrow files
            reason = first_line(exc)
            raise DataError(f"dataset.path={self.path}: cannot load it with datasets.load_from_disk "
                            f"({reason})") from None
        if not isinstance(loaded, DatasetDict):
            raise DataError(f"dataset.path={self.path}: holds a single Dataset, not a DatasetDict with "
                            f"{self.train_split} and {self.test_split} splits; save a DatasetDict")
        for setting, split in (("train_split", self.train_split), ("test_split", self.test_split)):
            if split not in loaded:
                raise DataError(f"dataset.{setting}={split}: no such split in {self.path} "
                                f"(splits: {', '.join(loaded.keys())}); set dataset.{setting}")
        return loaded

    def _inputs(self, split: Any, where: str) -> np.ndarray:
        """One split's inputs as float32, channels first, integer pixels / 255."""
        from datasets import Image

        feature = split.features[self.image_column]
        if self.image_mode is not None and isinstance(feature, Image):
            split = split.cast_column(self.image_column, Image(mode=self.image_mode))
        raw = split.with_format("numpy")[self.image_column][:]
        try:
            x = np.stack([np.asarray(item) for item in raw]) if not isinstance(raw, np.ndarray) or raw.dtype == object \
                else raw
        except ValueError:
            shapes = sorted({np.asarray(item).shape for item in raw})[:3]
            raise DataError(f"{where}: inputs differ in shape ({', '.join(map(str, shapes))}); resize them to one "
                            f"shape, or set dataset.image_mode=L or RGB for mixed image modes") from None
        if x.dtype.kind not in "uif" or x.ndim < 2:
            raise DataError(f"{where}: inputs must be images or arrays of numbers, got dtype {x.dtype} "
                            f"and shape {x.shape}")
        if x.ndim == 3:  # (n, H, W): grayscale
            x = x[:, None]
        elif x.ndim == 4 and (isinstance(feature, Image) or x.shape[-1] <= 4 < x.shape[1]):
            # (n, H, W, C), the layout of PIL and Hugging Face images -> channels first
            x = x.transpose(0, 3, 1, 2)
        elif x.ndim > 4:
            raise DataError(f"{where}: expected images (n, H, W[, C]) or feature vectors (n, d), got shape {x.shape}")
        scaled = x.astype(np.float32) / 255.0 if x.dtype.kind in "ui" else x.astype(np.float32)
        if not np.isfinite(scaled).all():
            raise DataError(f"{where}: inputs hold NaN or infinite values")
        return scaled

    def load(self) -> DatasetArrays:
        """Read both splits into memory."""
        from datasets import ClassLabel

        loaded = self._open()
        num_classes = self.num_classes
        arrays: dict[str, np.ndarray] = {}
        for key, split_name in (("train", self.train_split), ("test", self.test_split)):
            split = loaded[split_name]
            where = f"{self.path} [{split_name}]"
            for setting, column in (("image_column", self.image_column), ("label_column", self.label_column)):
                if column not in split.column_names:
                    raise DataError(f"dataset.{setting}={column}: no such column in {where} "
                                    f"(columns: {', '.join(split.column_names)}); set dataset.{setting}")
            if len(split) == 0:
                raise DataError(f"{where}: the split is empty")
            feature = split.features[self.label_column]
            if num_classes is None and isinstance(feature, ClassLabel):
                num_classes = int(feature.num_classes)
            arrays[f"x_{key}"] = self._inputs(split, where)
            arrays[f"y_{key}"] = check_labels(np.asarray(split.with_format("numpy")[self.label_column][:]),
                                              f"{where} column {self.label_column}", num_classes)
        if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
            raise DataError(f"{self.path}: {self.test_split} inputs are {arrays['x_test'].shape[1:]}, "
                            f"{self.train_split} inputs {arrays['x_train'].shape[1:]}")
        if num_classes is None:
            num_classes = int(arrays["y_train"].max()) + 1
            if int(arrays["y_test"].max()) >= num_classes:
                raise DataError(f"{self.path} [{self.test_split}]: label {int(arrays['y_test'].max())} never occurs "
                                f"in the {self.train_split} labels (0..{num_classes - 1}); set dataset.num_classes")
        x_train, x_test = _standardise(arrays["x_train"], arrays["x_test"])
        return DatasetArrays(self.name, x_train, arrays["y_train"], x_test, arrays["y_test"], num_classes=num_classes)
