"""fedsim's round loop: Flower's ``Strategy.start`` loop plus per-round records.

Same calls in the same order as ``Strategy.start`` (configure_train -> send_and_receive ->
aggregate_train -> central evaluation), with a callback after every round so records
are written as rounds finish.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from flwr.app import ArrayRecord, ConfigRecord
from flwr.serverapp import Grid

from fedsim.server.strategy import SamplingFedAvg


@dataclass
class RoundResult:
    """One finished round, as handed to callbacks."""

    server_round: int
    arrays: ArrayRecord
    row: dict[str, Any]


def run_rounds(
    grid: Grid,
    strategy: SamplingFedAvg,
    initial_arrays: ArrayRecord,
    num_rounds: int,
    train_config: dict[str, Any],
    evaluate: Callable[[ArrayRecord], tuple[float, float]],
    eval_every: int = 1,
    on_round: Callable[[RoundResult], None] | None = None,
    first_round: int = 1,
    timeout: float = 3600.0,
) -> ArrayRecord:
    """Run rounds ``first_round..num_rounds`` and return the final global weights."""
    arrays = initial_arrays
    for server_round in range(first_round, num_rounds + 1):
        started = time.perf_counter()
        if hasattr(grid, "set_round"):  # fault injection draws per round
            grid.set_round(server_round)
        messages = strategy.configure_train(server_round, arrays, ConfigRecord(dict(train_config)), grid)
        replies = grid.send_and_receive(messages, timeout=timeout)
        new_arrays, _ = strategy.aggregate_train(server_round, replies)
        if new_arrays is not None:
            arrays = new_arrays
        log = strategy.last_round
        round_seconds = time.perf_counter() - started
        loss = accuracy = None
        if server_round % eval_every == 0 or server_round == num_rounds:
            loss, accuracy = evaluate(arrays)
        row = {
            "round": server_round,
            "accuracy": accuracy,
            "loss": loss,
            "train_loss": log.train_loss,
            "selected": log.selected,
            "available": log.available,
            "failed": log.failed,
            "failure_reasons": {str(k): v for k, v in log.failure_reasons.items()},
            "rejected": {str(k): v for k, v in log.rejected.items()},
            "selection_seconds": round(log.selection_seconds, 6),
            "probe_seconds": round(log.probe_seconds, 6),
            "train_seconds": round(round_seconds - log.selection_seconds - log.probe_seconds, 6),
            "train_reply_bytes": log.train_bytes,
            **log.extra_cost(),
        }
        if on_round is not None:
            on_round(RoundResult(server_round, arrays, row))
    return arrays
