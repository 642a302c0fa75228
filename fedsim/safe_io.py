"""Reading and writing files in folders fedsim does not own, safely: one helper for all.

A run folder or a folder given to ``fedsim-compare`` may come from anyone (a colleague's
results, a download, a shared disk). So, everywhere fedsim touches such a folder:

- **writes never follow a link**: files are opened with ``O_NOFOLLOW``, and temporaries of
  atomic writes are created with ``O_CREAT | O_EXCL`` (a link or file planted under the
  temporary's name is removed first, never written through); a special file (FIFO, device)
  in the place of a record is refused;
- **reads are bounded and plain**: only regular files that are not links, at most a set
  number of bytes, strict UTF-8 for text; a FIFO is refused without blocking on it.

Every refusal is an :class:`UnsafeFile` (a one-line :class:`~fedsim.errors.ConfigError`
naming the file), so the CLI reports it in one line with exit code 2.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import yaml

from fedsim.errors import ConfigError, first_line

MiB = 1024 * 1024
CONFIG_LIMIT = 1 * MiB
"""Largest ``config.yaml`` / ``summary.json`` / Hydra file fedsim reads from a folder."""
RECORDS_LIMIT = 256 * MiB
"""Largest ``metrics.jsonl`` / ``partition.json`` / ``sampler.jsonl`` fedsim reads from a folder."""


class UnsafeFile(ConfigError):
    """A file fedsim will not read or write as it is (a link, a special file, too large, not UTF-8)."""


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _blocking(fd: int) -> None:
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)


def _open_regular(path: Path, flags: int, mode: int = 0o644) -> int:
    """``os.open`` that follows no link and keeps only a regular file (a FIFO does not block it)."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as exc:
        if os.path.islink(path):
            raise UnsafeFile(f"{path} is a symbolic link; fedsim never reads or writes through one "
                             f"(remove the link)") from None
        raise UnsafeFile(f"{path}: {exc.strerror or exc}") from None
    kind = os.fstat(fd).st_mode
    if not stat.S_ISREG(kind):
        os.close(fd)
        raise UnsafeFile(f"{path} is {_kind(kind)}, not a file fedsim wrote; remove it")
    _blocking(fd)
    return fd


def open_write(path: str | Path, append: bool = False, binary: bool = False) -> IO[Any]:
    """Open ``path`` for writing (truncate, or ``append``) without following a link."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = _open_regular(Path(path), flags)
    return os.fdopen(fd, ("a" if append else "w") + ("b" if binary else ""),
                     **({} if binary else {"encoding": "utf-8", "newline": ""}))


def _remove_planted(path: Path) -> None:
    """Remove whatever stands at a temporary's name (unlinking a link never touches its target)."""
    try:
        kind = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(kind):
        raise UnsafeFile(f"{path} is a folder where fedsim writes a temporary file; remove it")
    os.unlink(path)


@contextlib.contextmanager
def atomic_writer(path: str | Path, binary: bool = False) -> Iterator[IO[Any]]:
    """Write ``path`` through a fresh temporary renamed over it: never half-written, never through a link.

    The rename replaces a link standing at ``path`` itself, not the file it points to.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    _remove_planted(tmp)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise UnsafeFile(f"{tmp}: {exc.strerror or exc}") from None
    handle = os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8", "newline": ""}))
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` atomically (see :func:`atomic_writer`)."""
    with atomic_writer(path) as handle:
        handle.write(text)


def open_read(path: str | Path) -> IO[bytes]:
    """A binary handle on a regular file that is not a link (for readers that bound themselves)."""
    return os.fdopen(_open_regular(Path(path), os.O_RDONLY), "rb")


def read_bytes(path: str | Path, limit: int) -> bytes:
    """The bytes of a regular file that is not a link, refused when larger than ``limit``."""
    path = Path(path)
    fd = _open_regular(path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > limit:
            raise UnsafeFile(f"{path} is {size / MiB:.1f} MiB, more than fedsim reads of such a file "
                             f"({limit / MiB:.0f} MiB); it is not a record fedsim wrote")
        data = handle.read(size + 1)  # read(n) allocates n bytes: ask for what fstat says is there
        if len(data) > size:  # grew while being read: at most up to the limit
            data += handle.read(limit + 1 - len(data))
    if len(data) > limit:
        raise UnsafeFile(f"{path} is larger than {limit / MiB:.0f} MiB; it is not a record fedsim wrote")
    return data


def read_text(path: str | Path, limit: int) -> str:
    """:func:`read_bytes` decoded as strict UTF-8."""
    data = read_bytes(path, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnsafeFile(f"{path} is not UTF-8 text (byte {exc.start}); it is not a record fedsim wrote") from None


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader without anchors and aliases (no "billion laughs")."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: D102 - PyYAML's hook
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "YAML aliases are not allowed in a fedsim file",
                                              event.start_mark)
        node = super().compose_node(parent, index)
        if getattr(node, "anchor", None):
            raise yaml.composer.ComposerError(None, None, "YAML anchors are not allowed in a fedsim file",
                                              node.start_mark)
        return node


def read_yaml(path: str | Path, limit: int = CONFIG_LIMIT) -> Any:
    """YAML data of a bounded plain file: safe types only, no anchors or aliases.

    fedsim writes its YAML files resolved and without aliases, so anything else is refused
    (:class:`UnsafeFile`). Interpolations (``${...}``) are checked by the caller that
    knows the file (:func:`fedsim.run_folders.saved_run`).
    """
    text = read_text(path, limit)
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UnsafeFile(f"{path}{line}: not a YAML file fedsim wrote ({reason})") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number fedsim writes")


def parse_json(text: str) -> Any:
    """JSON without the NaN / Infinity extensions (fedsim writes strict JSON)."""
    return json.loads(text, parse_constant=_no_constant)


def read_json(path: str | Path, limit: int = CONFIG_LIMIT) -> Any:
    """Strict JSON data of a bounded plain file (:class:`UnsafeFile` otherwise)."""
    text = read_text(path, limit)
    try:
        return parse_json(text)
    except ValueError as exc:
        raise UnsafeFile(f"{path}: not a JSON file fedsim wrote ({first_line(exc)})") from None
