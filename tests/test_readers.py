"""Dataset readers on tiny files the tests write in the standard formats."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from fedsim.data.datasets import Cifar10Source, DigitsSource, IdxSource, SyntheticSource
from fedsim.data.idx import read_idx, write_idx
from fedsim.errors import ConfigError


def test_idx_roundtrip_gz_and_plain(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "a.gz", images)
    write_idx(tmp_path / "b", images[:, 0, 0])
    assert np.array_equal(read_idx(tmp_path / "a.gz"), images)
    assert np.array_equal(read_idx(tmp_path / "b"), images[:, 0, 0])


def test_idx_rejects_non_idx(tmp_path):
    (tmp_path / "x").write_bytes(b"not an idx file")
    with pytest.raises(ValueError, match="IDX"):
        read_idx(tmp_path / "x")


def _write_mnist_like(root, n_train=20, n_test=10):
    rng = np.random.default_rng(0)
    write_idx(root / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (n_train, 28, 28)))
    write_idx(root / "train-labels-idx1-ubyte.gz", np.arange(n_train) % 10)
    write_idx(root / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (n_test, 28, 28)))
    write_idx(root / "t10k-labels-idx1-ubyte.gz", np.arange(n_test) % 10)


def test_idx_source_loads_fashion_mnist_layout(tmp_path):
    _write_mnist_like(tmp_path)
    data = IdxSource("fmnist", str(tmp_path)).load()
    assert data.x_train.shape == (20, 1, 28, 28) and data.x_train.dtype == np.float32
    assert data.y_test.tolist() == list(range(10))
    assert data.num_classes == 10
    assert abs(float(data.x_train.mean())) < 1e-4  # standardised


def test_missing_idx_file_names_file_folder_and_fix(tmp_path):
    with pytest.raises(ConfigError) as err:
        IdxSource("fmnist", str(tmp_path), how_to_get="apt-get install dataset-fashion-mnist").load()
    message = str(err.value)
    assert "train-images-idx3-ubyte" in message and str(tmp_path) in message
    assert "apt-get install dataset-fashion-mnist" in message and "\n" not in message


def test_cifar10_source_reads_python_batches(tmp_path):
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": [0, 1, 2, 3]}
        with open(tmp_path / name, "wb") as handle:
            pickle.dump(batch, handle)
    data = Cifar10Source(str(tmp_path)).load()
    assert data.x_train.shape == (20, 3, 32, 32)
    assert data.x_test.shape == (4, 3, 32, 32)
    assert data.y_train.tolist() == [0, 1, 2, 3] * 5


def test_missing_cifar_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="data_batch_1"):
        Cifar10Source(str(tmp_path)).load()


def test_digits_and_synthetic_need_no_download():
    digits = DigitsSource().load()
    assert digits.x_train.shape[1:] == (64,) and len(digits.y_test) == 360
    synthetic = SyntheticSource(num_train=50, num_test=20).load()
    assert synthetic.x_train.shape == (50, 20)
    assert np.array_equal(synthetic.y_train, SyntheticSource(num_train=50, num_test=20).load().y_train)


def test_idx_images_scaled_as_the_authors_code_with_normalization_half(tmp_path):
    import numpy as np

    from fedsim.data.datasets import IdxSource
    from fedsim.data.idx import write_idx

    images = np.zeros((4, 28, 28), dtype=np.uint8)
    images[:, 0, 0] = 255
    for split in ("train", "t10k"):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", np.arange(4))
    half = IdxSource("fmnist", str(tmp_path), normalization="half").load()
    assert half.x_train.min() == -1.0 and half.x_train.max() == 1.0 and half.x_train[0, 0, 0, 0] == 1.0
    standard = IdxSource("fmnist", str(tmp_path)).load()
    assert abs(float(standard.x_train.mean())) < 1e-6
