"""An exclusive lock on a run folder, held for the whole run.

Two fedsim processes writing the same run folder (the same ``hydra.run.dir``, or two
``resume=`` of one run) would interleave their records and checkpoints. :class:`RunLock`
makes the second one stop at once with a one-line :class:`~fedsim.errors.ConfigError`::

    with RunLock(run_dir):
        run_experiment(...)

The lock is the file ``run_dir/.fedsim.lock`` holding the holder's pid, hostname and
start time (JSON), and an ``fcntl.flock`` on it held while the run lasts. The kernel drops
a flock when its holder dies, however it dies (crash, SIGKILL, OOM), so a lock file whose
flock can be taken is stale: it is taken over in place (the same file, rewritten with the
new holder, flock kept) without ever leaving the folder unlocked. A new lock file is
prepared and flocked under a private name first and then hard-linked into place, so a
lock file is never visible without its flock (no window in which another process could
take a just-created lock for stale). Where the filesystem has no hard links the file is
created directly with ``O_CREAT | O_EXCL``; where it has no flock (some network mounts),
staleness falls back to "same host and the pid is gone".

Leaving the ``with`` block removes the lock file. Processes forked while the lock is held
inherit the flock; it is released when the last of them exits.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import stat
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from fedsim.errors import ConfigError
from fedsim.safe_io import read_text

LOCK_NAME = ".fedsim.lock"
_ATTEMPTS = 20


def _pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """Exclusive lock on ``run_dir`` (a context manager; see the module docstring).

    ``ConfigError`` on entry when another live fedsim process holds the folder; ``kind`` names
    the folder in that message (a study script locks its study folder the same way).
    """

    def __init__(self, run_dir: str | os.PathLike[str], kind: str = "run folder") -> None:
        self.run_dir = Path(run_dir)
        self.kind = kind
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None

    # ------------------------------------------------------------------ public
    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the lock, taking over a stale one; ConfigError if a live process holds it."""
        if self._fd is not None:
            raise RuntimeError(f"RunLock on {self.run_dir} is already held by this object")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(_ATTEMPTS):
            fd = self._create()
            if fd is None:
                fd = self._take_over_if_stale()
            if fd is not None:
                self._fd = fd
                return self
            time.sleep(0.01)  # the file vanished or changed under us: look again
        raise ConfigError(f"{self.kind} {self.run_dir}: could not take its lock {self.path}; try again")

    def release(self) -> None:
        """Remove the lock file (if it is still ours) and drop the flock."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self._same_file(fd):
                os.unlink(self.path)  # unlink first, then drop the flock: see _take_over_if_stale
        except OSError:
            pass
        finally:
            os.close(fd)

    def holder(self) -> dict[str, Any]:
        """What the lock file says about its holder (empty if unreadable)."""
        try:
            info = json.loads(read_text(self.path, 4096))
        except (OSError, ValueError):  # UnsafeFile (a link, a FIFO, ...) is a ValueError too
            return {}
        return info if isinstance(info, dict) else {}

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    # ---------------------------------------------------------------- internals
    def _info(self) -> bytes:
        return json.dumps(
            {
                "pid": os.getpid(),
                "hostname": socket.gethostname(),
                "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
        ).encode()

    def _write_info(self, fd: int) -> None:
        os.ftruncate(fd, 0)
        os.pwrite(fd, self._info(), 0)
        os.fsync(fd)

    def _create(self) -> int | None:
        """A new, flocked lock file at ``self.path``; None if one exists already."""
        private = self.run_dir / f"{LOCK_NAME}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        fd = os.open(private, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
        try:
            _flock(fd)  # a brand-new private file: nobody else can hold it
            self._write_info(fd)
            try:
                os.link(private, self.path)
            except FileExistsError:
                os.close(fd)
                return None
            except OSError as exc:  # no hard links here: create the lock file directly
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                    raise
                os.close(fd)
                return self._create_direct()
            return fd
        except BaseException:
            _close_quietly(fd)
            raise
        finally:
            try:
                os.unlink(private)
            except OSError:
                pass

    def _create_direct(self) -> int | None:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
        except FileExistsError:
            return None
        _flock(fd)
        self._write_info(fd)
        return fd

    def _take_over_if_stale(self) -> int | None:
        """The existing lock file, flocked and rewritten, if its holder is gone.

        ConfigError if a live process holds it; None if it changed under us (retry).
        """
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK)
        except (FileNotFoundError, IsADirectoryError):
            return None
        except OSError as exc:  # a link (ELOOP) or a FIFO without reader (ENXIO): not a lock fedsim made
            raise ConfigError(f"{self.path} is not a lock file fedsim wrote ({exc.strerror}); remove it") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ConfigError(f"{self.path} is not a regular file, so not a lock fedsim wrote; remove it")
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise self._in_use() from None
            except OSError as exc:  # no flock on this filesystem: judge by the pid
                if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL):
                    raise
                info = self.holder()
                same_host = info.get("hostname") == socket.gethostname()
                if not same_host or _pid_alive(int(info.get("pid", -1))):
                    raise self._in_use() from None
            # A holder releasing its lock unlinks the file before dropping the flock, so a
            # flock on a file that is still at self.path means the holder died: adopt it.
            if not self._same_file(fd):
                os.close(fd)
                return None
            self._write_info(fd)
            return fd
        except BaseException:
            _close_quietly(fd)
            raise

    def _same_file(self, fd: int) -> bool:
        try:
            here = os.stat(self.path)
        except OSError:
            return False
        mine = os.fstat(fd)
        return (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)

    def _in_use(self) -> ConfigError:
        info = self.holder()
        pid = info.get("pid", "unknown")
        host = info.get("hostname")
        where = f" on {host}" if host and host != socket.gethostname() else ""
        return ConfigError(
            f"{self.kind} {self.run_dir} is in use by another fedsim process (pid {pid}{where}); "
            "wait for it or choose another folder"
        )


def _flock(fd: int) -> None:
    """flock a file nobody else can have open yet; tolerate filesystems without flock."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL):
            raise


__all__ = ["LOCK_NAME", "RunLock"]


def _close_quietly(fd: int) -> None:
    """Close a file descriptor while another error is on its way out."""
    with contextlib.suppress(OSError):
        os.close(fd)
