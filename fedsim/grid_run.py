"""The server side of a run: a built :class:`Experiment`'s rounds on a Flower ``Grid``.

:func:`run_on_grid` restores from a checkpoint, writes the records, puts fedsim's hooks in
order and runs :func:`fedsim.server.loop.run_rounds` on whatever grid it is given: the one
fedsim's own engine starts (:func:`fedsim.experiment.run_experiment`), or the one Flower
hands to fedsim's ServerApp under ``flwr run`` (:mod:`fedsim.flower_app`).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from flwr.app import ArrayRecord
from omegaconf import DictConfig, OmegaConf
from torch import nn

from fedsim import __version__
from fedsim.client.training import LocalTrainingConfig
from fedsim.data.datasets import DatasetArrays
from fedsim.data.partitioners import Partitioning
from fedsim.data.stats import partition_summary
from fedsim.engine.faults import AvailabilitySchedule, FaultClock, FaultInjectingGrid
from fedsim.errors import ConfigError
from fedsim.hooks import CrashInjector, DivergenceGuard, RoundHook, RunContext
from fedsim.identity import run_identity
from fedsim.logs import FailureReport
from fedsim.reporting import ProgressBar
from fedsim.results.checkpoint import CheckpointHook, check_checkpoint, load_checkpoint, restore_sampler
from fedsim.results.learning_curve import LearningCurveHook
from fedsim.results.recorder import RecordsHook, RunRecorder, SummaryFile, strict_json
from fedsim.safe_io import RECORDS_LIMIT, parse_json, read_json
from fedsim.server.evaluation import CentralEvaluator
from fedsim.server.loop import run_rounds
from fedsim.server.strategy import SampledStrategy
from fedsim.streams import STREAMS_VERSION


@dataclass
class Experiment:
    """Everything a run needs, built and checked before training starts."""

    cfg: DictConfig
    source: Any
    dataset: DatasetArrays
    partitioning: Partitioning
    model_factory: Callable[[], nn.Module]
    initial_arrays: ArrayRecord
    strategy: SampledStrategy
    engine: Any
    train_config: LocalTrainingConfig
    sampler_name: str
    hooks: list[RoundHook] = field(default_factory=list)  # the sampler's reports, then the user's


def availability_schedule(cfg: DictConfig) -> AvailabilitySchedule | None:
    """The join/leave schedule of ``faults.availability``, if any."""
    if cfg.faults.availability is None:
        return None
    return AvailabilitySchedule(**OmegaConf.to_container(cfg.faults.availability, resolve=True))


def fault_grid(cfg: DictConfig, grid: Any) -> FaultInjectingGrid | None:
    """The engine's grid wrapped in a fault injector, when ``faults`` asks for any."""
    faults, availability = cfg.faults, availability_schedule(cfg)
    if not (faults.client_failure_prob > 0 or faults.straggler_prob > 0 or len(faults.always_fail) > 0 or availability):
        return None
    return FaultInjectingGrid(grid, cfg.num_clients, seed=cfg.seed, client_failure_prob=float(faults.client_failure_prob),
                              straggler_prob=float(faults.straggler_prob), always_fail=list(faults.always_fail),
                              availability=availability)


def run_hooks(experiment: Experiment, recorder: RunRecorder, run_dir: Path, resumed_from: int | None,
              extra: list[RoundHook]) -> list[RoundHook]:
    """fedsim's own hooks in order, with the sampler's, the user's and ``extra`` before the summary file."""
    cfg = experiment.cfg
    hooks: list[RoundHook] = [RecordsHook(recorder), FailureReport()]
    if cfg.on_divergence == "stop":
        hooks.append(DivergenceGuard())
    hooks += [CheckpointHook(run_dir, cfg.checkpoint_every, cfg.num_rounds, experiment.strategy.sampler,
                             run_identity(cfg)),
              ProgressBar(enabled=bool(cfg.progress))]
    if cfg.get("crash_after_round") is not None:
        hooks.append(CrashInjector(cfg.crash_after_round))
    identity = {"rounds_run": cfg.num_rounds, "resumed_from_round": resumed_from, "engine": experiment.engine.name,
                "sampler": experiment.sampler_name, "run_dir": str(run_dir),
                "fedsim_version": __version__, "streams_version": STREAMS_VERSION}
    return hooks + experiment.hooks + list(extra) + [LearningCurveHook(), SummaryFile(recorder, identity)]


