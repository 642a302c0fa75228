"""A fedsim sampler in front of any Flower strategy: the sampler decides who trains.

:class:`SampledStrategy` wraps a Flower ``Strategy`` (FedAvg, FedProx, FedAdam, FedYogi,
Krum, your own), the way Flower's differential-privacy strategies wrap one. Each round it
- addresses clients by partition id: on first use it asks every node for its partition
  id (a ``query`` message), so selections are reproducible on any engine;
- serves the sampler's needs: pre-selection probes (an extra ``evaluate`` round trip to
  the candidates, counted), and after training the sampled clients' reports;
- lets the wrapped strategy configure the training messages for exactly the selected
  clients (its ``configure_train`` sees a grid of those nodes only; ``fraction_train``
  must be 1) and adds fedsim's run seed, from which clients derive their training stream;
- validates every reply (:func:`~fedsim.server.validation.reply_problem`), hands the sound
  ones to the sampler, and gives the wrapped strategy only their ``arrays`` and
  ``metrics`` records to aggregate.

It works with ``Strategy.start`` in any ServerApp, and with fedsim's own round loop, which
reads :attr:`SampledStrategy.last_round` for the run records. Evaluation is central in
fedsim, so the wrapped strategy's federated evaluation is not asked for.
:class:`SamplingFedAvg` is the wrapper around fedsim's FedAvg/FedProx.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from logging import DEBUG, INFO, WARNING
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fedsim.selection.base import ClientReport, ProbeReport, Sampler
from fedsim.models.networks import output_layer_names
from fedsim.server.addressing import query_partitions
from fedsim.server.algorithms import FedAvg, FedProx
from fedsim.server.validation import reply_problem
from fedsim.streams import Stream, generator


@dataclass
class RoundLog:
    """What happened in one round, for the run records."""

    server_round: int
    selected: list[int] = field(default_factory=list)
    available: int = 0
    succeeded: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    failure_reasons: dict[int, str] = field(default_factory=dict)
    rejected: dict[int, str] = field(default_factory=dict)
    selection_seconds: float = 0.0
    probe_seconds: float = 0.0
    probe_messages: int = 0
    probe_bytes: int = 0
    probe_examples: int = 0
    probe_failures: int = 0
    train_bytes: int = 0
    train_loss: float | None = None

    def extra_cost(self) -> dict[str, Any]:
        """The sampler's cost beyond plain training: messages, array bytes, client work."""
        return {
            "extra_messages": self.probe_messages,
            "extra_bytes": self.probe_bytes,
            "extra_client_examples": self.probe_examples,
            "probe_failures": self.probe_failures,
        }


def array_bytes(content: RecordDict) -> int:
    """Bytes of all arrays in a message's content (what dominates its size)."""
    return sum(record.count_bytes() for record in content.array_records.values())


class StrategyMismatch(ValueError):
    """The wrapped strategy cannot let a sampler choose its clients (a setting says which)."""


