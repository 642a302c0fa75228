"""Hostile and broken dataset files: every one is a one-line DataError naming the file.

A crafted CIFAR pickle must not run code; corrupt IDX files (bad magic, truncated header
or data, absurd ndim, bad gzip, a folder in place of a file, float or out-of-range labels,
image/label count mismatch) must not crash with a traceback or load silently.
"""

from __future__ import annotations

import gzip
import os
import pickle

import numpy as np
import pytest

from fedsim.data.datasets import Cifar10Source, IdxSource
from fedsim.data.idx import read_cifar_batch, read_idx, write_idx
from fedsim.errors import ConfigError, DataError


def _one_line_naming(err: pytest.ExceptionInfo, path) -> str:
    message = str(err.value)
    assert "\n" not in message
    assert str(path) in message or os.path.basename(str(path)) in message
    return message


def _batch(n: int = 4, labels=None) -> dict:
    rng = np.random.default_rng(0)
    return {
        b"batch_label": b"training batch 1 of 5",
        b"labels": list(range(n)) if labels is None else labels,
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }


def _dump(path, obj, protocol=None) -> None:
    with open(path, "wb") as handle:
        pickle.dump(obj, handle, protocol=protocol)


def test_data_error_is_a_config_error():
    assert issubclass(DataError, ConfigError) and issubclass(DataError, ValueError)


# ------------------------------------------------------------------ CIFAR: safe unpickling
@pytest.mark.parametrize("protocol", [2, 3, 4, pickle.HIGHEST_PROTOCOL, None])
def test_real_format_cifar_batch_loads_with_every_protocol(tmp_path, protocol):
    batch = _batch()
    _dump(tmp_path / "data_batch_1", batch, protocol)
    images, labels = read_cifar_batch(tmp_path / "data_batch_1")
    assert images.shape == (4, 3, 32, 32) and images.dtype == np.uint8
    assert np.array_equal(images.reshape(4, -1), batch[b"data"])
    assert labels.tolist() == [0, 1, 2, 3] and labels.dtype == np.int64


def test_cifar_batch_with_numpy_labels_and_str_keys_loads(tmp_path):
    batch = {"data": np.zeros((3, 3072), np.uint8), "labels": np.array([1, 2, 9], dtype=np.int64)}
    _dump(tmp_path / "b", batch, 2)
    _, labels = read_cifar_batch(tmp_path / "b")
    assert labels.tolist() == [1, 2, 9]


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _EvalExploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.mark.parametrize("exploit", [_Exploit, _EvalExploit])
@pytest.mark.parametrize("protocol", [2, None])
def test_crafted_cifar_pickle_does_not_run_code(tmp_path, exploit, protocol):
    marker = tmp_path / "marker"
    batch = _batch()
    batch[b"labels"] = exploit(marker)
    _dump(tmp_path / "data_batch_1", batch, protocol)
    with pytest.raises(DataError) as err:
        read_cifar_batch(tmp_path / "data_batch_1")
    message = _one_line_naming(err, tmp_path / "data_batch_1")
    assert "refusing" in message
    assert not marker.exists()


def test_crafted_pickle_in_a_cifar_folder_stops_the_source(tmp_path):
    marker = tmp_path / "marker"
    _dump(tmp_path / "data_batch_1", _Exploit(marker))
    with pytest.raises(ConfigError, match="data_batch_1"):
        Cifar10Source(str(tmp_path)).load()
    assert not marker.exists()


def test_cifar_refuses_arbitrary_numpy_and_builtin_globals(tmp_path):
    # A numpy global that is not needed to rebuild an array is refused too.
    class Loader:
        def __reduce__(self):
            return (np.load, ("/nonexistent.npy",))

    _dump(tmp_path / "b", {b"data": Loader(), b"labels": [0]}, 2)
    with pytest.raises(DataError, match="refusing"):
        read_cifar_batch(tmp_path / "b")


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"", "unreadable pickle"),
        (pickle.dumps(_batch())[:50], "unreadable pickle"),
        (pickle.dumps([1, 2, 3]), "list"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}), "labels"),
        (pickle.dumps(_batch(labels=[0, 1, 2])), "4 images but 3 labels"),
        (pickle.dumps(_batch(labels=[0, 1, 2, 10])), r"\[0, 10\)"),
        (pickle.dumps(_batch(labels=[0, 1, 2, -1])), r"\[0, 10\)"),
        (pickle.dumps(_batch(labels=[0.0, 1.0, 2.0, 3.0])), "integers"),
        (pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}), "3072"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}), "integer pixels"),
        (pickle.dumps({b"data": np.full((2, 3072), 300, np.int32), b"labels": [0, 1]}), "0..255"),
        (pickle.dumps({b"data": np.zeros((0, 3072), np.uint8), b"labels": []}), "non-empty"),
    ],
)
def test_malformed_cifar_batches_are_one_line_data_errors(tmp_path, content, fragment):
    (tmp_path / "data_batch_1").write_bytes(content)
    with pytest.raises(DataError, match=fragment) as err:
        read_cifar_batch(tmp_path / "data_batch_1")
    _one_line_naming(err, tmp_path / "data_batch_1")


def test_cifar_folder_in_place_of_a_batch(tmp_path):
    (tmp_path / "data_batch_1").mkdir()
    with pytest.raises(DataError, match="folder") as err:
        Cifar10Source(str(tmp_path)).load()
    _one_line_naming(err, tmp_path / "data_batch_1")