def check_partition_file(run_dir: Path, partition: dict[str, Any]) -> None:
    """Refuse to continue a run whose ``partition.json`` is not the partition its seed gives.

    The partition is rebuilt from the seed on resume, never read from the folder; a file that
    differs (edited, or written by another fedsim version's streams) means the records and
    this run would not be of one partition.
    """
    path = run_dir / RunRecorder.PARTITION
    if not os.path.lexists(path):
        return
    if read_json(path, RECORDS_LIMIT) != parse_json(strict_json(partition)):
        raise ConfigError(f"{path} is not the partition this run's seed gives (edited, or written by another "
                          f"fedsim version); the records cannot be continued: run it again in a new folder")


def evaluation_columns(evaluator: CentralEvaluator) -> Callable[[ArrayRecord], dict[str, Any]]:
    """The round row's evaluation columns: loss, accuracy, accuracy per class (and the per-batch mean)."""
    def evaluate(arrays: ArrayRecord) -> dict[str, Any]:
        result = evaluator.evaluate(arrays)
        columns = {"loss": result.loss, "accuracy": result.accuracy, "per_class_accuracy": result.per_class_accuracy}
        if result.batch_mean_accuracy is not None:
            columns["accuracy_batch_mean"] = result.batch_mean_accuracy
        return columns
    return evaluate


@dataclasses.dataclass(frozen=True)
class ExternalRuntime:
    """Stands in for ``experiment.engine`` when Flower runs the federation (summary's ``engine``)."""

    name: str = "flwr"


def run_on_grid(experiment: Experiment, grid: Any, run_dir: str | Path, resume: bool = False,
                hooks: list[RoundHook] | None = None, engine_name: str = "flwr") -> dict[str, Any]:
    """Run the experiment's rounds on ``grid``, writing the run records into ``run_dir``.

    The same steps as :func:`fedsim.experiment.run_experiment` minus starting an engine:
    restore from the last checkpoint with ``resume``, write ``config.yaml`` and
    ``partition.json``, then run :func:`fedsim.server.loop.run_rounds` with fedsim's hooks
    (records, failure report, divergence guard, checkpoints, progress, the sampler's and
    the user's hooks, ``hooks``, learning curve, ``summary.json``). Returns the summary.
    """
    cfg, run_dir = experiment.cfg, Path(run_dir)
    if resume:
        RunRecorder.check_records(run_dir, cfg.num_rounds)
    checkpoint = load_checkpoint(run_dir) if resume else None
    partition = partition_summary(experiment.dataset.y_train, experiment.partitioning, experiment.dataset.num_classes)
    if checkpoint is not None:
        check_partition_file(run_dir, partition)
        check_checkpoint(checkpoint, run_identity(cfg), experiment.initial_arrays,
                         [r.get("round") for r in RunRecorder.read_rows(run_dir)], cfg.num_rounds)
        restore_sampler(experiment.strategy.sampler, checkpoint)
    done = checkpoint.server_round if checkpoint else 0
    recorder = RunRecorder(run_dir, resume_after_round=done if resume else None)
    if not resume:
        recorder.write_config(OmegaConf.to_yaml(cfg, resolve=True))
    if checkpoint is None or not os.path.lexists(run_dir / RunRecorder.PARTITION):  # round 1 rebuilds it
        recorder.write_partition(partition)
    evaluator = CentralEvaluator(experiment.dataset.x_test, experiment.dataset.y_test, experiment.model_factory,
                                 device=cfg.device, batch_mean_size=cfg.get("batch_mean_accuracy"))
    context = RunContext(run_dir, cfg, done + 1, cfg.num_rounds, experiment.dataset.num_classes, resumed=resume)
    # The summary names the runtime that ran the clients, not the configured (unused) engine.
    labelled = dataclasses.replace(experiment, engine=ExternalRuntime(engine_name))
    all_hooks = run_hooks(labelled, recorder, run_dir, done if resume else None, hooks or [])
    faulty = fault_grid(cfg, grid)
    clock = [FaultClock(faulty)] if faulty is not None else []
    _, summary = run_rounds(
        faulty or grid, experiment.strategy, checkpoint.arrays if checkpoint else experiment.initial_arrays,
        context, experiment.train_config.as_message_config(), evaluation_columns(evaluator), cfg.eval_every,
        hooks=clock + all_hooks, eval_in_background=bool(cfg.get("eval_in_background", False)))
    return summary
