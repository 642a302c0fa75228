"""From a config to a finished run: build the pieces, then run the rounds with hooks.

This is the one place that wires datasets, partitioners, models, the sampler, the
strategy, the engine and the round hooks together; each piece knows nothing of the others.
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from flwr.app import ArrayRecord
from omegaconf import DictConfig, OmegaConf
from torch import nn

from fedsim.client.app import make_client_app
from fedsim.client.runtime import ClientRuntime
from fedsim.client.training import LocalTrainingConfig
from fedsim.config_checks import validate_config
from fedsim.configuration import build, build_hooks, without
from fedsim.data.datasets import DatasetArrays
from fedsim.data.partitioners import as_partitioning, check_partitioning
from fedsim.devices import resolve_device
from fedsim.errors import ConfigError, first_line
from fedsim.grid_run import Experiment, availability_schedule, run_on_grid
from fedsim.hooks import RoundHook
from fedsim.models.networks import OUTPUT_LAYER, output_layer_names
from fedsim.server.strategy import SampledStrategy, StrategyMismatch
from fedsim.streams import Stream, generator, integer_seed

__all__ = ["Experiment", "build_experiment", "run_experiment"]

def model_factory_for(cfg: DictConfig, dataset: DatasetArrays) -> Callable[[], nn.Module]:
    """A picklable zero-argument constructor of ``cfg.model`` for this dataset.

    The model target is called as ``target(input_shape, num_classes, **settings)``, plus
    ``dataset=<name>`` when it takes a ``dataset`` argument (``model=auto``). The network is
    built once and run on one zero input, so a model that does not fit the dataset's input
    shape is a one-line ConfigError here, before any training.
    """
    constructor = build(cfg.model, "model")
    extra = {}
    target = constructor.func if isinstance(constructor, functools.partial) else constructor
    if "dataset" in inspect.signature(target).parameters:
        extra["dataset"] = dataset.name
    factory = functools.partial(constructor, tuple(dataset.input_shape), dataset.num_classes, **extra)
    try:
        model = factory().eval()
        with torch.no_grad():
            out = model(torch.zeros(2, *dataset.input_shape))
    except Exception as exc:
        reason = first_line(exc)
        raise ConfigError(
            f"model: {cfg.model._target_.rsplit('.', 1)[-1]} does not fit dataset {dataset.name} "
            f"(input shape {tuple(dataset.input_shape)}): {reason}; choose model=auto or a model for that input"
        ) from None
    if tuple(out.shape) != (2, dataset.num_classes):
        raise ConfigError(f"model: output shape {tuple(out.shape[1:])} does not match {dataset.num_classes} classes")
    check_output_layer(model, cfg.model._target_.rsplit(".", 1)[-1], dataset.num_classes)
    return factory


def check_output_layer(model: nn.Module, name: str, num_classes: int) -> None:
    """Refuse (one line) a model without the output layer fedsim's clients report to the samplers.

    Every client sends the update of the layer named ``OUTPUT_LAYER`` (``head``: weight and
    bias) with its reply; HiCS-FL and the reports read it. Without it every client would
    fail every round, so the run stops here instead.
    """
    state = model.state_dict()
    missing = [key for key in output_layer_names() if key not in state]
    if missing:
        raise ConfigError(f"model: {name} has no output layer {OUTPUT_LAYER!r} ({', '.join(missing)} missing); "
                          f"name its last Linear layer {OUTPUT_LAYER} (self.{OUTPUT_LAYER} = nn.Linear(..., "
                          f"num_classes))")
    if tuple(state[output_layer_names()[1]].shape) != (num_classes,):
        raise ConfigError(f"model: {name}.{OUTPUT_LAYER} has {tuple(state[output_layer_names()[1]].shape)} biases, "
                          f"not one per class ({num_classes}); make {OUTPUT_LAYER} the layer that outputs the logits")


def expected_nodes(cfg: DictConfig) -> int:
    """How many clients are connected when the first round starts."""
    schedule = availability_schedule(cfg)
    return cfg.num_clients if schedule is None else int(schedule.available(1, cfg.num_clients).sum())


def sampler_name(cfg: DictConfig) -> str:
    """The sampler's config name (``hics``, ``divfl_stale``, ...), else its class name."""
    return str(cfg.sampler.get("name") or cfg.sampler._target_.rsplit(".", 1)[-1])


