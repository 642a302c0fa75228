"""Readers for the on-disk formats of MNIST-like (IDX) and CIFAR-10 (python pickle) data.

Only the standard file formats are read; nothing is ever downloaded. Every problem with
a file (a folder in its place, bad gzip, bad magic, truncated header or data, a shape the
format cannot hold, a CIFAR pickle that asks for anything but plain data) is a one-line
:class:`~fedsim.errors.DataError` naming the file, which the CLI reports as a setting
error (exit 2).

CIFAR batches are pickles, and a pickle can run code when loaded. They are read with a
restricted unpickler that builds only dicts, lists, tuples, bytes, strings, numbers and
numpy arrays (exactly the globals numpy needs to rebuild an array); anything else is
refused before it is imported, so a crafted ``data_batch`` file cannot run code.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import stat
import zlib
from pathlib import Path

import numpy as np

from fedsim.errors import DataError

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_MAX_IDX_NDIM = 4  # the datasets read here have 1 (labels) or 3 (images) dimensions
_GZIP_MAGIC = b"\x1f\x8b"
IDX_LIMIT = 4 * 2**30
"""Most data bytes an IDX header may declare (MNIST's largest file holds 47 MB)."""
CIFAR_LIMIT = 512 * 2**20
"""Most bytes a CIFAR-10 batch may hold, inflated (a real batch holds about 31 MB)."""

# The globals a CIFAR batch pickle needs: numpy's array reconstruction (numpy 1.x and 2.x
# module names; _frombuffer for protocol 5, scalar for numpy scalars) and, for protocol 2
# pickles written by Python 3, ``_codecs.encode`` (how protocol 2 stores bytes).
_CIFAR_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),
    }
)
_CIFAR_PIXELS = 3 * 32 * 32


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line (or its type name when it has none)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _open_data(path: Path) -> io.BufferedIOBase:
    """A binary stream of the file's content, gunzipped on the fly when it is gzip (by name or content).

    Only a regular file is opened (a FIFO or device in its place would block or never end),
    so the caller can stop reading at the size a header declares: a small file that inflates
    to gigabytes is never inflated beyond that.
    """
    if path.is_dir():
        raise DataError(f"{path} is a folder, expected a data file")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc.strerror or _one_line(exc)})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise DataError(f"{path} is not a regular file (a FIFO or device); expected a data file")
    handle = os.fdopen(fd, "rb")
    if path.suffix == ".gz" or handle.peek(2)[:2] == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=handle, mode="rb")  # type: ignore[return-value]
    return handle


def _read_at_most(path: Path, stream: io.BufferedIOBase, count: int) -> bytes:
    """Up to ``count`` bytes of the stream (fewer at its end); a gzip error is a one-line DataError."""
    chunks, left = [], count
    try:
        while left > 0:  # in chunks: one read(count) would allocate ``count`` bytes up front
            chunk = stream.read(min(left, 2**24))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: not a valid gzip file, corrupt or truncated ({_one_line(exc)})") from None


