"""Round hooks: the side jobs of a run (records, checkpoints, progress, faults, reports).

``fedsim.server.loop.run_rounds`` owns the round loop; everything else that happens
around a round is a :class:`RoundHook` handed to it, in order:

- ``on_run_start(context)`` once, before the first round to run (also on resume);
- ``on_round_start(server_round)`` before a round's selection;
- ``on_round_aggregated(server_round, arrays)`` right after a round is aggregated, before its
  evaluation: the place to take state that must be this round's (the sampler's, for a
  checkpoint), since with ``eval_in_background`` the round's ``on_round_end`` comes only
  after the next round has trained;
- ``on_round_end(result)`` after a round is aggregated and evaluated;
- ``on_run_end(summary)`` once after the last round: add what the hook knows to the run's
  summary dict (the summary file is written by the last hook).

fedsim's own hooks live next to what they serve (``RecordsHook`` and ``SummaryFile`` in
``fedsim.results.recorder``, ``CheckpointHook`` in ``fedsim.results.checkpoint``,
``ProgressBar`` in ``fedsim.reporting``, ``FaultClock`` in ``fedsim.engine.faults``,
``EntropyReportHook`` in ``fedsim.results.entropy_report``). A sampler's own reports are
attached by its config (``sampler.hooks``); a user's hook by ``hooks.<name>._target_``.
"""

from __future__ import annotations

import math
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedsim.errors import NON_FINITE, RunDiverged

if TYPE_CHECKING:
    from flwr.app import ArrayRecord


@dataclass
class RunContext:
    """What a hook may want to know about the run it serves."""

    run_dir: Path
    config: Any  # the run's resolved DictConfig
    first_round: int
    num_rounds: int
    num_classes: int
    resumed: bool = False


@dataclass
class RoundResult:
    """One finished round, as handed to ``on_round_end``."""

    server_round: int
    arrays: "ArrayRecord"
    row: dict[str, Any]
    sampler_diagnostics: dict[str, Any] = field(default_factory=dict)


class RoundHook:
    """Base class of round hooks: every method is optional (default: do nothing)."""

    def on_run_start(self, context: RunContext) -> None:
        """Called once before the first round to run."""

    def on_round_start(self, server_round: int) -> None:
        """Called before a round's selection."""

    def on_round_aggregated(self, server_round: int, arrays: "ArrayRecord") -> None:
        """Called right after a round is aggregated, before its evaluation and ``on_round_end``."""

    def on_round_end(self, result: RoundResult) -> None:
        """Called after a round is aggregated and evaluated."""

    def on_run_end(self, summary: dict[str, Any]) -> None:
        """Called once after the last round; may add entries to ``summary``."""


class CrashInjector(RoundHook):
    """Kill this process with SIGKILL after a given round (``crash_after_round``; tests resume)."""

    def __init__(self, after_round: int) -> None:
        self.after_round = int(after_round)

    def on_round_end(self, result: RoundResult) -> None:
        """SIGKILL once the chosen round's records are written."""
        if result.server_round == self.after_round:
            os.kill(os.getpid(), signal.SIGKILL)


class DivergenceGuard(RoundHook):
    """Stops the run (:class:`~fedsim.errors.RunDiverged`, exit code 3) when training diverges.

    Diverged means: the evaluated test loss is not finite, or every reply of a round was
    rejected for non-finite values or a non-finite training loss (local training blew up
    on every client, so the global model can no longer move). Put it after the records
    hook, so the round that diverged is recorded. ``on_divergence=continue`` leaves it out.
    """

    def on_round_end(self, result: RoundResult) -> None:
        """Raise RunDiverged if this round shows divergence."""
        row = result.row
        loss = row.get("loss")
        if loss is not None and not math.isfinite(loss):
            raise RunDiverged(f"training diverged at round {row['round']}: the test loss is {loss}")
        reasons = list(row.get("rejected", {}).values())
        blew_up = [r for r in reasons if NON_FINITE in r or "not a finite number" in r]
        if row.get("selected") and blew_up and len(blew_up) == len(row["selected"]):
            raise RunDiverged(f"training diverged at round {row['round']}: every client's update was "
                              f"non-finite ({blew_up[0]})")
