"""Hostile input, second round: run folders and compare folders as an attacker would plant them.

Each case was a failure before its fix (a secret sent out, a write outside the folder, a
traceback, a hang or an allocation until killed; issues "Hostile input, second round" parts 1
and 2). Now each is one line (exit 2, or 4 for a run that trained nothing, 130 for Ctrl-C),
nothing outside the folder is written, and files already there are kept. Runs are on the
synthetic dataset, a few rounds; ``experiments/reliability_table.py`` counts these cases too.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest
import yaml

from fedsim.compare import main as compare_main
from fedsim.config import compose_config
from fedsim.errors import ConfigError
from fedsim.experiment import build_experiment, run_experiment
from fedsim.results.checkpoint import load_checkpoint
from fedsim.run_folders import plan_run
from fedsim.safe_io import UnsafeFile, read_text

BASE = ["dataset=synthetic", "num_clients=6", "clients_per_round=3", "progress=false", "train.epochs=1"]
RUN = BASE + ["num_rounds=3", "checkpoint_every=1"]


def fedsim(*args: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fedsim.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def last_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, result
    return lines[-1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A finished 3-round run, and the same run unfinished after round 2 (checkpoint of round 2)."""
    root = tmp_path_factory.mktemp("runs")
    finished = root / "finished"
    run_experiment(build_experiment(compose_config(RUN)), finished)
    unfinished = root / "unfinished"
    done = fedsim(*RUN, "crash_after_round=2", f"hydra.run.dir={unfinished}")
    assert done.returncode != 0 and load_checkpoint(unfinished).server_round == 2
    return {"finished": finished, "unfinished": unfinished}


def copy(runs: dict[str, Path], which: str, dest: Path) -> Path:
    shutil.copytree(runs[which], dest)
    return dest


def edit_config(folder: Path, edit) -> None:
    plain = yaml.safe_load((folder / "config.yaml").read_text())
    edit(plain)
    (folder / "config.yaml").write_text(yaml.safe_dump(plain))


# ------------------------------------------------------------------ resume: secrets and outside writes
def test_resume_does_not_resolve_the_environment_or_send_it_anywhere(runs, tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.2)
    port, contacted, done = listener.getsockname()[1], [], threading.Event()

    def accept() -> None:
        while not done.is_set():
            try:
                contacted.append(listener.accept()[0].recv(4096))
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    folder = copy(runs, "unfinished", tmp_path / "run")
    edit_config(folder, lambda c: c.setdefault("hooks", {}).update(mlflow={
        "_target_": "fedsim.tracking.MlflowTracker", "tracking_uri": f"http://127.0.0.1:{port}",
        "experiment_name": "${oc.env:FEDSIM_TEST_SECRET}"}))
    result = fedsim(f"resume={folder}", env={"FEDSIM_TEST_SECRET": "hunter2"})
    done.set()
    thread.join()
    listener.close()
    assert result.returncode == 2 and "an interpolation" in last_line(result)
    assert contacted == [] and "hunter2" not in result.stderr


