"""From a validated config to a finished run: build the pieces, run the rounds, record.

This is the one place that wires datasets, partitioners, models, the sampler, the
strategy, the engine and the recorder together; each piece knows nothing of the others.
"""

from __future__ import annotations

import functools
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from flwr.app import ArrayRecord
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from fedsim.client.app import make_client_app
from fedsim.client.runtime import ClientRuntime
from fedsim.client.training import LocalTrainingConfig
from fedsim.config_checks import validate_config
from fedsim.data.datasets import DatasetArrays
from fedsim.data.partitioners import Partitioning, as_partitioning, check_partitioning
from fedsim.data.stats import partition_summary
from fedsim.errors import ConfigError
from fedsim.models.networks import build_model
from fedsim.engine.faults import AvailabilitySchedule, FaultInjectingGrid
from fedsim.results.checkpoint import load_checkpoint, restore_sampler, save_checkpoint
from fedsim.results.entropy_report import write_entropy_report
from fedsim.results.recorder import RunRecorder
from fedsim.server.evaluation import CentralEvaluator
from fedsim.server.loop import RoundResult, run_rounds
from fedsim.server.strategy import SamplingFedAvg

# Independent random streams derived from the run seed: samplers compared under one seed
# share partitions, initial model and client shuffling; only the sampler's stream differs.
PARTITION_STREAM = 1
INIT_STREAM = 2


def build(node: DictConfig, setting: str, **kwargs: Any) -> Any:
    """Instantiate a config node, reporting any failure as a one-line ConfigError."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as exc:
        cause = exc.__cause__ or exc
        if isinstance(cause, ConfigError):
            raise cause from None
        raise ConfigError(f"{setting}: {cause}") from None
    except ConfigError:
        raise
    except Exception as exc:  # e.g. a _target_ that does not import
        raise ConfigError(f"{setting}: {exc}") from None


def stream(seed: int, purpose: int) -> np.random.Generator:
    """A numpy generator for one purpose, derived from the run seed."""
    return np.random.default_rng(np.random.SeedSequence([seed, purpose]))


@dataclass
class Experiment:
    """Everything a run needs, built and checked before training starts."""

    cfg: DictConfig
    dataset: DatasetArrays
    partitioning: Partitioning
    model_factory: Callable[[], nn.Module]
    initial_arrays: ArrayRecord
    strategy: SamplingFedAvg
    engine: Any
    train_config: LocalTrainingConfig


def model_factory_for(cfg: DictConfig, dataset: DatasetArrays) -> Callable[[], nn.Module]:
    """A picklable zero-argument constructor of the configured network."""
    options = OmegaConf.to_container(cfg.model, resolve=True)
    name = options.pop("name", "auto")
    return functools.partial(build_model, name, dataset.name, dataset.input_shape, dataset.num_classes, **options)


def availability_schedule(cfg: DictConfig) -> AvailabilitySchedule | None:
    """The join/leave schedule of ``faults.availability``, if any."""
    if cfg.faults.availability is None:
        return None
    return AvailabilitySchedule(**OmegaConf.to_container(cfg.faults.availability, resolve=True))


def expected_nodes(cfg: DictConfig) -> int:
    """How many clients are connected when the first round starts."""
    schedule = availability_schedule(cfg)
    return cfg.num_clients if schedule is None else int(schedule.available(1, cfg.num_clients).sum())


def build_experiment(cfg: DictConfig) -> Experiment:
    """Validate ``cfg`` and build every piece; raises ConfigError on bad input."""
    validate_config(cfg)
    source = build(cfg.dataset, "dataset")
    partitioner = build(cfg.partitioner, "partitioner")
    sampler = build(cfg.sampler, "sampler")
    engine = build(cfg.engine, "engine")
    dataset = source.load()
    if cfg.num_clients > len(dataset.y_train):
        raise ConfigError(f"num_clients={cfg.num_clients} exceeds the {len(dataset.y_train)} training examples")
    partitioning = as_partitioning(
        partitioner.split(dataset.y_train, cfg.num_clients, stream(cfg.seed, PARTITION_STREAM))
    )
    check_partitioning(partitioning, len(dataset.y_train), cfg.num_clients)
    model_factory = model_factory_for(cfg, dataset)
    torch.manual_seed(int(np.random.SeedSequence([cfg.seed, INIT_STREAM]).generate_state(1)[0]))
    initial_arrays = ArrayRecord(model_factory().state_dict())
    strategy = SamplingFedAvg(
        sampler=sampler,
        clients_per_round=cfg.clients_per_round,
        weighted_aggregation=bool(cfg.algorithm.weighted_aggregation),
        proximal_mu=float(cfg.algorithm.proximal_mu),
        seed=cfg.seed,
        num_rounds=cfg.num_rounds,
        expected_nodes=expected_nodes(cfg),
        client_sizes=partitioning.sizes.tolist(),
    )
    train_config = LocalTrainingConfig.from_mapping(OmegaConf.to_container(cfg.train, resolve=True))
    return Experiment(cfg, dataset, partitioning, model_factory, initial_arrays, strategy, engine, train_config)


def fault_wrapper(cfg: DictConfig) -> Callable[[Any], Any]:
    """Wrap the engine's grid in a fault injector when ``faults`` asks for any."""
    faults = cfg.faults
    availability = availability_schedule(cfg)
    active = (
        faults.client_failure_prob > 0 or faults.straggler_prob > 0 or len(faults.always_fail) > 0 or availability
    )
    if not active:
        return lambda grid: grid
    return lambda grid: FaultInjectingGrid(
        grid,
        cfg.num_clients,
        seed=cfg.seed,
        client_failure_prob=float(faults.client_failure_prob),
        straggler_prob=float(faults.straggler_prob),
        always_fail=list(faults.always_fail),
        availability=availability,
    )