def build_experiment(cfg: DictConfig) -> Experiment:
    """Validate ``cfg`` and build every piece; raises ConfigError on bad input."""
    validate_config(cfg)
    resolve_device(cfg.device)  # a device that is not there stops here, in one line
    source = build(cfg.dataset, "dataset")
    partitioner = build(cfg.partitioner, "partitioner")
    sampler = build(without(cfg.sampler, "hooks", "name"), "sampler")
    engine = build(cfg.engine, "engine")
    dataset = source.load()
    if cfg.num_clients > len(dataset.y_train):
        raise ConfigError(f"num_clients={cfg.num_clients} exceeds the {len(dataset.y_train)} training examples")
    partitioning = as_partitioning(
        partitioner.split(dataset.y_train, cfg.num_clients, generator(cfg.seed, Stream.PARTITION))
    )
    check_partitioning(partitioning, len(dataset.y_train), cfg.num_clients)
    model_factory = model_factory_for(cfg, dataset)
    torch.manual_seed(integer_seed(cfg.seed, Stream.INITIAL_MODEL))
    initial_arrays = ArrayRecord(model_factory().state_dict())
    algorithm = build(cfg.algorithm, "algorithm")
    try:
        strategy = SampledStrategy(
            algorithm,
            sampler=sampler,
            clients_per_round=cfg.clients_per_round,
            seed=cfg.seed,
            num_rounds=cfg.num_rounds,
            expected_nodes=expected_nodes(cfg),
            client_sizes=partitioning.sizes.tolist(),
        )
    except StrategyMismatch as exc:
        raise ConfigError(f"algorithm: {exc}") from None
    except ValueError as exc:  # the sampler refusing the federation's shape
        raise ConfigError(f"sampler: {exc}") from None
    if sampler.needs.true_label_distributions:  # oracle samplers only
        labels = [dataset.y_train[idx] for idx in partitioning.client_indices]
        sampler.receive_label_distributions(np.stack([np.bincount(y, minlength=dataset.num_classes) for y in labels]))
    train_config = LocalTrainingConfig.from_mapping(OmegaConf.to_container(cfg.train, resolve=True))
    hooks = build_hooks(cfg.sampler.get("hooks"), "sampler.hooks") + build_hooks(cfg.get("hooks"), "hooks")
    return Experiment(cfg, source, dataset, partitioning, model_factory, initial_arrays, strategy, engine,
                      train_config, sampler_name(cfg), hooks)


def run_experiment(experiment: Experiment, run_dir: str | Path, resume: bool = False,
                   hooks: list[RoundHook] | None = None) -> dict[str, Any]:
    """Run the federation on the configured engine; return the run's summary.

    With ``resume``, continue the run in ``run_dir`` from its last checkpoint: the global
    model and the sampler's state (random stream included) are restored, rows of later
    rounds are dropped and recomputed, so the result equals an uninterrupted run.
    ``hooks`` are extra round hooks (run after fedsim's own and the configured ones).
    """
    cfg = experiment.cfg
    runtime = ClientRuntime(experiment.source, experiment.partitioning.client_indices, experiment.model_factory,
                            dataset=experiment.dataset, device=cfg.device)
    outcome: dict[str, Any] = {}

    def server_main(grid: Any) -> None:
        outcome["summary"] = run_on_grid(experiment, grid, run_dir, resume, hooks, engine_name=experiment.engine.name)

    try:
        experiment.engine.run(make_client_app(runtime), cfg.num_clients, server_main)
    finally:
        runtime.release()
    return outcome["summary"]