# ------------------------------------------------------------------ IDX files
def _idx_header(code: int, shape) -> bytes:
    return bytes([0, 0, code, len(shape)]) + b"".join(int(d).to_bytes(4, "big") for d in shape)


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"", "magic"),
        (b"\x00\x00", "magic"),
        (b"\x01\x00\x08\x01" + b"\x00\x00\x00\x01" + b"\x00", "magic"),
        (b"\x00\x00\x07\x01" + b"\x00\x00\x00\x01" + b"\x00", "magic"),  # unknown dtype code
        (b"\x00\x00\x08\x03" + b"\x00\x00\x00\x02", "header is truncated"),
        (b"\x00\x00\x08\x00", "dimensions"),
        (b"\x00\x00\x08\xff" + b"\x00" * 40, "dimensions"),
        (_idx_header(0x08, (5, 28, 28)) + b"\x00" * (5 * 28 * 28 - 1), "truncated"),
        (_idx_header(0x08, (5,)) + b"\x00" * 6, "truncated or corrupt"),
        (_idx_header(0x0C, (3,)) + b"\x00" * 10, "truncated"),  # not a whole number of int32s
        (_idx_header(0x08, (2**32 - 1, 2**32 - 1, 2**32 - 1)) + b"\x00", "truncated"),  # absurd shape
    ],
)
def test_corrupt_idx_files_are_one_line_data_errors(tmp_path, content, fragment):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(content)
    with pytest.raises(DataError, match=fragment) as err:
        read_idx(path)
    _one_line_naming(err, path)


def test_bad_gzip_and_truncated_gzip(tmp_path):
    bad = tmp_path / "a.gz"
    bad.write_bytes(b"this is not gzip at all")
    with pytest.raises(DataError, match="gzip") as err:
        read_idx(bad)
    _one_line_naming(err, bad)
    whole = gzip.compress(_idx_header(0x08, (100,)) + bytes(100))
    cut = tmp_path / "b.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match="gzip") as err:
        read_idx(cut)
    _one_line_naming(err, cut)


def test_gzip_content_without_gz_name_is_still_read(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(gzip.compress(_idx_header(0x08, (3,)) + bytes([1, 2, 3])))
    assert read_idx(path).tolist() == [1, 2, 3]


def test_idx_folder_in_place_of_a_file(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(DataError, match="folder"):
        read_idx(tmp_path / "x")


def _write_mnist_like(root, n_train=20, n_test=10, y_train=None, y_test=None):
    rng = np.random.default_rng(0)
    write_idx(root / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (n_train, 28, 28)))
    write_idx(root / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (n_test, 28, 28)))
    write_idx(root / "train-labels-idx1-ubyte.gz", np.arange(n_train) % 10 if y_train is None else y_train)
    write_idx(root / "t10k-labels-idx1-ubyte.gz", np.arange(n_test) % 10 if y_test is None else y_test)


def test_idx_source_image_label_count_mismatch(tmp_path):
    _write_mnist_like(tmp_path, y_train=np.arange(19) % 10)
    with pytest.raises(DataError, match="19 labels for the 20 images") as err:
        IdxSource("mnist", str(tmp_path)).load()
    _one_line_naming(err, tmp_path / "train-labels-idx1-ubyte.gz")


def test_idx_source_label_out_of_range_for_known_dataset(tmp_path):
    _write_mnist_like(tmp_path, y_train=np.full(20, 12))
    with pytest.raises(DataError, match=r"\[0, 10\)") as err:
        IdxSource("fmnist", str(tmp_path)).load()
    _one_line_naming(err, tmp_path / "train-labels-idx1-ubyte.gz")


def test_idx_source_test_label_unseen_in_training_when_class_count_unknown(tmp_path):
    _write_mnist_like(tmp_path, y_train=np.arange(20) % 3, y_test=np.array([0, 1, 2, 7] + [0] * 6))
    with pytest.raises(DataError, match="t10k-labels"):
        IdxSource("mydigits", str(tmp_path)).load()
    data = IdxSource("mydigits", str(tmp_path), num_classes=8).load()
    assert data.num_classes == 8


def test_idx_source_float_labels(tmp_path):
    _write_mnist_like(tmp_path)
    labels = np.arange(20, dtype=">f4") % 10
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(_idx_header(0x0D, (20,)) + labels.astype(">f4").tobytes())
    )
    with pytest.raises(DataError, match="integers") as err:
        IdxSource("mnist", str(tmp_path)).load()
    _one_line_naming(err, tmp_path / "train-labels-idx1-ubyte.gz")


def test_idx_source_wrong_image_rank_and_mismatched_shapes(tmp_path):
    _write_mnist_like(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((20, 784)))
    with pytest.raises(DataError, match="height, width"):
        IdxSource("mnist", str(tmp_path)).load()
    _write_mnist_like(tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((10, 14, 14)))
    with pytest.raises(DataError, match="test images"):
        IdxSource("mnist", str(tmp_path)).load()


def test_idx_source_folder_in_place_of_a_file(tmp_path):
    _write_mnist_like(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    (tmp_path / "t10k-images-idx3-ubyte.gz").mkdir()
    with pytest.raises(ConfigError, match="folder"):
        IdxSource("mnist", str(tmp_path)).load()


def test_good_idx_source_still_loads(tmp_path):
    _write_mnist_like(tmp_path)
    data = IdxSource("mnist", str(tmp_path)).load()
    assert data.num_classes == 10 and data.x_train.shape == (20, 1, 28, 28)
    assert data.y_train.dtype == np.int64
