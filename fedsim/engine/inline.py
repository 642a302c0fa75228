"""An in-process engine: a Flower ``Grid`` that calls the ``ClientApp`` directly.

No Ray, deterministic node ids (``partition id + 1``) and message ids, so the same
config and seed give identical results. The strategy and ClientApp are the very objects
the Ray engine uses; only message transport differs.

With ``workers > 1`` the clients of a round run in that many forked worker processes
(one torch thread each); workers inherit the loaded data, so it is loaded once. Replies
come back in message order and every client's training is seeded by (seed, round,
partition id), so the results are identical to sequential execution. Every batch of
messages a ``send_and_receive`` carries is spread over the workers the same way:
training messages and probes (``evaluate`` messages of samplers like DivFL and
Power-of-Choice) alike, one message at a time to whichever worker is free; replies are
put back in message order, so the outcome does not depend on which worker ran what.

Before the workers fork, every client's tensors are built in this process, so workers
share them (copy-on-write) instead of each cutting its own copy, largest clients are
sent first so the last message to finish is a short one. When clients compute on a GPU
(or CUDA is already in use in this process), a forked child could not use CUDA: the
workers are then spawned instead (the ClientApp travels cloudpickled, each worker loads
the data once) and share the one GPU.
"""

from __future__ import annotations

import itertools
import multiprocessing
import traceback
from collections.abc import Iterable

import torch
from flwr.app import Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid
from flwr.supercore.task_identity import TaskIdentity

from fedsim.errors import ConfigError

SERVER_NODE_ID = 0
RUN_ID = 1
CLIENT_ERROR_CODE = 1


_WORKER_APP: ClientApp | None = None  # the ClientApp a forked worker inherits


def _execute(client_app: ClientApp, message: Message, context: Context) -> Message:
    """Run the ClientApp on one message; an exception becomes an error reply."""
    try:
        return client_app(message, context)
    except Exception as exc:  # a failing client must not stop the run
        reason = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
        return Message(Error(CLIENT_ERROR_CODE, reason), reply_to=message)


def _execute_in_worker(job: tuple[Message, Context]) -> tuple[Message, RecordDict]:
    """Worker side: run one message and send back the reply and the node's state."""
    message, context = job
    reply = _execute(_WORKER_APP, message, context)
    return reply, context.state


def _init_worker(threads: int, pickled_app: bytes | None = None) -> None:
    global _WORKER_APP
    torch.set_num_threads(threads)
    if pickled_app is not None:  # a spawned worker: the ClientApp travels pickled
        import cloudpickle

        _WORKER_APP = cloudpickle.loads(pickled_app)


def _cuda_in_use() -> bool:
    """Whether this process has initialised CUDA (a forked child could not use it then)."""
    return bool(torch.cuda.is_available() and torch.cuda.is_initialized())


class InlineGrid(Grid):
    """A Grid whose nodes are simulated in this process (or its workers), one per partition."""

    def __init__(self, client_app: ClientApp, num_partitions: int, workers: int = 1) -> None:
        self.client_app = client_app
        self.num_partitions = int(num_partitions)
        self.workers = max(1, int(workers))
        self._pool = None
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

    def _pool_or_none(self):  # noqa: ANN202
        """The worker pool (forked on first use, so workers inherit the loaded data)."""
        global _WORKER_APP
        if self.workers == 1:
            return None
        if self._pool is None:
            runtime = getattr(self.client_app, "fedsim_runtime", None)
            gpu_clients = runtime is not None and runtime.device.type == "cuda"
            if gpu_clients or _cuda_in_use():
                import cloudpickle

                payload = cloudpickle.dumps(self.client_app)
                self._pool = multiprocessing.get_context("spawn").Pool(self.workers, _init_worker, (1, payload))
            else:
                if runtime is not None:
                    runtime.prepare()  # built once here, shared by the forked workers
                _WORKER_APP = self.client_app
                self._pool = multiprocessing.get_context("fork").Pool(self.workers, _init_worker, (1,))
        return self._pool

    def close(self) -> None:
        """Stop the worker processes, if any."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def _run_pending(self, message_ids: list[str]) -> None:
        """Execute pending messages, in the workers when there are several to run."""
        jobs = []
        for message_id in message_ids:
            message = self._pending.pop(message_id)
            node = message.metadata.dst_node_id
            if node not in self.contexts or node not in self.connected:
                self._replies[message_id] = Message(Error(CLIENT_ERROR_CODE, "node not connected"), reply_to=message)
            else:
                jobs.append((message_id, message, self.contexts[node]))
        pool = self._pool_or_none() if len(jobs) > 1 else None
        if pool is None:
            for message_id, message, context in jobs:
                self._replies[message_id] = _execute(self.client_app, message, context)
            return
        # Largest clients first (their work is proportional to their data), one message
        # at a time to whichever worker is free: the last job to finish is a small one.
        order = sorted(range(len(jobs)), key=lambda i: -self._cost(jobs[i][2]))
        results = pool.map(_execute_in_worker, [(jobs[i][1], jobs[i][2]) for i in order], chunksize=1)
        for i, (reply, state) in zip(order, results):
            message_id, _, context = jobs[i]
            self._replies[message_id] = reply
            context.state = state

    def _cost(self, context: Context) -> int:
        """Expected work of a node's message: its partition's size (0 when unknown)."""
        runtime = getattr(self.client_app, "fedsim_runtime", None)
        if runtime is None:
            return 0
        pid = int(context.node_config["partition-id"])
        return len(runtime.client_indices[pid]) if 0 <= pid < len(runtime.client_indices) else 0

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        """Execute the pending messages and return their replies, in push order."""
        message_ids = list(message_ids)
        self._run_pending([m for m in message_ids if m in self._pending])
        return [self._replies.pop(m) for m in message_ids if m in self._replies]

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        """Push, execute and return all replies (the timeout is not needed in-process)."""
        return list(self.pull_messages(self.push_messages(messages)))


class InlineEngine:
    """Runs the federation in this process through an :class:`InlineGrid`.

    ``threads`` sets torch's intra-op threads (default 1: on a shared 2-core machine one
    thread per process trains small models fastest; None keeps torch's default).
    """

    name = "inline"

    def __init__(self, threads: int | None = 1, workers: int = 1) -> None:
        if threads is not None and int(threads) < 1:
            raise ConfigError(f"engine.threads={threads}: must be a whole number >= 1 (or null for torch's default)")
        if int(workers) < 1:
            raise ConfigError(f"engine.workers={workers}: must be >= 1 (1 = run clients in this process)")
        self.threads = threads
        self.workers = int(workers)

    def run(self, client_app: ClientApp, num_partitions: int, server_main) -> None:  # noqa: ANN001
        """Call ``server_main(grid)`` with a grid over ``num_partitions`` in-process nodes."""
        if self.threads:
            torch.set_num_threads(int(self.threads))
        grid = InlineGrid(client_app, num_partitions, workers=self.workers)
        try:
            server_main(grid)
        finally:
            grid.close()
