"""A study's run records in one compact, table-shaped file: ``runs.parquet`` (zstd).

A study of a few hundred runs is thousands of small files (``metrics.jsonl``,
``sampler.jsonl``, ``config.yaml``, ...), and every study committed made each clone of the
repository heavier. :func:`pack` keeps all of them in one Parquet file, one row per run and
round, made for tables: ``pandas.read_parquet("runs.parquet")`` gives

- ``run`` (the run folder's name in the study folder), ``round``;
- ``accuracy``, ``loss`` (floats), ``selected`` (client ids): the usual columns, ready to use;
- ``metrics`` (that round's ``metrics.jsonl`` line, verbatim) and ``sampler`` (its
  ``sampler.jsonl`` line: the sampler's per-round diagnostics, or null);
- ``identity`` (:func:`fedsim.identity.identity_hash`), ``seed``, ``sampler_name``;
- the run's small files verbatim, the same on each of its rows (Parquet stores a repeated
  value once): ``config.yaml``, ``summary.json`` (null for an unfinished run),
  ``partition.json``, ``entropy_report.json``, ``.hydra/overrides.yaml`` and
  ``.hydra/hydra.yaml`` (the command and the sampler's config name).

:func:`unpack` writes the run folders back, file for file (the lines of ``metrics.jsonl`` and
``sampler.jsonl`` exactly as they were; a torn last line of an unfinished run is not kept),
so every reader of run folders works on an archive too: ``fedsim-compare`` unpacks one given
to it into a temporary folder and reads that through its usual checks. An archive is as
untrusted as a folder: its paths must stay inside the folder it is unpacked into, and its
files go through the same checked reader afterwards. Figures (``learning_curve.png``, ...)
and logs are not kept: they are drawn again from the records.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from fedsim.errors import ConfigError
from fedsim.identity import identity_hash, is_fedsim_target
from fedsim.results.recorder import METRICS_FILE
from fedsim.results.run_lock import RunLock
from fedsim.safe_io import CONFIG_LIMIT, RECORDS_LIMIT, atomic_writer, read_text, read_yaml

ARCHIVE = "runs.parquet"
"""The archive's file name inside a study folder."""

ARCHIVE_LIMIT = 2 * 2**30
"""Most bytes an archive's columns may declare, uncompressed (setting 2's 95 runs: about 0.02 GiB)."""

RUN_FILES = {"config.yaml": CONFIG_LIMIT, "summary.json": CONFIG_LIMIT, "partition.json": RECORDS_LIMIT,
             "entropy_report.json": CONFIG_LIMIT, ".hydra/overrides.yaml": CONFIG_LIMIT,
             ".hydra/hydra.yaml": CONFIG_LIMIT}
"""A run's small files kept verbatim (name -> most bytes read), besides its per-round lines."""

ROUND_FILES = {"metrics": METRICS_FILE, "sampler": "sampler.jsonl"}
"""Column -> the JSON-lines file whose lines become the per-round column."""


def _lines(path: Path) -> dict[int, str]:
    """Round -> line of a JSON-lines record file (lines that are not a JSON object with a round: left out)."""
    if not os.path.lexists(path):
        return {}
    out: dict[int, str] = {}
    for line in read_text(path, RECORDS_LIMIT).splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # the torn last line of an unfinished run
        if isinstance(row, dict) and isinstance(row.get("round"), int):
            out[row["round"]] = line
    return out


def _run_frame(run_dir: Path) -> pd.DataFrame:
    files = {name: (read_text(run_dir / name, limit) if os.path.lexists(run_dir / name) else None)
             for name, limit in RUN_FILES.items()}
    if files["config.yaml"] is None:
        raise ConfigError(f"{run_dir}: no config.yaml; not a run folder fedsim wrote")
    config = read_yaml(run_dir / "config.yaml") or {}
    metrics, sampler = (_lines(run_dir / name) for name in ROUND_FILES.values())
    rows = [json.loads(metrics[r]) for r in sorted(metrics)]
    frame = pd.DataFrame({
        "run": run_dir.name,
        "round": sorted(metrics),
        "accuracy": pd.Series([r.get("accuracy") for r in rows], dtype="float64"),
        "loss": pd.Series([r.get("loss") for r in rows], dtype="float64"),
        "selected": [r.get("selected") for r in rows],
        "metrics": [metrics[r] for r in sorted(metrics)],
        "sampler": [sampler.get(r) for r in sorted(metrics)],
    })
    frame["identity"] = identity_hash(config, trusted=is_fedsim_target)
    frame["seed"] = config.get("seed")
    frame["sampler_name"] = str((config.get("sampler") or {}).get("name") or "")
    for name, text in files.items():
        frame[name] = text
    return frame


def run_folders(study: Path) -> list[Path]:
    """The run folders directly under ``study`` (those holding ``metrics.jsonl``), sorted."""
    return sorted(p.parent for p in Path(study).glob(f"*/{METRICS_FILE}"))


def pack(study: str | Path, remove: bool = False) -> Path:
    """Write (or update) ``<study>/runs.parquet`` with every run folder directly under ``study``.

    Runs already in the archive are kept unless a folder of the same name is packed again.
    With ``remove``, only finished runs (``summary.json``) are packed, and their folders
    deleted afterwards (records in the archive; figures and logs are drawn again from them);
    an unfinished run stays a folder, with its checkpoint, to be resumed.
    """
    study = Path(study)
    folders = [d for d in run_folders(study) if not remove or os.path.lexists(d / "summary.json")]
    frames = [_run_frame(run_dir) for run_dir in folders]
    path = study / ARCHIVE
    packed = {run_dir.name for run_dir in folders}
    if os.path.lexists(path):
        kept = read_archive(path)
        frames.insert(0, kept[~kept["run"].isin(packed)])
    if not frames:
        raise ConfigError(f"{study}: no run folders (metrics.jsonl) to pack")
    table = pd.concat(frames, ignore_index=True).sort_values(["run", "round"], kind="stable").reset_index(drop=True)
    with atomic_writer(path, binary=True) as handle:
        table.to_parquet(handle, compression="zstd", compression_level=19, index=False)  # packed once, read often
    if remove:
        for run_dir in folders:
            shutil.rmtree(run_dir)
    return path


