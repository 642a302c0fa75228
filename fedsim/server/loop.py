"""fedsim's round loop: Flower's ``Strategy.start`` loop with round hooks.

Same calls in the same order as ``Strategy.start`` (configure_train -> send_and_receive ->
aggregate_train -> central evaluation). Everything else (records, checkpoints, progress,
fault clock, reports) is a :class:`~fedsim.hooks.RoundHook`, called around each round.

With ``eval_in_background`` the central evaluation of round t runs in a background thread
while round t+1 trains (on a machine with a spare core it then costs the loop nothing), and
round t's ``on_round_end`` hooks run once round t+1 is aggregated. The records are the same
as in line: the evaluation draws no random numbers, the row and the sampler's diagnostics
are taken when the round is aggregated, and hooks that must see the run's state at exactly
that round (the checkpoint's sampler state) take it in ``on_round_aggregated``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

import torch
from flwr.app import ArrayRecord, ConfigRecord
from flwr.serverapp import Grid

from fedsim.hooks import RoundHook, RoundResult, RunContext
from fedsim.server.strategy import SampledStrategy

__all__ = ["TIMING_COLUMNS", "RoundResult", "run_rounds"]

TIMING_COLUMNS = ("selection_seconds", "probe_seconds", "train_seconds", "eval_seconds")
"""Row columns that measure time: the only ones that differ between two identical runs."""

Evaluate = Callable[[ArrayRecord], dict[str, Any]]


@dataclass
class _AggregatedRound:
    """A round whose training is done and whose evaluation may still be running."""

    result: RoundResult
    evaluation: Future | None  # of the evaluation columns; None when the round is not evaluated


def _timed(evaluate: Evaluate, arrays: ArrayRecord) -> dict[str, Any]:
    started = time.perf_counter()
    columns = evaluate(arrays)
    return {**columns, "eval_seconds": round(time.perf_counter() - started, 6)}


class _Evaluator:
    """Runs the evaluation in line, or in one background thread that keeps the caller's torch thread count."""

    def __init__(self, evaluate: Evaluate, background: bool) -> None:
        self.evaluate = evaluate
        self.executor = (ThreadPoolExecutor(max_workers=1, thread_name_prefix="fedsim-eval",
                                            initializer=torch.set_num_threads, initargs=(torch.get_num_threads(),))
                         if background else None)

    def start(self, arrays: ArrayRecord) -> Future:
        """Evaluate ``arrays``: done before returning in line, else running in the background."""
        if self.executor is not None:
            return self.executor.submit(_timed, self.evaluate, arrays)
        done: Future = Future()
        done.set_result(_timed(self.evaluate, arrays))
        return done

    def close(self) -> None:
        """Stop the background thread, if any (after its current evaluation)."""
        if self.executor is not None:
            self.executor.shutdown(wait=True)


def run_rounds(
    grid: Grid,
    strategy: SampledStrategy,
    initial_arrays: ArrayRecord,
    context: RunContext,
    train_config: dict[str, Any],
    evaluate: Evaluate,
    eval_every: int = 1,
    hooks: Sequence[RoundHook] = (),
    timeout: float = 3600.0,
    eval_in_background: bool = False,
) -> tuple[ArrayRecord, dict[str, Any]]:
    """Run rounds ``context.first_round..context.num_rounds``; return (final weights, summary).

    ``evaluate(arrays)`` returns the row's evaluation columns (``loss``, ``accuracy``, and
    optionally ``per_class_accuracy``); it runs every ``eval_every`` rounds and after the last,
    in line or (``eval_in_background``) while the next round trains. If a round fails, the
    round before it is still evaluated and handed to the hooks before the error propagates.
    """
    for hook in hooks:
        hook.on_run_start(context)
    evaluator = _Evaluator(evaluate, eval_in_background)
    arrays = initial_arrays
    pending: _AggregatedRound | None = None
    try:
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
            for hook in hooks:
                hook.on_round_aggregated(server_round, arrays)
            due = server_round % eval_every == 0 or server_round == context.num_rounds
            finished = _AggregatedRound(
                RoundResult(server_round, arrays, round_row(strategy, server_round, round_seconds),
                            strategy.record_extras()),
                evaluator.start(arrays) if due else None)
            previous, pending = pending, None
            if previous is not None:  # a hook that raises here stops the run before this round's records
                _end_round(previous, hooks)
            if eval_in_background:
                pending = finished
            else:
                _end_round(finished, hooks)
    except Exception:
        if pending is not None:  # a round failed: the round before it still gets its records
            _end_round(pending, hooks)
        raise
    else:
        if pending is not None:
            _end_round(pending, hooks)
    finally:
        evaluator.close()
    summary: dict[str, Any] = {}
    for hook in hooks:
        hook.on_run_end(summary)
    return arrays, summary


def _end_round(aggregated: _AggregatedRound, hooks: Sequence[RoundHook]) -> None:
    """Put the round's evaluation (waited for) into its row and hand the round to the hooks."""
    result = aggregated.result
    if aggregated.evaluation is not None:
        result.row.update(aggregated.evaluation.result())
    for hook in hooks:
        hook.on_round_end(result)


def round_row(strategy: SampledStrategy, server_round: int, round_seconds: float) -> dict[str, Any]:
    """The ``metrics.jsonl`` row of a finished round, before its evaluation columns are filled in.

    ``accuracy`` and ``loss`` stay None in a round that is not evaluated.
    """
    log = strategy.last_round
    return {
        "round": server_round,
        "accuracy": None,
        "loss": None,
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
