"""The run-folder lock: one live writer per folder; stale locks of dead processes are taken over."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from fedsim.errors import ConfigError
from fedsim.results.run_lock import LOCK_NAME, RunLock

_HOLDER = """
import sys, time
from fedsim.results.run_lock import RunLock
lock = RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
sys.stdin.readline()  # hold until told (or killed)
if sys.argv[2] == "release":
    lock.release()
"""


def _start_holder(run_dir, mode="release"):
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(run_dir), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_lock_file_holds_pid_host_time_and_is_removed_on_exit(tmp_path):
    run_dir = tmp_path / "run"  # created if missing
    with RunLock(run_dir) as lock:
        info = json.loads((run_dir / LOCK_NAME).read_text())
        assert info["pid"] == os.getpid() and info["hostname"] == socket.gethostname()
        assert info["started"] and lock.held
        assert sorted(p.name for p in run_dir.iterdir()) == [LOCK_NAME]  # no private file left
    assert not (run_dir / LOCK_NAME).exists() and not lock.held
    with RunLock(run_dir):  # free again
        pass


def test_lock_is_released_when_the_block_raises(tmp_path):
    with pytest.raises(KeyError):
        with RunLock(tmp_path):
            raise KeyError("boom")
    assert not (tmp_path / LOCK_NAME).exists()


def test_second_writer_in_same_process_is_refused(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(ConfigError) as err:
            RunLock(tmp_path).acquire()
    message = str(err.value)
    assert message == (
        f"run folder {tmp_path} is in use by another fedsim process (pid {os.getpid()}); "
        "wait for it or choose another folder"
    )


def test_live_lock_of_another_process_is_refused_then_free_after_it_ends(tmp_path):
    proc = _start_holder(tmp_path)
    try:
        with pytest.raises(ConfigError, match=rf"in use by another fedsim process \(pid {proc.pid}\)"):
            RunLock(tmp_path).acquire()
        assert (tmp_path / LOCK_NAME).exists()  # a refused writer leaves the holder's file alone
    finally:
        proc.communicate("\n", timeout=30)
    assert proc.returncode == 0
    assert not (tmp_path / LOCK_NAME).exists()
    with RunLock(tmp_path):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()


def test_stale_lock_of_a_killed_process_is_taken_over(tmp_path):
    proc = _start_holder(tmp_path, mode="keep")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    stale = json.loads((tmp_path / LOCK_NAME).read_text())
    assert stale["pid"] == proc.pid  # the dead process left its lock file behind
    with RunLock(tmp_path):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
        with pytest.raises(ConfigError, match=rf"pid {os.getpid()}"):
            RunLock(tmp_path).acquire()
    assert not (tmp_path / LOCK_NAME).exists()


@pytest.mark.parametrize("content", ["", "not json", json.dumps({"pid": 999999999, "hostname": "x"})])
def test_leftover_lock_file_without_a_holder_is_taken_over(tmp_path, content):
    (tmp_path / LOCK_NAME).write_text(content)
    with RunLock(tmp_path) as lock:
        assert lock.holder()["pid"] == os.getpid()


def _contender(run_dir, barrier, results):
    barrier.wait()
    try:
        with RunLock(run_dir):
            results.put(("won", os.getpid()))
            time.sleep(2.0)
    except ConfigError as exc:
        results.put(("refused", str(exc)))


@pytest.mark.parametrize("stale", [False, True])
def test_concurrent_writers_exactly_one_wins(tmp_path, stale):
    if stale:
        (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": 999999999, "hostname": socket.gethostname()}))
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_contender, args=(tmp_path, barrier, results)) for _ in range(4)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert [kind for kind, _ in outcomes].count("won") == 1, outcomes
    assert all("in use by another fedsim process" in msg for kind, msg in outcomes if kind == "refused")
    assert not (tmp_path / LOCK_NAME).exists()


def test_acquire_twice_on_one_object_is_a_bug(tmp_path):
    lock = RunLock(tmp_path).acquire()
    try:
        with pytest.raises(RuntimeError):
            lock.acquire()
    finally:
        lock.release()
    lock.release()  # idempotent