def pack_tree(root: str | Path, remove: bool = False) -> list[Path]:
    """:func:`pack` every folder under ``root`` (itself included) that holds run folders."""
    parents = sorted({p.parent.parent for p in Path(root).rglob(METRICS_FILE)})
    return [pack(parent, remove=remove) for parent in parents
            if not remove or any(os.path.lexists(d / "summary.json") for d in run_folders(parent))]


def archives_under(path: str | Path) -> list[Path]:
    """Every ``runs.parquet`` at or under ``path`` (a ``.parquet`` file given is itself)."""
    path = Path(path)
    if path.suffix == ".parquet":
        return [path]
    return sorted(path.rglob(ARCHIVE)) if path.is_dir() else []


@contextlib.contextmanager
def unpacked(root: str | Path) -> Iterator[Path]:
    """A study's archived runs as folders while the block runs; after it, finished runs packed.

    For study scripts: fedsim skips a finished run only when its folder is there, and the
    reports read run folders. Every ``runs.parquet`` at or under ``root`` is unpacked beside
    itself; after the block (also when it fails) every finished run, old or new, is packed
    again (:func:`pack_tree`, folders removed); unfinished runs stay folders to resume.

    One script at a time per study: the block holds ``root``'s lock (:class:`RunLock`), so a
    second script on the same folder stops at once with a one-line ConfigError instead of
    packing away (and deleting) the run folders the first one is still reading. A folder that
    did not exist before and is still empty after is removed again.
    """
    root = Path(root)
    existed = root.is_dir()
    with RunLock(root, kind="study folder"):
        for archive in archives_under(root):
            unpack(archive, archive.parent, skip_existing=True)
        try:
            yield root
        finally:
            if root.is_dir():
                pack_tree(root, remove=True)
    if not existed and root.is_dir() and not any(root.iterdir()):
        root.rmdir()


def read_archive(path: str | Path) -> pd.DataFrame:
    """An archive's table (ConfigError when it is not one fedsim wrote)."""
    path = Path(path)
    try:
        if os.path.islink(path) or not path.is_file():
            raise ValueError("not a regular file")
        import pyarrow.parquet as pq

        metadata = pq.ParquetFile(path).metadata  # what the columns inflate to, before reading them
        inflated = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
        if inflated > ARCHIVE_LIMIT:
            raise ValueError(f"its columns would inflate to {inflated / 2**30:.1f} GiB, more than an archive holds")
        table = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable archive is one line
        raise ConfigError(f"{path}: not a run archive fedsim wrote ({str(exc).splitlines()[0] if str(exc) else exc})")
    missing = {"run", "round", "metrics", "sampler", *RUN_FILES} - set(table.columns)
    if missing:
        raise ConfigError(f"{path}: not a run archive fedsim wrote (no column {sorted(missing)[0]})")
    return table


def _inside(root: Path, relative: Any) -> Path:
    """``root / name`` for a plain folder name (no separator, not ``..``; ConfigError otherwise)."""
    parts = PurePosixPath(str(relative)).parts
    if len(parts) != 1 or parts[0] in ("..", ".", "") or PurePosixPath(str(relative)).is_absolute():
        raise ConfigError(f"run archive: run path {relative!r} would leave the folder it is unpacked into")
    return root.joinpath(*parts)


def unpack(path: str | Path, dest: str | Path, skip_existing: bool = False) -> list[Path]:
    """Write the archive's run folders into ``dest`` (files as they were packed); returns the folders.

    With ``skip_existing``, a run whose folder is already in ``dest`` is left as it is (the
    folder is newer: a run resumed or rerun since it was packed).
    """
    table = read_archive(path)
    dest = Path(dest)
    folders = []
    for run, rows in table.groupby("run", sort=True):
        run_dir = _inside(dest, run)
        if skip_existing and os.path.lexists(run_dir):
            continue
        (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
        first = rows.iloc[0]
        for name in RUN_FILES:
            if first[name] is not None and not pd.isna(first[name]):
                with atomic_writer(run_dir / name) as handle:
                    handle.write(first[name])
        for column, name in ROUND_FILES.items():
            lines = [line for line in rows.sort_values("round")[column] if isinstance(line, str)]
            if lines:
                with atomic_writer(run_dir / name) as handle:
                    handle.write("".join(line + "\n" for line in lines))
        folders.append(run_dir)
    return folders


def main(argv: list[str] | None = None) -> int:
    """``python -m fedsim.results.archive pack|unpack FOLDER...``: pack every study under each
    folder (finished runs; their folders removed), or unpack every archive under it beside itself."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m fedsim.results.archive", description=main.__doc__)
    parser.add_argument("action", choices=["pack", "unpack"])
    parser.add_argument("folders", nargs="+", type=Path)
    args = parser.parse_args(argv)
    try:
        for folder in args.folders:
            if args.action == "pack":
                for path in pack_tree(folder, remove=True):
                    print(f"packed {path}")
            else:
                for archive in archives_under(folder):
                    print(f"unpacked {len(unpack(archive, archive.parent, skip_existing=True))} run(s) of {archive}")
    except ConfigError as exc:
        print(f"fedsim: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
