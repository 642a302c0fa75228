"""Range rules of the top-level, ``train.*``, ``algorithm.*`` and ``faults.*`` settings.

Types are enforced by the schema (``fedsim.config_schema``) while the config is composed;
this module holds the one copy of each range rule of those settings and of the rules that
span several settings (``clients_per_round <= num_clients``). A class built from a config
group checks its own arguments in its constructor (partitioners their alphas, samplers
their hyperparameters, engines their worker counts). Runs once, in
:func:`fedsim.experiment.build_experiment`, before any data is loaded.

Each failure is a :class:`~fedsim.errors.ConfigError` whose message names the setting
and the fix; the CLI prints it as one line and exits with code 2.
"""

from __future__ import annotations

import math
from typing import Any

from omegaconf import DictConfig

from fedsim.errors import ConfigError
from fedsim.streams import MAX_SEED


def _positive_int(cfg: DictConfig, key: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{key}={value}: must be a whole number >= 1")
    return value


def _finite(key: str, value: Any, low: float, high: float | None = None, low_open: bool = False) -> float:
    """``value`` as a finite float in [low, high) (or (low, ...) with ``low_open``)."""
    number = float(value)
    too_low = number <= low if low_open else number < low
    if not math.isfinite(number) or too_low or (high is not None and number >= high):
        bound = f"> {low:g}" if low_open else f">= {low:g}"
        span = f"in [{low:g}, {high:g})" if high is not None else bound
        raise ConfigError(f"{key}={value}: must be a finite number {span}")
    return number


def validate_config(cfg: DictConfig) -> None:
    """Raise ConfigError for the first invalid setting found."""
    num_clients = _positive_int(cfg, "num_clients", cfg.num_clients)
    per_round = _positive_int(cfg, "clients_per_round", cfg.clients_per_round)
    if per_round > num_clients:
        raise ConfigError(
            f"clients_per_round={per_round} exceeds num_clients={num_clients}; "
            f"set clients_per_round <= num_clients"
        )
    _positive_int(cfg, "num_rounds", cfg.num_rounds)
    _positive_int(cfg, "eval_every", cfg.eval_every)
    if cfg.get("batch_mean_accuracy") is not None:
        _positive_int(cfg, "batch_mean_accuracy", cfg.batch_mean_accuracy)
    if not isinstance(cfg.seed, int) or not 0 <= cfg.seed <= MAX_SEED:
        raise ConfigError(f"seed={cfg.seed}: must be a whole number from 0 to {MAX_SEED}")

    train = cfg.train
    if train.optimizer not in ("sgd", "adam"):
        raise ConfigError(f"train.optimizer={train.optimizer}: choose sgd or adam")
    _finite("train.lr", train.lr, 0.0, low_open=True)
    _positive_int(cfg, "train.epochs", train.epochs)
    _positive_int(cfg, "train.batch_size", train.batch_size)
    _finite("train.momentum", train.momentum, 0.0, 1.0)
    _finite("train.weight_decay", train.weight_decay, 0.0)
    if cfg.algorithm.get("proximal_mu") is not None:
        _finite("algorithm.proximal_mu", cfg.algorithm.proximal_mu, 0.0)

    if cfg.on_divergence not in ("stop", "continue"):
        raise ConfigError(f"on_divergence={cfg.on_divergence}: choose stop or continue")
    if not isinstance(cfg.checkpoint_every, int) or cfg.checkpoint_every < 0:
        raise ConfigError(f"checkpoint_every={cfg.checkpoint_every}: must be a whole number >= 0 (0 = no checkpoints)")
    crash = cfg.get("crash_after_round")
    if crash is not None and (not isinstance(crash, int) or crash < 1):
        raise ConfigError(f"crash_after_round={crash}: must be a round number >= 1 or null")
    faults = cfg.faults
    for key in ("client_failure_prob", "straggler_prob"):
        if not 0.0 <= float(faults[key]) <= 1.0:  # NaN fails too
            raise ConfigError(f"faults.{key}={faults[key]}: must be a probability in [0, 1]")
    for pid in faults.always_fail:
        if not isinstance(pid, int) or not 0 <= pid < num_clients:
            raise ConfigError(f"faults.always_fail: {pid} is not a partition id in [0, {num_clients})")