def _read_file(path: Path) -> bytes:
    """The file's whole content, gunzipped when it is gzip (CIFAR batches: bounded by :data:`CIFAR_LIMIT`)."""
    with _open_data(path) as stream:
        raw = _read_at_most(path, stream, CIFAR_LIMIT + 1)
    if len(raw) > CIFAR_LIMIT:
        raise DataError(f"{path}: holds more than {CIFAR_LIMIT // 2**20} MiB, more than a CIFAR-10 batch")
    return raw


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a numpy array.

    The IDX header is two zero bytes, a dtype code, the number of dimensions, then one
    big-endian uint32 per dimension; the data must fill exactly the declared shape.
    """
    path = Path(path)
    with _open_data(path) as stream:
        head = _read_at_most(path, stream, 4)
        if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _IDX_DTYPES:
            raise DataError(f"{path} is not an IDX file (bad magic number)")
        ndim = head[3]
        if not 1 <= ndim <= _MAX_IDX_NDIM:
            raise DataError(f"{path}: IDX header declares {ndim} dimensions, expected 1 to {_MAX_IDX_NDIM}")
        dims = _read_at_most(path, stream, 4 * ndim)
        if len(dims) < 4 * ndim:
            raise DataError(f"{path}: IDX header is truncated ({4 + len(dims)} bytes, needs {4 + 4 * ndim})")
        shape = tuple(int.from_bytes(dims[4 * i : 4 * i + 4], "big") for i in range(ndim))
        dtype = np.dtype(_IDX_DTYPES[head[2]])
        expected = 1
        for size in shape:
            expected *= size  # Python ints: an absurd header cannot overflow
        expected *= dtype.itemsize
        if expected > IDX_LIMIT:
            raise DataError(f"{path}: IDX header says shape {shape} ({expected} data bytes), more than any data "
                            f"set fedsim reads ({IDX_LIMIT // 2**30} GiB): a truncated or corrupt header")
        data = _read_at_most(path, stream, expected + 1)  # never inflates past what the header declares
    if len(data) != expected:
        held = f"{len(data)}" if len(data) < expected else "more"
        raise DataError(
            f"{path}: IDX header says shape {shape} ({expected} data bytes) but the file holds "
            f"{held} (truncated or corrupt)"
        )
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (gzip if the name ends in .gz); used by tests."""
    path = Path(path)
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as handle:
        handle.write(header + array.tobytes())


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles plain data and numpy arrays only; any other global is refused."""

    def __init__(self, file: io.BufferedIOBase, path: Path) -> None:
        super().__init__(file, encoding="bytes")
        self._path = path

    def find_class(self, module: str, name: str):  # noqa: D102 - see class docstring
        if (module, name) not in _CIFAR_GLOBALS:
            raise DataError(
                f"{self._path}: refusing to load '{module}.{name}' from a CIFAR batch (it may run "
                "code; a CIFAR-10 batch holds only arrays, lists and strings): not a genuine batch file"
            )
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            module = "numpy._core." + module[len("numpy.core.") :]  # numpy 2: no deprecation shim
        return super().find_class(module, name)

    def persistent_load(self, pid):  # noqa: D102 - persistent ids are never plain data
        raise DataError(f"{self._path}: refusing a persistent object in a CIFAR batch: not a genuine batch file")


def _entry(batch: dict, key: str):
    """``batch[key]`` under a bytes (Python 2 pickle) or str key; None when absent."""
    for candidate in (key.encode(), key):
        if candidate in batch:
            return batch[candidate]
    return None


def read_cifar_batch(path: str | Path, num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 python batch file: images (n, 3, 32, 32) uint8 and labels (n,).

    The file is loaded with a restricted unpickler (plain data and numpy arrays only), and
    checked: a dict with ``data`` (n x 3072 integer pixels in 0..255) and ``labels`` (n
    integers in ``[0, num_classes)``). Anything else is a one-line :class:`DataError`.
    """
    path = Path(path)
    raw = _read_file(path)
    try:
        batch = _CifarUnpickler(io.BytesIO(raw), path).load()
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of a corrupt pickle is a data error
        raise DataError(f"{path}: not a CIFAR-10 python batch (unreadable pickle: {_one_line(exc)})") from None
    if not isinstance(batch, dict):
        raise DataError(f"{path}: not a CIFAR-10 python batch (holds a {type(batch).__name__}, expected a dict)")
    data, labels = _entry(batch, "data"), _entry(batch, "labels")
    if data is None or labels is None:
        raise DataError(f"{path}: not a CIFAR-10 python batch (needs the keys 'data' and 'labels')")
    if not isinstance(data, np.ndarray):
        raise DataError(f"{path}: CIFAR-10 'data' must be an array of pixels, got a {type(data).__name__}")
    if isinstance(labels, (list, tuple)):  # the format's flat list of ints; nested lists could share
        labels = _flat_ints(labels, path)  # references and expand to gigabytes in np.asarray
    try:
        data = np.asarray(data)
        labels = np.asarray(labels)
    except Exception as exc:  # noqa: BLE001 - ragged lists and the like
        raise DataError(f"{path}: malformed CIFAR-10 batch ({_one_line(exc)})") from None
    if data.dtype.kind not in "ui" or data.size == 0:
        raise DataError(f"{path}: CIFAR-10 'data' must be non-empty integer pixels, got dtype {data.dtype}")
    if data.shape[1:] not in ((_CIFAR_PIXELS,), (3, 32, 32)):
        raise DataError(f"{path}: CIFAR-10 'data' has shape {data.shape}, expected (n, 3072)")
    if data.min() < 0 or data.max() > 255:
        raise DataError(f"{path}: CIFAR-10 pixels must lie in 0..255, got {data.min()}..{data.max()}")
    data = data.astype(np.uint8).reshape(-1, 3, 32, 32)
    labels = check_labels(labels, path, num_classes, "labels")
    if len(labels) != len(data):
        raise DataError(f"{path}: {len(data)} images but {len(labels)} labels")
    return data, labels


def _flat_ints(values: list | tuple, path: Path) -> list:
    """``values`` if it is a flat list of integers (CIFAR labels), else a one-line DataError."""
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            kind = "nested lists" if isinstance(value, (list, tuple, dict)) else type(value).__name__
            if kind == "float":
                return list(values)  # check_labels names it: labels must be integers
            raise DataError(f"{path}: CIFAR-10 'labels' must be a flat list of integers, found {kind} "
                            f"(not a CIFAR-10 batch)")
    return list(values)


def check_labels(labels: np.ndarray, where: str | Path, num_classes: int | None, what: str = "labels") -> np.ndarray:
    """Labels as int64 after checking they are 1-D integers in ``[0, num_classes)``.

    ``num_classes`` None only requires them to be non-negative. ``where`` names the file
    in the one-line :class:`DataError`.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise DataError(f"{where}: {what} must be one-dimensional, got shape {labels.shape}")
    if labels.dtype.kind not in "ui":
        raise DataError(f"{where}: {what} must be integers, got dtype {labels.dtype}")
    if labels.size:
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or (num_classes is not None and high >= num_classes):
            bound = f"[0, {num_classes})" if num_classes is not None else "non-negative"
            raise DataError(f"{where}: {what} must lie in {bound}, found {low}..{high}")
    return labels.astype(np.int64)
