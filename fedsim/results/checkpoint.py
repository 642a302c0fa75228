"""Checkpoints: global model, sampler state and progress in one ``.npz``, written atomically.

Everything is numpy arrays or a JSON string inside the archive, loaded with
``allow_pickle=False``: resuming never unpickles arbitrary objects. The file is written
to a temporary name, fsynced and renamed over ``checkpoint.npz``, so a crash leaves
either the previous checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord

from fedsim.hooks import RoundHook, RoundResult
from fedsim.results.state import capture, restore_into

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


def save_checkpoint(run_dir: str | Path, server_round: int, arrays: ArrayRecord, sampler: Any) -> Path:
    """Write the checkpoint of a finished round atomically."""
    path = Path(run_dir) / CHECKPOINT
    tree, sampler_arrays = capture(sampler)
    payload: dict[str, np.ndarray] = {f"{MODEL_PREFIX}{k}": v.numpy() for k, v in arrays.items()}
    payload.update({f"{SAMPLER_PREFIX}{k}": v for k, v in sampler_arrays.items()})
    meta = {"round": server_round, "model_keys": list(arrays.keys()), "sampler": tree}
    payload["meta"] = np.array(json.dumps(meta))
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        np.savez(handle, **payload)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path


def load_checkpoint(run_dir: str | Path) -> Checkpoint | None:
    """Read the run's checkpoint, or None if it has none."""
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as archive:
        meta = json.loads(str(archive["meta"]))
        arrays = ArrayRecord({k: Array(np.array(archive[MODEL_PREFIX + k])) for k in meta["model_keys"]})
        sampler_arrays = {
            name[len(SAMPLER_PREFIX):]: np.array(archive[name]) for name in archive.files if name.startswith(SAMPLER_PREFIX)
        }
    return Checkpoint(int(meta["round"]), arrays, meta["sampler"], sampler_arrays)


def restore_sampler(sampler: Any, checkpoint: Checkpoint) -> None:
    """Put the checkpointed state back into a freshly built sampler."""
    restore_into(sampler, checkpoint.sampler_tree, checkpoint.sampler_arrays)


class CheckpointHook(RoundHook):
    """Saves a checkpoint every ``every`` rounds and after the last round (0: never)."""

    def __init__(self, run_dir: str | Path, every: int, num_rounds: int, sampler: Any) -> None:
        self.run_dir = run_dir
        self.every = int(every)
        self.num_rounds = int(num_rounds)
        self.sampler = sampler

    def on_round_end(self, result: RoundResult) -> None:
        """Checkpoint the global model and the sampler's state when the round is due."""
        if self.every and (result.server_round % self.every == 0 or result.server_round == self.num_rounds):
            save_checkpoint(self.run_dir, result.server_round, result.arrays, self.sampler)
