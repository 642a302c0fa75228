"""Every random stream of a run is its own: no two purposes, rounds or clients share one."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from fedsim.streams import MAX_SEED, Stream, client_training_seed, generator, integer_seed, seed_sequence

ROOT = Path(__file__).resolve().parents[1]


def run_streams(seed: int, num_clients: int, num_rounds: int) -> dict[tuple, int]:
    """The first 64-bit word of every stream of a run (per-round streams for every round and client)."""
    keys: list[tuple] = [(Stream.PARTITION, 0, 0), (Stream.INITIAL_MODEL, 0, 0), (Stream.SAMPLER, 0, 0)]
    for server_round in range(1, num_rounds + 1):
        for pid in range(num_clients):
            keys += [(Stream.FAULTS, server_round, pid), (Stream.CLIENT_TRAINING, server_round, pid)]
    return {key: integer_seed(seed, *key) for key in keys}


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_all_streams_of_a_100_client_200_round_run_are_distinct(seed):
    words = run_streams(seed, num_clients=100, num_rounds=200)
    assert len(words) == 3 + 2 * 100 * 200
    assert len(set(words.values())) == len(words)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_the_old_collisions_are_gone(seed):
    # fedsim before fedsim.streams: SeedSequence([seed, 2]) seeded the initial model and
    # SeedSequence([seed, 2, 0]) client 0 in round 2; [seed, 0x5A] the sampler and
    # [seed, 90, 0] client 0 in round 90; [seed, 1] the partition and [seed, 1, 0] client 0 in round 1.
    old = np.random.SeedSequence
    assert old([seed, 2]).generate_state(2).tolist() == old([seed, 2, 0]).generate_state(2).tolist()
    assert integer_seed(seed, Stream.INITIAL_MODEL) != client_training_seed(seed, 2, 0)
    assert integer_seed(seed, Stream.SAMPLER) != client_training_seed(seed, 90, 0)
    assert integer_seed(seed, Stream.PARTITION) != client_training_seed(seed, 1, 0)


def test_streams_differ_across_seeds_and_repeat_within_one():
    assert integer_seed(3, Stream.SAMPLER) == integer_seed(3, Stream.SAMPLER)
    assert integer_seed(3, Stream.SAMPLER) != integer_seed(4, Stream.SAMPLER)
    a, b = generator(5, Stream.PARTITION), generator(5, Stream.PARTITION)
    assert a.random(4).tolist() == b.random(4).tolist()


def test_seeds_outside_one_word_are_refused():
    with pytest.raises(ValueError, match="seed"):
        seed_sequence(MAX_SEED + 1, Stream.SAMPLER)
    with pytest.raises(ValueError, match="seed"):
        seed_sequence(-1, Stream.SAMPLER)


def test_only_the_streams_module_builds_seed_sequences():
    found = subprocess.run(["grep", "-rln", "SeedSequence", str(ROOT / "fedsim")], capture_output=True, text=True)
    files = sorted(Path(line).relative_to(ROOT).as_posix() for line in found.stdout.split())
    assert files == ["fedsim/streams.py"]
