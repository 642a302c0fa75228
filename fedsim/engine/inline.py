"""An in-process engine: a Flower ``Grid`` that calls the ``ClientApp`` directly.

No Ray, no threads, deterministic node ids (``partition id + 1``) and message ids, so
the same config and seed give identical results. The strategy and ClientApp are the
very objects the Ray engine uses; only message transport differs.
"""

from __future__ import annotations

import itertools
import traceback
from collections.abc import Iterable

import torch
from flwr.app import Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid
from flwr.supercore.task_identity import TaskIdentity

SERVER_NODE_ID = 0
RUN_ID = 1
CLIENT_ERROR_CODE = 1


class InlineGrid(Grid):
    """A Grid whose nodes are simulated in this process, one per partition."""

    def __init__(self, client_app: ClientApp, num_partitions: int) -> None:
        self.client_app = client_app
        self.num_partitions = int(num_partitions)
        self.contexts = {
            pid + 1: Context(
                run_id=RUN_ID,
                node_id=pid + 1,
                node_config={"partition-id": pid, "num-partitions": self.num_partitions},
                state=RecordDict(),
                run_config={},
            )
            for pid in range(self.num_partitions)
        }
        self.connected: set[int] = set(self.contexts)
        self._pending: dict[str, Message] = {}
        self._replies: dict[str, Message] = {}
        self._ids = itertools.count()
        self._run = None
        TaskIdentity.run_id = RUN_ID
        TaskIdentity.node_id = SERVER_NODE_ID
        TaskIdentity.task_id = 0

    def set_run(self, run) -> None:  # noqa: ANN001 - flwr's Run
        """Remember the run (unused in-process)."""
        self._run = run

    @property
    def run(self):  # noqa: ANN201
        """The run set with :meth:`set_run` (None in-process)."""
        return self._run

    def create_message(
        self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str, ttl: float | None = None
    ) -> Message:
        """Build an instruction message (same as the Message constructor)."""
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        """Node ids of the connected simulated clients."""
        return sorted(self.connected)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        """Queue messages for their nodes; ids are deterministic counters."""
        ids = []
        for message in messages:
            message_id = f"m{next(self._ids)}"
            message.metadata.__dict__["_message_id"] = message_id
            self._pending[message_id] = message
            ids.append(message_id)
        return ids

    def _execute(self, message: Message) -> Message:
        """Run the ClientApp on one message; an exception becomes an error reply."""
        context = self.contexts.get(message.metadata.dst_node_id)
        if context is None or message.metadata.dst_node_id not in self.connected:
            return Message(Error(CLIENT_ERROR_CODE, "node not connected"), reply_to=message)
        try:
            return self.client_app(message, context)
        except Exception as exc:  # a failing client must not stop the run
            reason = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
            return Message(Error(CLIENT_ERROR_CODE, reason), reply_to=message)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        """Execute the pending messages (in push order) and return their replies."""
        replies = []
        for message_id in message_ids:
            if message_id in self._pending:
                self._replies[message_id] = self._execute(self._pending.pop(message_id))
            if message_id in self._replies:
                replies.append(self._replies.pop(message_id))
        return replies

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        """Push, execute and return all replies (the timeout is not needed in-process)."""
        return list(self.pull_messages(self.push_messages(messages)))


class InlineEngine:
    """Runs the federation in this process through an :class:`InlineGrid`.

    ``threads`` sets torch's intra-op threads (default 1: on a shared 2-core machine one
    thread per process trains small models fastest; None keeps torch's default).
    """

    name = "inline"

    def __init__(self, threads: int | None = 1) -> None:
        self.threads = threads

    def run(self, client_app: ClientApp, num_partitions: int, server_main) -> None:  # noqa: ANN001
        """Call ``server_main(grid)`` with a grid over ``num_partitions`` in-process nodes."""
        if self.threads:
            torch.set_num_threads(int(self.threads))
        server_main(InlineGrid(client_app, num_partitions))
