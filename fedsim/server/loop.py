"""fedsim's round loop: Flower's ``Strategy.start`` loop with round hooks.

Same calls in the same order as ``Strategy.start`` (configure_train -> send_and_receive ->
aggregate_train -> central evaluation). Everything else (records, checkpoints, progress,
fault clock, reports) is a :class:`~fedsim.hooks.RoundHook`, called around each round.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Callable

from flwr.app import ArrayRecord, ConfigRecord
from flwr.serverapp import Grid

from fedsim.hooks import RoundHook, RoundResult, RunContext
from fedsim.server.strategy import SamplingFedAvg

__all__ = ["TIMING_COLUMNS", "RoundResult", "run_rounds"]

TIMING_COLUMNS = ("selection_seconds", "probe_seconds", "train_seconds", "eval_seconds")
"""Row columns that measure time: the only ones that differ between two identical runs."""


def run_rounds(
    grid: Grid,
    strategy: SamplingFedAvg,
    initial_arrays: ArrayRecord,
    context: RunContext,
    train_config: dict[str, Any],
    evaluate: Callable[[ArrayRecord], dict[str, Any]],
    eval_every: int = 1,
    hooks: Sequence[RoundHook] = (),
    timeout: float = 3600.0,
) -> tuple[ArrayRecord, dict[str, Any]]:
    """Run rounds ``context.first_round..context.num_rounds``; return (final weights, summary).

    ``evaluate(arrays)`` returns the row's evaluation columns (``loss``, ``accuracy``, and
    optionally ``per_class_accuracy``); it runs every ``eval_every`` rounds and after the last.
    """
    for hook in hooks:
        hook.on_run_start(context)
    arrays = initial_arrays
    for server_round in range(context.first_round, context.num_rounds + 1):
        for hook in hooks:
            hook.on_round_start(server_round)
        started = time.perf_counter()
        messages = strategy.configure_train(server_round, arrays, ConfigRecord(dict(train_config)), grid)
        replies = grid.send_and_receive(messages, timeout=timeout)
        new_arrays, _ = strategy.aggregate_train(server_round, replies)
        if new_arrays is not None:
            arrays = new_arrays
        round_seconds = time.perf_counter() - started
        evaluation: dict[str, Any] = {"accuracy": None, "loss": None}
        if server_round % eval_every == 0 or server_round == context.num_rounds:
            evaluated = time.perf_counter()
            evaluation = {**evaluate(arrays), "eval_seconds": round(time.perf_counter() - evaluated, 6)}
        result = RoundResult(server_round, arrays, round_row(strategy, server_round, round_seconds, evaluation),
                             strategy.record_extras())
        for hook in hooks:
            hook.on_round_end(result)
    summary: dict[str, Any] = {}
    for hook in hooks:
        hook.on_run_end(summary)
    return arrays, summary


def round_row(strategy: SamplingFedAvg, server_round: int, round_seconds: float,
              evaluation: dict[str, Any]) -> dict[str, Any]:
    """The ``metrics.jsonl`` row of a finished round."""
    log = strategy.last_round
    accuracy, loss = evaluation.pop("accuracy"), evaluation.pop("loss")
    return {
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
        **evaluation,
    }