def run_experiment(
    experiment: Experiment,
    run_dir: str | Path,
    on_round: Callable[[RoundResult], None] | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Run the federation on the configured engine, recording as rounds finish.

    With ``resume``, continue the run in ``run_dir`` from its last checkpoint: the
    global model and the sampler's state (random stream included) are restored, rows
    of later rounds are dropped and recomputed, so the result equals an uninterrupted run.
    """
    cfg = experiment.cfg
    run_dir = Path(run_dir)
    checkpoint = load_checkpoint(run_dir) if resume else None
    done = checkpoint.server_round if checkpoint else 0
    recorder = RunRecorder(run_dir, resume_after_round=done if resume else None)
    if not resume:
        recorder.write_config(OmegaConf.to_yaml(cfg, resolve=True))
        recorder.write_partition(
            partition_summary(experiment.dataset.y_train, experiment.partitioning, experiment.dataset.num_classes)
        )
    initial_arrays = experiment.initial_arrays
    if checkpoint is not None:
        restore_sampler(experiment.strategy.sampler, checkpoint)
        initial_arrays = checkpoint.arrays
    runtime = ClientRuntime(
        source=build(cfg.dataset, "dataset"),
        client_indices=experiment.partitioning.client_indices,
        model_factory=experiment.model_factory,
        dataset=experiment.dataset,
    )
    client_app = make_client_app(runtime)
    evaluator = CentralEvaluator(experiment.dataset.x_test, experiment.dataset.y_test, experiment.model_factory)
    accuracies = [row["accuracy"] for row in recorder.rows() if row.get("accuracy") is not None]
    started = time.perf_counter()

    def record(result: RoundResult) -> None:
        recorder.log_round(result.row)
        diagnostics = experiment.strategy.record_extras()
        if diagnostics:
            recorder.log_sampler({"round": result.server_round, **diagnostics})
        if result.row["accuracy"] is not None:
            accuracies.append(result.row["accuracy"])
        every = cfg.checkpoint_every
        if every and (result.server_round % every == 0 or result.server_round == cfg.num_rounds):
            save_checkpoint(run_dir, result.server_round, result.arrays, experiment.strategy.sampler)
        if on_round is not None:
            on_round(result)
        if cfg.get("crash_after_round") == result.server_round:
            os.kill(os.getpid(), signal.SIGKILL)  # injected crash, for testing resume

    wrap = fault_wrapper(cfg)

    def server_main(grid: Any) -> None:
        run_rounds(
            wrap(grid),
            experiment.strategy,
            initial_arrays,
            cfg.num_rounds,
            experiment.train_config.as_dict(),
            evaluator,
            eval_every=cfg.eval_every,
            on_round=record,
            first_round=done + 1,
        )

    try:
        experiment.engine.run(client_app, cfg.num_clients, server_main)
    finally:
        runtime.release()
    rows = recorder.rows()
    summary = {
        "final_accuracy": accuracies[-1] if accuracies else None,
        "best_accuracy": max(accuracies) if accuracies else None,
        "rounds_run": cfg.num_rounds,
        "wall_seconds": round(time.perf_counter() - started, 3),
        "resumed_from_round": done if resume else None,
        "failed_client_rounds": sum(len(r.get("failed", [])) for r in rows),
        "rejected_replies": sum(len(r.get("rejected", {})) for r in rows),
        "engine": experiment.engine.name,
        "sampler": type(experiment.strategy.sampler).__name__,
        "run_dir": str(run_dir),
    }
    entropy = write_entropy_report(run_dir)
    if entropy is not None:
        summary["entropy_spearman"] = entropy["spearman"]
    recorder.write_summary(summary)
    return summary