class SelectedNodes:
    """A grid that lists only the selected nodes, so a wrapped strategy configures just those."""

    def __init__(self, grid: Grid, node_ids: list[int]) -> None:
        self.inner = grid
        self.node_ids = list(node_ids)

    def get_node_ids(self) -> list[int]:
        """The selected nodes."""
        return list(self.node_ids)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class SampledStrategy(Strategy):
    """Any Flower strategy with its clients chosen by a fedsim sampler.

    Parameters
    ----------
    strategy : flwr.serverapp.strategy.Strategy
        Configures training messages and aggregates replies. Its ``fraction_train`` must be
        1.0 (the sampler decides who trains); its minimum node counts must not exceed the
        clients selected in a round.
    sampler : Sampler
        Chooses the partition ids that train each round.
    clients_per_round : int
        K, the number of clients asked to train each round.
    seed : int (default: 0)
        Run seed: the sampler's stream and, sent to clients, their training streams derive
        from it (:mod:`fedsim.streams`).
    num_rounds : int (default: 1)
        Total rounds; samplers that anneal (HiCS-FL) need it.
    query_timeout : float (default: 600)
        Seconds to wait for the partition-id query, the nodes to connect, and probes.
    expected_nodes : int (default: 1)
        Wait for at least this many connected nodes before the first round (on Flower's
        simulation engine nodes may register after the ServerApp starts).
    client_sizes : sequence of int, optional
        Examples per partition id, when the caller knows them (fedsim does). The sampler
        is then set up at once (so its state can be restored from a checkpoint before the
        first round) and knows clients that are not connected yet. Without it, sizes come
        from the clients' answers to the partition-id query.
    node_wait_timeout : float, optional
        Seconds to wait for ``expected_nodes`` nodes before the first round (progress is
        logged every :attr:`node_wait_log_every` = 5 s); fewer by then is a ConfigError.
        None: ``query_timeout``.
    """

    def __init__(
        self,
        strategy: Strategy,
        sampler: Sampler,
        clients_per_round: int,
        seed: int = 0,
        num_rounds: int = 1,
        query_timeout: float = 600.0,
        expected_nodes: int = 1,
        client_sizes: Sequence[int] | None = None,
        node_wait_timeout: float | None = None,
    ) -> None:
        if float(getattr(strategy, "fraction_train", 1.0)) != 1.0:
            raise StrategyMismatch(f"{type(strategy).__name__}.fraction_train={strategy.fraction_train}: the "
                                   f"sampler decides who trains; set fraction_train to 1.0")
        least = self.least_nodes(strategy)
        if least > int(clients_per_round):
            raise StrategyMismatch(f"{type(strategy).__name__} needs at least {least} training clients a round "
                                   f"(min_train_nodes / min_available_nodes) but clients_per_round="
                                   f"{clients_per_round}; lower its minimum or raise clients_per_round")
        self.strategy = strategy
        self.sampler = sampler
        self.clients_per_round = int(clients_per_round)
        self.seed = int(seed)
        self.num_rounds = int(num_rounds)
        self.query_timeout = query_timeout
        self.min_available_nodes = int(expected_nodes)
        self.node_wait_timeout = query_timeout if node_wait_timeout is None else float(node_wait_timeout)
        self.node_wait_log_every = 5.0  # seconds between "waiting for nodes" messages
        self.node_of: dict[int, int] = {}
        self.partition_of: dict[int, int] = {}
        self.client_sizes: np.ndarray | None = None
        self.last_round = RoundLog(server_round=0)
        self._global: dict[str, np.ndarray] = {}
        self._sampler_ready = False
        if client_sizes is not None:
            self.client_sizes = np.asarray(client_sizes, dtype=np.float64)
            self._setup_sampler()

    @staticmethod
    def least_nodes(strategy: Strategy) -> int:
        """The fewest training clients the wrapped strategy configures a round with (Flower waits for fewer)."""
        return max(int(getattr(strategy, "min_train_nodes", 1)), int(getattr(strategy, "min_available_nodes", 1)))

    def _setup_sampler(self) -> None:
        """Give the sampler the federation's shape and its own random stream (once)."""
        rng = generator(self.seed, Stream.SAMPLER)
        self.sampler.setup(self.client_sizes, self.clients_per_round, self.num_rounds, rng)
        self._sampler_ready = True

    # ------------------------------------------------------------------ addressing
    def discover_partitions(self, grid: Grid) -> None:
        """Map Flower node ids to partition ids by asking every (new) node once.

        Before the first round, wait up to :attr:`node_wait_timeout` seconds for
        ``expected_nodes`` nodes, logging progress (logger ``fedsim.server``) every
        :attr:`node_wait_log_every` seconds;
        fewer nodes by then is a :class:`~fedsim.errors.ConfigError` naming the fix.
        """
        import logging

        from fedsim.errors import ConfigError

        node_ids = sorted(grid.get_node_ids())
        if not self.partition_of and len(node_ids) < self.min_available_nodes:
            logger = logging.getLogger("fedsim.server")
            started = time.monotonic()
            deadline, next_report = started + self.node_wait_timeout, started + self.node_wait_log_every
            while len(node_ids) < self.min_available_nodes:
                now = time.monotonic()
                if now >= deadline:
                    raise ConfigError(
                        f"only {len(node_ids)} of {self.min_available_nodes} client nodes connected within "
                        f"{self.node_wait_timeout:g} s; start as many SuperNodes as num_clients "
                        f"(options.num-supernodes; with flwr run: --federation-config "
                        f"'num-supernodes={self.min_available_nodes}') or lower num_clients")
                if now >= next_report:
                    logger.info("waiting for nodes: %d of %d connected", len(node_ids), self.min_available_nodes)
                    next_report = now + self.node_wait_log_every
                time.sleep(min(0.05, max(deadline - now, 0.0)))
                node_ids = sorted(grid.get_node_ids())
        if not node_ids and not self.partition_of:
            raise RuntimeError("no client nodes connected to the grid")
        new_nodes = [n for n in node_ids if n not in self.partition_of]
        if new_nodes:
            self._query(grid, new_nodes)

    def _query(self, grid: Grid, node_ids: list[int]) -> None:
        """Ask ``node_ids`` for their partition id and size, and record the answers."""
        answers = query_partitions(grid, node_ids, self.query_timeout)
        if len(answers) < len(node_ids) and self.client_sizes is None and not self.partition_of:
            # Clients that do not answer queries (not fedsim's ClientApp): use node order.
            answers = {n: (i, 1) for i, n in enumerate(sorted(node_ids))}
        for node, (pid, _) in answers.items():
            self.partition_of[node] = pid
        self.node_of = {pid: node for node, pid in self.partition_of.items()}
        if self.client_sizes is None:
            sizes = dict(answers.values())
            self.client_sizes = np.array([sizes[p] for p in sorted(sizes)], dtype=np.float64)

    def available_partitions(self, grid: Grid) -> np.ndarray:
        """Partition ids of the nodes the grid lists as connected now."""
        ids = sorted(self.partition_of[n] for n in grid.get_node_ids() if n in self.partition_of)
        return np.array(ids, dtype=np.int64)

    # ------------------------------------------------------------------ training
    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Probe candidates if the sampler asks, then let it choose who trains."""
        self.discover_partitions(grid)
        if not self._sampler_ready:
            self._setup_sampler()
        log_entry = RoundLog(server_round=server_round)
        available = self.available_partitions(grid)
        log_entry.available = len(available)

        probes: dict[int, ProbeReport] = {}
        candidates = self.sampler.probe_candidates(server_round, available)
        if candidates:
            start = time.perf_counter()
            probes = self._probe(grid, arrays, candidates, server_round, log_entry)
            log_entry.probe_seconds = time.perf_counter() - start

        start = time.perf_counter()
        selected = self.sampler.select(server_round, available, self.clients_per_round, probes)
        log_entry.selection_seconds = time.perf_counter() - start
        log_entry.selected = [int(p) for p in selected]
        self.last_round = log_entry
        log(DEBUG, "configure_train: round %s selected partitions %s", server_round, log_entry.selected)
        self._global = {k: v.numpy() for k, v in arrays.items()}
        return self._train_messages(server_round, arrays, config, grid, [self.node_of[p] for p in selected])

    def _train_messages(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid,
                        nodes: list[int]) -> list[Message]:
        """The wrapped strategy's training messages for ``nodes``, in the order the sampler chose them."""
        if not nodes:
            return []
        if len(nodes) < self.least_nodes(self.strategy):
            raise RuntimeError(f"round {server_round}: {len(nodes)} client(s) selected (too few available) but "
                               f"{type(self.strategy).__name__} needs at least {self.least_nodes(self.strategy)}")
        config = ConfigRecord(dict(config))
        config["server-round"] = server_round  # Flower's strategies set it too; a user's may not
        config["seed"] = self.seed
        messages = list(self.strategy.configure_train(server_round, arrays, config, SelectedNodes(grid, nodes)))
        order = {node: i for i, node in enumerate(nodes)}
        unknown = [m.metadata.dst_node_id for m in messages if m.metadata.dst_node_id not in order]
        if unknown or len(messages) != len(nodes):
            raise RuntimeError(f"{type(self.strategy).__name__}.configure_train addressed {len(messages)} message(s) "
                               f"for the {len(nodes)} selected clients; it must configure each selected client once")
        return sorted(messages, key=lambda m: order[m.metadata.dst_node_id])

    def _probe(
        self, grid: Grid, arrays: ArrayRecord, candidates: list[int], server_round: int, log_entry: RoundLog
    ) -> dict[int, ProbeReport]:
        """Ask candidates for the current model's loss on their data (one extra round trip).

        Counts the messages (requests and replies), their array bytes and the examples
        the clients evaluated into ``log_entry``.
        """
        config = ConfigRecord(
            {"server-round": server_round, "want-gradient": bool(self.sampler.needs.probe_gradients)}
        )
        record = RecordDict({"arrays": arrays, "config": config})
        messages = [Message(content=record, message_type=MessageType.EVALUATE, dst_node_id=self.node_of[p])
                    for p in candidates]
        log_entry.probe_messages += len(messages)
        log_entry.probe_bytes += len(messages) * array_bytes(record)
        probes = {}
        for reply in grid.send_and_receive(messages, timeout=self.query_timeout):
            log_entry.probe_messages += 1
            if reply.has_error():
                log_entry.probe_failures += 1
                log(WARNING, "probe of node %s failed: %s", reply.metadata.src_node_id, reply.error.reason)
                continue
            log_entry.probe_bytes += array_bytes(reply.content)
            pid = self.partition_of[reply.metadata.src_node_id]
            metrics = reply.content["metrics"]
            gradient = reply.content["gradient"]["flat"].numpy() if "gradient" in reply.content else None
            probes[pid] = ProbeReport(pid, float(metrics["loss"]), int(metrics["num-examples"]), gradient)
            log_entry.probe_examples += int(metrics["num-examples"])
        return probes

    def client_report(self, reply: Message) -> ClientReport:
        """Turn a training reply into the sampler's view of it."""
        pid = self.partition_of[reply.metadata.src_node_id]
        metrics = reply.content["metrics"]
        update = reply.content["output_update"]
        model_update = None
        if self.sampler.needs.full_updates:
            new = reply.content["arrays"]
            model_update = np.concatenate(
                [(new[k].numpy().astype(np.float64) - self._global[k]).ravel() for k in self._global
                 if np.issubdtype(self._global[k].dtype, np.floating)]
            )
        return ClientReport(
            partition_id=pid,
            num_examples=int(metrics["num-examples"]),
            train_loss=float(metrics["train-loss"]),
            num_steps=int(metrics["num-steps"]),
            bias_update=update["bias"].numpy().astype(np.float64),
            weight_update=update["weight"].numpy().astype(np.float64),
            model_update=model_update,
        )

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Average the sound replies and hand their reports to the sampler.

        Error replies (failed or late clients) and replies that fail validation are
        recorded with their reason in :attr:`last_round` and left out. If nothing is
        left, the global model stays as it was.
        """
        log_entry = self.last_round
        good = []
        max_examples = int(self.client_sizes.sum()) if self.client_sizes is not None else 2**31 - 1
        for reply in replies:
            pid = self.partition_of.get(reply.metadata.src_node_id, -1)
            if reply.has_error():
                log_entry.failure_reasons[pid] = reply.error.reason.splitlines()[0] if reply.error.reason else "error"
                continue
            problem = reply_problem(reply.content, self._global, output_layer_names(), max_examples)
            if problem is not None:
                log_entry.rejected[pid] = problem
                log_entry.failure_reasons[pid] = f"rejected: {problem}"
                log(WARNING, "round %s: rejected the reply of partition %s: %s", server_round, pid, problem)
                continue
            good.append(reply)
        answered = {self.partition_of.get(r.metadata.src_node_id) for r in good}
        log_entry.failed = sorted(p for p in log_entry.selected if p not in answered)
        for pid in log_entry.failed:
            log_entry.failure_reasons.setdefault(pid, "no reply")
        if not good:
            return None, None
        reports = [self.client_report(r) for r in good]
        log_entry.train_bytes = sum(array_bytes(r.content) for r in good)
        log_entry.succeeded = [r.partition_id for r in reports]
        arrays, metrics = self.strategy.aggregate_train(server_round, [aggregation_view(r) for r in good])
        if arrays is not None:
            arrays = self.in_model_dtypes(arrays)
        self.sampler.observe(server_round, reports)
        log_entry.train_loss = float(np.mean([r.train_loss for r in reports]))
        return arrays, metrics

    def in_model_dtypes(self, arrays: ArrayRecord) -> ArrayRecord:
        """The aggregate in the dtypes of the model sent out (FedAdam and FedYogi compute in float64).

        Replies are validated against the global model's dtypes, so a model whose dtype
        drifted would have every later reply rejected.
        """
        if all(arrays[k].numpy().dtype == self._global[k].dtype for k in arrays.keys() if k in self._global):
            return arrays
        return ArrayRecord({k: Array(np.asarray(arrays[k].numpy(), dtype=self._global[k].dtype))
                            if k in self._global else arrays[k] for k in arrays.keys()})

    # ------------------------------------------------------------------ evaluation
    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """No federated evaluation: fedsim evaluates the global model centrally."""
        return []

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        """Nothing to aggregate: no federated evaluation was asked for."""
        return None

    def summary(self) -> None:
        """Log the sampler and the wrapped strategy's settings."""
        log(INFO, "\t├──> Sampler: %s", type(self.sampler).__name__)
        log(INFO, "\t├──> Clients per round: %s", self.clients_per_round)
        log(INFO, "\t└──> Strategy: %s", type(self.strategy).__name__)
        self.strategy.summary()

    def record_extras(self) -> dict[str, Any]:
        """Sampler diagnostics of the last round (JSON-ready)."""
        return self.sampler.diagnostics()


def aggregation_view(reply: Message) -> Message:
    """The reply as the wrapped strategy sees it: only its ``arrays`` and ``metrics`` records.

    Flower's aggregators average every ArrayRecord of a reply, and fedsim's replies also
    carry the output-layer update for the sampler; that one is not part of the model.
    """
    view = copy.copy(reply)
    view.content = RecordDict({"arrays": reply.content["arrays"], "metrics": reply.content["metrics"]})
    return view


class SamplingFedAvg(SampledStrategy):
    """A sampler in front of fedsim's FedAvg (or FedProx when ``proximal_mu`` > 0).

    ``weighted_aggregation`` weights client models by ``num-examples``; False (default) is
    the plain mean of the HiCS-FL paper (:mod:`fedsim.server.algorithms`). The other
    parameters are :class:`SampledStrategy`'s.
    """

    def __init__(self, sampler: Sampler, clients_per_round: int, weighted_aggregation: bool = False,
                 proximal_mu: float = 0.0, **options: Any) -> None:
        inner = FedProx(proximal_mu=proximal_mu, weighted_aggregation=weighted_aggregation) if proximal_mu > 0 \
            else FedAvg(weighted_aggregation=weighted_aggregation)
        super().__init__(inner, sampler, clients_per_round, **options)
