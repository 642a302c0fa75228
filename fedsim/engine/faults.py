"""Fault injection for any engine: a ``Grid`` wrapper that drops, delays or hides clients.

- ``client_failure_prob``: each selected client fails a training round with this probability;
- ``straggler_prob``: each selected client misses the round timeout with this probability
  (its reply would arrive too late, so the server never sees it);
- ``always_fail``: partition ids that fail every training round (a dead client);
- ``availability``: a join/leave schedule (the HiCS-FL paper's dynamic scenario: 20 of 50
  available at first, 10 more every 100 rounds, the first 20 leave after round 400).

Decisions are drawn from a generator seeded by (seed, round, partition id), so they are
the same on every engine and after a resume. Absent clients are not listed by
``get_node_ids``, so samplers only ever see available clients. Failed and late clients
come back as Flower error replies, which the strategy counts and does not aggregate.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from flwr.app import Error, Message, MessageType
from flwr.serverapp import Grid

from fedsim.errors import ConfigError
from fedsim.hooks import RoundHook
from fedsim.server.addressing import query_partitions
from fedsim.streams import Stream, generator

FAILURE_CODE = 2
STRAGGLER_CODE = 3


@dataclass
class AvailabilitySchedule:
    """Which partition ids are connected in a round."""

    initial: int
    join_every: int = 0
    join_count: int = 0
    leave_after: int | None = None
    leave_count: int = 0

    def __post_init__(self) -> None:
        if self.initial < 1:
            raise ConfigError(f"faults.availability.initial={self.initial}: must be >= 1")
        if self.join_every < 0 or self.join_count < 0 or self.leave_count < 0:
            raise ConfigError("faults.availability: join_every, join_count and leave_count must be >= 0")

    def available(self, server_round: int, num_partitions: int) -> np.ndarray:
        """Boolean mask over partition ids: connected in ``server_round``."""
        joined = self.initial
        if self.join_every > 0:
            joined += self.join_count * ((server_round - 1) // self.join_every)
        mask = np.arange(num_partitions) < min(joined, num_partitions)
        if self.leave_after is not None and server_round > self.leave_after:
            mask[: self.leave_count] = False
        return mask


class FaultInjectingGrid(Grid):
    """Wraps a Grid; the round loop calls :meth:`set_round` before each round."""

    def __init__(
        self,
        inner: Grid,
        num_partitions: int,
        seed: int = 0,
        client_failure_prob: float = 0.0,
        straggler_prob: float = 0.0,
        always_fail: Sequence[int] = (),
        availability: AvailabilitySchedule | None = None,
    ) -> None:
        self.inner = inner
        self.num_partitions = num_partitions
        self.seed = seed
        self.client_failure_prob = client_failure_prob
        self.straggler_prob = straggler_prob
        self.always_fail = {int(p) for p in always_fail}
        self.availability = availability
        self.server_round = 1
        self._partition_of: dict[int, int] = {}

    # -- delegation --------------------------------------------------------------
    def set_run(self, run) -> None:  # noqa: ANN001
        """Delegate to the wrapped grid."""
        self.inner.set_run(run)

    @property
    def run(self):  # noqa: ANN201
        """The wrapped grid's run."""
        return self.inner.run

    def create_message(self, content, message_type, dst_node_id, group_id, ttl=None) -> Message:  # noqa: ANN001
        """Delegate to the wrapped grid."""
        return self.inner.create_message(content, message_type, dst_node_id, group_id, ttl)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        """Delegate to the wrapped grid (faults apply in :meth:`send_and_receive`)."""
        return self.inner.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        """Delegate to the wrapped grid."""
        return self.inner.pull_messages(message_ids)

    # -- faults ------------------------------------------------------------------
    def set_round(self, server_round: int) -> None:
        """Tell the grid which round is starting (availability and fault draws depend on it)."""
        self.server_round = int(server_round)

    def _partition(self, node_id: int) -> int:
        if node_id not in self._partition_of:
            all_nodes = list(self.inner.get_node_ids())
            self._partition_of = {n: pid for n, (pid, _) in query_partitions(self.inner, all_nodes).items()}
        return self._partition_of[node_id]

    def get_node_ids(self) -> Iterable[int]:
        """The wrapped grid's nodes that are available in the current round."""
        nodes = list(self.inner.get_node_ids())
        if self.availability is None:
            return nodes
        mask = self.availability.available(self.server_round, self.num_partitions)
        return [n for n in nodes if mask[self._partition(n)]]

    def fault_of(self, partition_id: int) -> tuple[int, str] | None:
        """The injected fault of a client in the current round, if any."""
        if partition_id in self.always_fail:
            return FAILURE_CODE, "injected failure (always_fail)"
        draw = generator(self.seed, Stream.FAULTS, self.server_round, partition_id)
        failure, late = draw.random(2)
        if failure < self.client_failure_prob:
            return FAILURE_CODE, "injected failure"
        if late < self.straggler_prob:
            return STRAGGLER_CODE, "straggler: reply missed the round timeout"
        return None

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        """Forward messages; training messages to faulty clients get an error reply instead."""
        forwarded, replies = [], []
        for message in messages:
            is_train = message.metadata.message_type.split(".")[0] == MessageType.TRAIN
            fault = self.fault_of(self._partition(message.metadata.dst_node_id)) if is_train else None
            if fault is None:
                forwarded.append(message)
            else:
                replies.append(Message(Error(*fault), reply_to=message))
        if forwarded:
            replies.extend(self.inner.send_and_receive(forwarded, timeout=timeout))
        return replies


class FaultClock(RoundHook):
    """Tells a :class:`FaultInjectingGrid` which round starts (its draws depend on it)."""

    def __init__(self, grid: FaultInjectingGrid) -> None:
        self.grid = grid

    def on_round_start(self, server_round: int) -> None:
        """Advance the grid's round."""
        self.grid.set_round(server_round)
