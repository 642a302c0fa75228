"""Every random stream of a run, by name, derived from the run seed without collisions.

fedsim's paired comparisons rest on this module: samplers compared under one seed see the
same partition, initial model, faults and client training because each of those draws from
its own stream, and only the sampler's stream belongs to the sampler.

A stream is ``numpy.random.SeedSequence(entropy=seed, spawn_key=(tag, round, partition_id))``:
the run seed is the entropy and every stream has a spawn key of the *same length*, with its
tag (:class:`Stream`) first. ``SeedSequence`` pads short keys with zeros, so keys of different
lengths can collide (``[s, k]`` and ``[s, k, 0]`` give the same stream); with one fixed
length, two streams are equal only if their tag, round and partition id all are. Streams
that are not per round or per client use 0 there. The tags are part of the records: never
renumber them (add new ones at the end).

This is the only module that builds a ``SeedSequence`` (``tests/test_streams.py`` checks it).
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

STREAMS_VERSION = 2
"""Version of the stream derivation; recorded in each run's ``summary.json``.

Version 1 (fedsim before this module) used keys of different lengths, so some streams
coincided (the initial model's seed was client 0's seed in round 2). Records written
with version 1 stay valid as records; a run repeated now draws other numbers.
"""

MAX_SEED = 2**63 - 1
"""Largest run seed: the seed is one 64-bit word of entropy (checked with the config)."""


class Stream(IntEnum):
    """The purposes a run draws random numbers for (the tag of each stream)."""

    PARTITION = 1  # which examples each client holds
    INITIAL_MODEL = 2  # the global model's initial weights (torch)
    SAMPLER = 3  # the sampler's own draws (who trains), saved in checkpoints
    FAULTS = 4  # injected failures and stragglers, per round and client
    CLIENT_TRAINING = 5  # a client's local training in one round: batch order, dropout


def seed_sequence(seed: int, stream: Stream, server_round: int = 0, partition_id: int = 0) -> np.random.SeedSequence:
    """The ``SeedSequence`` of one stream (round and partition id only for per-round streams)."""
    if not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"seed={seed}: must be between 0 and {MAX_SEED}")
    return np.random.SeedSequence(int(seed), spawn_key=(int(Stream(stream)), int(server_round), int(partition_id)))


def generator(seed: int, stream: Stream, server_round: int = 0, partition_id: int = 0) -> np.random.Generator:
    """A numpy generator drawing from one stream."""
    return np.random.default_rng(seed_sequence(seed, stream, server_round, partition_id))


def integer_seed(seed: int, stream: Stream, server_round: int = 0, partition_id: int = 0) -> int:
    """One stream as a 64-bit integer seed, for libraries seeded by a number (``torch.manual_seed``).

    64 bits, so that the thousands of per-client seeds of a run do not meet by chance (32-bit
    seeds would: 20,000 of them coincide somewhere with a probability of about 5%).
    """
    return int(seed_sequence(seed, stream, server_round, partition_id).generate_state(1, np.uint64)[0])


def client_training_seed(run_seed: int, server_round: int, partition_id: int) -> int:
    """The seed of one client's local training in one round: the same on every engine."""
    return integer_seed(run_seed, Stream.CLIENT_TRAINING, server_round, partition_id)