def test_a_resumed_run_takes_no_hooks_from_its_folder(runs, tmp_path):
    folder, outside = copy(runs, "unfinished", tmp_path / "run"), tmp_path / "outside"
    edit_config(folder, lambda c: c.setdefault("hooks", {}).update(tensorboard={
        "_target_": "fedsim.tracking.TensorBoardTracker", "subdir": str(outside)}))
    result = fedsim(f"resume={folder}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert not outside.exists() and not (folder / "tensorboard").exists()


def test_a_tensorboard_folder_outside_the_run_folder_is_refused(tmp_path):
    result = fedsim(*BASE, "num_rounds=1", "tracking=tensorboard", f"hooks.tensorboard.subdir={tmp_path / 'out'}",
                    f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2 and "must be a folder inside the run folder" in last_line(result)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ resume: hostile files
def test_a_yaml_alias_bomb_is_refused_at_once(runs, tmp_path):
    folder = copy(runs, "unfinished", tmp_path / "run")
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(20))
    (folder / "config.yaml").write_text(bomb)
    started = time.monotonic()
    result = fedsim(f"resume={folder}")
    assert result.returncode == 2 and "aliases are not allowed" in last_line(result)
    assert time.monotonic() - started < 60


@pytest.mark.parametrize("content, fragment", [
    ("not json", "not a JSON file"),
    ("[1, 2, 3]", "not the partition"),
    ('{"num_clients": 6, "client_indices": [[-1]]}', "not the partition"),
])
def test_a_partition_file_that_is_not_the_runs_partition_is_refused(runs, tmp_path, content, fragment):
    folder = copy(runs, "unfinished", tmp_path / "run")
    (folder / "partition.json").write_text(content)
    before = (folder / "metrics.jsonl").read_bytes()
    with pytest.raises(ConfigError, match=fragment):
        resume_in_process(folder, tmp_path)
    assert (folder / "metrics.jsonl").read_bytes() == before


@pytest.mark.parametrize("line, fragment", [
    (b'\xff\xfe{"round": 1}', "not UTF-8"),
    (b'{"round": "two"}', "not a whole number"),
    (b'{"round": null}', "not a whole number"),
    (b'{"round": 1, "accuracy": NaN}', "not strict JSON"),
    (b'{"round": 1000000000000}', "not between"),
    (b'{"round": 1, "accuracy": 7}', "not a number in [0, 1]"),
])
def test_hostile_metrics_lines_are_refused_naming_the_line(runs, tmp_path, line, fragment):
    folder = copy(runs, "unfinished", tmp_path / "run")
    rows = (folder / "metrics.jsonl").read_bytes().splitlines(keepends=True)
    (folder / "metrics.jsonl").write_bytes(line + b"\n" + b"".join(rows[1:]))
    with pytest.raises(ConfigError, match="line 1|not UTF-8") as err:
        resume_in_process(folder, tmp_path)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def resume_in_process(folder: Path, log_dir: Path):
    overrides = [f"resume={folder}"]
    plan = plan_run(compose_config(overrides), log_dir, overrides)
    run_dir, cfg, resume = plan
    return run_experiment(build_experiment(cfg), run_dir, resume=resume)


@pytest.mark.parametrize("name", ["metrics.jsonl", "checkpoint.npz", ".fedsim.lock"])
def test_a_fifo_in_a_run_folder_is_refused_without_hanging(runs, tmp_path, name):
    folder = copy(runs, "unfinished", tmp_path / "run")
    (folder / name).unlink(missing_ok=True)
    os.mkfifo(folder / name)
    result = fedsim(f"resume={folder}", timeout=90)
    assert result.returncode == 2 and ("FIFO" in last_line(result) or "not a regular file" in last_line(result)
                                       or "not a lock file" in last_line(result)), result.stderr[-1500:]


def test_record_files_that_are_links_are_refused_and_their_targets_untouched(runs, tmp_path):
    folder, outside = copy(runs, "unfinished", tmp_path / "run"), tmp_path / "outside.jsonl"
    shutil.move(folder / "metrics.jsonl", outside)
    before = outside.read_bytes()
    (folder / "metrics.jsonl").symlink_to(outside)
    result = fedsim(f"resume={folder}")
    assert result.returncode == 2 and "symbolic link" in last_line(result)
    assert outside.read_bytes() == before


def test_a_checkpoint_with_an_entry_fedsim_does_not_write_is_refused_before_inflating(runs, tmp_path):
    folder = copy(runs, "unfinished", tmp_path / "run")
    with zipfile.ZipFile(folder / "checkpoint.npz", "a") as archive:
        archive.writestr("evil.npy", b"x" * 10)
    with pytest.raises(ConfigError, match="holds evil.npy, which fedsim does not write"):
        load_checkpoint(folder)


def test_a_checkpoint_declaring_a_huge_entry_is_refused_before_inflating(runs, tmp_path):
    folder = copy(runs, "unfinished", tmp_path / "run")
    chunk = bytes(64 * 1024 * 1024)
    with zipfile.ZipFile(folder / "checkpoint.npz", "a", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("sampler/huge.npy", "w", force_zip64=True) as entry:
            for _ in range(17):  # 1.06 GiB inflated, a few MiB on disk
                entry.write(chunk)
    assert (folder / "checkpoint.npz").stat().st_size < 50 * 1024 * 1024
    with pytest.raises(ConfigError, match="would inflate to 1.1 GiB"):
        load_checkpoint(folder)


# ------------------------------------------------------------------ writes never follow links
@pytest.mark.parametrize("name", [".fedsim.lock", "config.yaml.tmp", "summary.json.tmp", "checkpoint.npz.tmp",
                                  "partition.json.tmp", "learning_curve.png.tmp"])
def test_a_fresh_run_never_writes_through_a_planted_link(tmp_path, name):
    folder, outside = tmp_path / "run", tmp_path / "outside.txt"
    folder.mkdir()
    outside.write_text("the user's file\n")
    (folder / name).symlink_to(outside)
    result = fedsim(*BASE, "num_rounds=2", "checkpoint_every=1", f"hydra.run.dir={folder}")
    assert outside.read_text() == "the user's file\n"
    if name == ".fedsim.lock":
        assert result.returncode == 2 and "not a lock file fedsim wrote" in last_line(result)
    else:
        assert result.returncode == 0, result.stderr[-1500:]
        assert not os.path.lexists(folder / name)  # the planted link was removed, not followed


@pytest.mark.parametrize("name", ["fedsim.log", "learning_curve.png", "metrics.jsonl"])
def test_a_fresh_run_into_a_folder_with_links_or_user_files_by_fedsims_names_is_refused(tmp_path, name):
    folder, outside = tmp_path / "run", tmp_path / "outside"
    folder.mkdir()
    (folder / name).symlink_to(outside)  # dangling: writing through it would create the outside file
    result = fedsim(*BASE, "num_rounds=1", f"hydra.run.dir={folder}")
    assert result.returncode == 2 and not os.path.lexists(outside)
    (folder / name).unlink()
    (folder / name).write_bytes(b"the user's own file")
    result = fedsim(*BASE, "num_rounds=1", f"hydra.run.dir={folder}")
    assert result.returncode == 2 and (folder / name).read_bytes() == b"the user's own file"


def test_safe_reads_refuse_links_and_oversized_files(tmp_path):
    (tmp_path / "big").write_bytes(b"x" * 2048)
    with pytest.raises(UnsafeFile, match="more than fedsim reads"):
        read_text(tmp_path / "big", 1024)
    (tmp_path / "link").symlink_to(tmp_path / "big")
    with pytest.raises(UnsafeFile, match="symbolic link"):
        read_text(tmp_path / "link", 4096)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(UnsafeFile, match="is a FIFO"):
        read_text(tmp_path / "fifo", 4096)


# ------------------------------------------------------------------ fedsim-compare
def write_run(root: Path, name: str, lines: list[str], *, config: str | None = None, summary: str | None = "{}"):
    run = root / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(config if config is not None else yaml.safe_dump(
        {"sampler": {"_target_": "fedsim.selection.random.RandomSampler"}, "seed": int(name[-1]),
         "num_rounds": 2, "num_clients": 4, "clients_per_round": 2}))
    (run / "metrics.jsonl").write_text("".join(line + "\n" for line in lines))
    if summary is not None:
        (run / "summary.json").write_text(summary)
    return run


GOOD = ['{"round": 1, "accuracy": 0.5, "selected": [0, 1]}', '{"round": 2, "accuracy": 0.6, "selected": [2, 3]}']
BAD_COMPARE = [
    (['{"accuracy": 0.5}'], None, "{}", "metrics.jsonl: line 1: round is None"),
    (["{}"], None, "{}", "line 1: round is None"),
    (['{"round": null}'], None, "{}", "line 1: round is None"),
    (['{"round": 1000000000000, "accuracy": 0.5}'], None, "{}", "round 1000000000000 is not between 1 and"),
    (['{"round": 1, "accuracy": 1.5}'], None, "{}", "accuracy 1.5 is not a number in [0, 1]"),
    (['{"round": 1, "accuracy": NaN}'], None, "{}", "not strict JSON"),
    (['{"round": 1, "accuracy": 0.5, "selected": "garbage"}'], None, "{}", "selected is not a list"),
    (GOOD, None, "[1, 2]", "summary.json: holds list"),
    (GOOD, "{not: [yaml", "{}", "config.yaml"),
    (GOOD, "sampler: 3\nnum_rounds: 2\n", "{}", "sampler is 3, not a sampler config"),
]


@pytest.mark.parametrize("lines, config, summary, fragment", BAD_COMPARE)
def test_compare_skips_a_bad_run_folder_in_one_line_naming_the_file(tmp_path, capsys, lines, config, summary,
                                                                    fragment):
    write_run(tmp_path / "study", "good_seed0", GOOD)
    write_run(tmp_path / "study", "bad_seed1", lines, config=config, summary=summary)
    assert compare_main([str(tmp_path / "study"), "--no-plots"]) == 0
    err = capsys.readouterr().err
    skipped = [line for line in err.splitlines() if "skipped a run folder" in line]
    assert len(skipped) == 1 and fragment in skipped[0] and "bad_seed1" in skipped[0]
    assert fragment in (tmp_path / "study" / "comparison.md").read_text().split("## Unreadable run folders")[1]
    assert compare_main([str(tmp_path / "study"), "--no-plots", "--strict"]) == 2
    assert fragment in capsys.readouterr().err


def test_compare_does_not_hang_on_a_fifo(tmp_path, capsys):
    write_run(tmp_path / "study", "good_seed0", GOOD)
    run = write_run(tmp_path / "study", "fifo_seed1", GOOD)
    (run / "metrics.jsonl").unlink()
    os.mkfifo(run / "metrics.jsonl")
    assert compare_main([str(tmp_path / "study"), "--no-plots"]) == 0
    assert "is a FIFO" in capsys.readouterr().err


def test_compare_output_paths_that_are_files_are_refused(tmp_path, capsys):
    write_run(tmp_path / "study", "good_seed0", GOOD)
    (tmp_path / "report.txt").write_text("mine")
    assert compare_main([str(tmp_path / "study"), "--out", str(tmp_path / "report.txt")]) == 2
    assert compare_main([str(tmp_path / "study"), "--out", str(tmp_path / "report.txt" / "below")]) == 2
    assert compare_main([str(tmp_path / "report.txt")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(line.startswith("fedsim-compare: ") for line in err)
    assert (tmp_path / "report.txt").read_text() == "mine"


def test_compare_replaces_a_planted_link_instead_of_writing_through_it(tmp_path):
    write_run(tmp_path / "study", "good_seed0", GOOD)
    out, outside = tmp_path / "out", tmp_path / "outside.md"
    out.mkdir()
    outside.write_text("the user's file")
    (out / "comparison.md").symlink_to(outside)
    assert compare_main([str(tmp_path / "study"), "--out", str(out), "--no-plots"]) == 0
    assert outside.read_text() == "the user's file" and not (out / "comparison.md").is_symlink()


# ------------------------------------------------------------------ config values and exit codes
@pytest.mark.parametrize("args, fragment", [
    (["dataset.num_train=10000000000"], "needs about"),
    (["sampler=hics", "hics.lam=1e308"], "hics.lam=1e+308: must be <= 1e+150"),
    (["sampler=hics", "hics.temperature=1e-300"], "hics.temperature=1e-300: must be >= 1e-269"),
    (["sampler=hics", "hics.gamma0=1e308"], "hics.gamma0=1e+308: must be <= 700"),
])
def test_values_past_what_fits_are_refused_before_allocating(tmp_path, args, fragment):
    result = fedsim(*BASE, "num_rounds=1", *args, f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2 and fragment in last_line(result)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


@pytest.mark.parametrize("args", [["train.lr=1e308"], ["train.weight_decay=1e308"],
                                  ["faults=unreliable", "faults.client_failure_prob=1.0"]])
def test_a_run_that_trains_nothing_exits_4(tmp_path, args):
    result = fedsim(*BASE, "num_rounds=2", *args, f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 4, result.stderr[-1500:]
    assert "no round produced a usable client update" in last_line(result)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["rounds_trained"] == 0


@pytest.mark.parametrize("where", ["tensorboard-file", "csv-folder"])
def test_tracking_targets_that_cannot_be_written_are_refused_before_training(tmp_path, where):
    folder = tmp_path / "run"
    folder.mkdir()
    if where == "tensorboard-file":
        (folder / "tensorboard").write_text("a file")
        args = ["tracking=tensorboard"]
    else:
        (folder / "metrics.csv").mkdir()
        args = ["tracking=csv"]
    result = fedsim(*BASE, "num_rounds=1", *args, f"hydra.run.dir={folder}")
    assert result.returncode == 2, result.stderr[-1500:]
    assert not (folder / "metrics.jsonl").exists() or not (folder / "metrics.jsonl").read_text()


def as_from_a_terminal() -> None:
    """In the child before exec: SIGINT unblocked and at its default, as a shell gives it.

    A blocked or ignored signal stays so across fork and exec, and the test process may have
    either from an earlier test (the full suite's Ctrl-C case hung where it passed alone).
    """
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_is_one_line_and_exit_130(tmp_path):
    folder, err_file = tmp_path / "run", tmp_path / "stderr.txt"
    with err_file.open("w") as err:  # a file, not a pipe: a full pipe would block the run
        proc = subprocess.Popen([sys.executable, "-m", "fedsim.cli", *BASE, "num_rounds=100000",
                                 f"hydra.run.dir={folder}"], stdout=subprocess.DEVNULL, stderr=err,
                                preexec_fn=as_from_a_terminal)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None and not (
                (folder / "metrics.jsonl").exists() and (folder / "metrics.jsonl").read_text().count("\n") >= 2):
            time.sleep(0.2)
        assert proc.poll() is None, err_file.read_text()[-2000:]
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=120)
        finally:
            proc.kill()
    assert proc.returncode == 130, (err_file.read_text()[-2000:], signal.pthread_sigmask(signal.SIG_BLOCK, set()),
                                    signal.getsignal(signal.SIGINT))
    assert [line for line in err_file.read_text().splitlines() if line.strip()] == [
        "fedsim: interrupted; the records of every finished round are kept: rerun the same command to resume"]


# ------------------------------------------------------------------ dataset files
def peak_bytes_of_refusal(read, fragment: str) -> int:
    """Python's peak allocation while ``read()`` refuses its input with ``fragment``."""
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(Exception, match=fragment):
            read()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_an_idx_gzip_whose_content_outgrows_its_header_is_not_inflated_past_it(tmp_path):
    import gzip

    from fedsim.data.idx import read_idx

    path = tmp_path / "train-labels-idx1-ubyte.gz"
    with gzip.open(path, "wb", compresslevel=1) as handle:
        handle.write(bytes([0, 0, 0x08, 1]) + (20).to_bytes(4, "big") + bytes(20))
        for _ in range(16):
            handle.write(bytes(16 * 1024 * 1024))  # 256 MiB more than the header declares
    assert peak_bytes_of_refusal(lambda: read_idx(path), "holds more") < 16 * 1024 * 1024


def test_an_idx_fifo_is_refused_without_hanging(tmp_path):
    from fedsim.data.idx import read_idx

    os.mkfifo(tmp_path / "train-images-idx3-ubyte")
    with pytest.raises(Exception, match="not a regular file"):
        read_idx(tmp_path / "train-images-idx3-ubyte")


def test_cifar_labels_of_nested_shared_references_are_refused_before_expanding(tmp_path):
    import pickle

    import numpy as np

    from fedsim.data.idx import read_cifar_batch

    inner: list = [0] * 100
    for _ in range(3):
        inner = [inner] * 100  # 10^8 labels once expanded; a few KB as a pickle (shared references)
    batch = {b"data": np.zeros((6, 3072), np.uint8), b"labels": [inner] * 6}
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(batch))
    assert path.stat().st_size < 100_000
    assert peak_bytes_of_refusal(lambda: read_cifar_batch(path), "flat list of integers") < 32 * 1024 * 1024


@pytest.mark.parametrize("name", [".hydra", ".hydra/config.yaml", "cli.log"])
def test_files_hydra_writes_are_not_written_through_links(tmp_path, name):
    folder, outside = tmp_path / "run", tmp_path / "outside"
    (folder / ".hydra").mkdir(parents=True)
    outside.mkdir()
    (outside / "config.yaml").write_text("the user's file\n")
    if name == ".hydra":
        (folder / ".hydra").rmdir()
        (folder / ".hydra").symlink_to(outside, target_is_directory=True)
    else:
        (folder / name).symlink_to(outside / "config.yaml")
    result = fedsim(*BASE, "num_rounds=1", f"hydra.run.dir={folder}")
    assert result.returncode == 2 and "is a symbolic link, which Hydra would write through" in last_line(result)
    assert (outside / "config.yaml").read_text() == "the user's file\n" and sorted(os.listdir(outside)) == ["config.yaml"]
