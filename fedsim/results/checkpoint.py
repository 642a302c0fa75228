"""Checkpoints: global model, sampler state and progress in one ``.npz``, written atomically.

Everything is numpy arrays or a JSON string inside the archive, loaded with
``allow_pickle=False``: resuming never unpickles arbitrary objects. The file is written
to a temporary name, fsynced and renamed over ``checkpoint.npz``, so a crash leaves
either the previous checkpoint or the new one, never half of one.

A checkpoint carries the identity of its run (config hash, seed, client count, model
shapes): :func:`check_checkpoint` refuses, in one line, one that belongs to another run,
points past the run's end, holds non-finite weights, or does not continue the records.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord

from fedsim.errors import ConfigError, first_line
from fedsim.hooks import RoundHook, RoundResult
from fedsim.results.state import capture, restore_into
from fedsim.safe_io import atomic_writer, open_read

CHECKPOINT = "checkpoint.npz"
MODEL_PREFIX = "model/"
SAMPLER_PREFIX = "sampler/"


@dataclass
class Checkpoint:
    """What a resumed run needs."""

    server_round: int
    arrays: ArrayRecord
    sampler_tree: dict[str, Any]
    sampler_arrays: dict[str, np.ndarray]
    identity: dict[str, Any] | None = None


def sampler_snapshot(sampler: Any) -> tuple[Any, dict[str, np.ndarray]]:
    """The sampler's state now, as (JSON tree, arrays), copied so that later rounds cannot change it."""
    tree, sampler_arrays = capture(sampler)
    return tree, {k: np.array(v, copy=True) for k, v in sampler_arrays.items()}


def save_checkpoint(run_dir: str | Path, server_round: int, arrays: ArrayRecord,
                    sampler_state: tuple[Any, dict[str, np.ndarray]],
                    identity: dict[str, Any] | None = None) -> Path:
    """Write the checkpoint of a finished round atomically, with its run's ``identity``.

    ``sampler_state`` is the sampler's :func:`sampler_snapshot` taken at that round.
    """
    path = Path(run_dir) / CHECKPOINT
    tree, sampler_arrays = sampler_state
    payload: dict[str, np.ndarray] = {f"{MODEL_PREFIX}{k}": v.numpy() for k, v in arrays.items()}
    payload.update({f"{SAMPLER_PREFIX}{k}": v for k, v in sampler_arrays.items()})
    meta = {"round": server_round, "model_keys": list(arrays.keys()), "sampler": tree, "identity": identity}
    payload["meta"] = np.array(json.dumps(meta))
    with atomic_writer(path, binary=True) as handle:
        np.savez(handle, **payload)
    return path


CHECKPOINT_LIMIT = 1024 * 1024 * 1024
"""Most bytes a checkpoint's entries may declare, inflated (a model and sampler state far below it)."""


def check_entries(path: Path, handle: Any) -> None:
    """Refuse (before inflating anything) entries fedsim does not write, and oversized ones."""
    try:
        with zipfile.ZipFile(handle) as archive:
            entries = archive.infolist()
    except zipfile.BadZipFile as exc:
        raise ConfigError(f"{path}: not a readable fedsim checkpoint ({exc}); delete it to restart the run") from None
    finally:
        handle.seek(0)
    unknown = [e.filename for e in entries
               if e.filename != "meta.npy" and not e.filename.startswith((MODEL_PREFIX, SAMPLER_PREFIX))]
    if unknown:
        raise ConfigError(f"{path}: holds {unknown[0]}, which fedsim does not write; delete it to restart the run")
    declared = sum(e.file_size for e in entries)
    if declared > CHECKPOINT_LIMIT:
        raise ConfigError(f"{path}: its entries would inflate to {declared / 2**30:.1f} GiB, more than a fedsim "
                          f"checkpoint holds; delete it to restart the run")


def load_checkpoint(run_dir: str | Path) -> Checkpoint | None:
    """Read the run's checkpoint, or None if it has none (ConfigError if it cannot be read)."""
    path = Path(run_dir) / CHECKPOINT
    if not os.path.lexists(path):
        return None
    handle = open_read(path)
    try:
        check_entries(path, handle)
    except ConfigError:
        handle.close()
        raise
    try:
        with handle, np.load(handle, allow_pickle=False) as archive:
            meta = json.loads(str(archive["meta"]))
            arrays = ArrayRecord({k: Array(np.array(archive[MODEL_PREFIX + k])) for k in meta["model_keys"]})
            sampler_arrays = {
                name[len(SAMPLER_PREFIX):]: np.array(archive[name])
                for name in archive.files if name.startswith(SAMPLER_PREFIX)
            }
        return Checkpoint(int(meta["round"]), arrays, meta["sampler"], sampler_arrays, meta.get("identity"))
    except Exception as exc:
        reason = first_line(exc)
        raise ConfigError(f"{path}: not a readable fedsim checkpoint ({reason}); delete it to restart the run") from None


def check_checkpoint(checkpoint: Checkpoint, identity: dict[str, Any], initial: ArrayRecord,
                     recorded_rounds: list[int], num_rounds: int) -> None:
    """Refuse (ConfigError) a checkpoint that does not belong to, or continue, this run."""
    where = f"{CHECKPOINT} (round {checkpoint.server_round})"
    theirs = checkpoint.identity or {}
    if theirs and theirs.get("streams_version", 1) != identity.get("streams_version", 1):
        raise ConfigError(f"{where} was written by fedsim before 0.2.0, whose random streams differ: continuing "
                          f"it would mix two; run it again in a new folder (or delete {CHECKPOINT} to restart)")
    if checkpoint.identity != identity:
        differs = [k for k in identity if theirs.get(k) != identity[k]]
        raise ConfigError(f"{where} belongs to another run ({', '.join(differs) or 'no identity'} differ); "
                          f"delete it to restart, or resume the run it came from")
    if not 1 <= checkpoint.server_round <= num_rounds:
        raise ConfigError(f"{where}: the round is outside 1..{num_rounds}; delete the checkpoint to restart")
    for key, array in initial.items():
        if (key not in checkpoint.arrays or checkpoint.arrays[key].shape != array.shape
                or checkpoint.arrays[key].dtype != array.dtype):
            raise ConfigError(f"{where}: model weights {key} do not match this run's model; delete it to restart")
        if not np.all(np.isfinite(checkpoint.arrays[key].numpy())):
            raise ConfigError(f"{where}: model weights {key} are not finite; delete it to restart")
    kept = sorted(r for r in recorded_rounds if r <= checkpoint.server_round)
    if kept != list(range(1, checkpoint.server_round + 1)):
        raise ConfigError(f"{where}: metrics.jsonl does not hold rounds 1..{checkpoint.server_round}; "
                          f"the records cannot continue from it")


def restore_sampler(sampler: Any, checkpoint: Checkpoint) -> None:
    """Put the checkpointed state back into a freshly built sampler (ConfigError if it does not fit)."""
    try:
        restore_into(sampler, checkpoint.sampler_tree, checkpoint.sampler_arrays)
    except Exception as exc:
        reason = first_line(exc)
        raise ConfigError(f"{CHECKPOINT}: its sampler state does not fit this run's sampler ({reason}); "
                          f"delete it to restart the run") from None


class CheckpointHook(RoundHook):
    """Saves a checkpoint every ``every`` rounds and after the last round (0: never).

    The sampler's state is taken when the round is aggregated (``on_round_aggregated``) and
    written with the round's records (``on_round_end``): with the evaluation in the
    background the sampler has moved on to the next round by then, and a resume must
    continue from this round's state to repeat the run exactly.
    """

    def __init__(self, run_dir: str | Path, every: int, num_rounds: int, sampler: Any,
                 identity: dict[str, Any] | None = None) -> None:
        self.run_dir = run_dir
        self.identity = identity
        self.every = int(every)
        self.num_rounds = int(num_rounds)
        self.sampler = sampler
        self.snapshots: dict[int, tuple[Any, dict[str, np.ndarray]]] = {}

    def _due(self, server_round: int) -> bool:
        return bool(self.every) and (server_round % self.every == 0 or server_round == self.num_rounds)

    def on_round_aggregated(self, server_round: int, arrays: ArrayRecord) -> None:
        """Take the sampler's state of a round that is due for a checkpoint."""
        if self._due(server_round):
            self.snapshots[server_round] = sampler_snapshot(self.sampler)

    def on_round_end(self, result: RoundResult) -> None:
        """Checkpoint the global model and the sampler's state of this round when the round is due."""
        if self._due(result.server_round):
            state = self.snapshots.pop(result.server_round, None) or sampler_snapshot(self.sampler)
            save_checkpoint(self.run_dir, result.server_round, result.arrays, state, self.identity)
