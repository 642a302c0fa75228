"""Checks of user settings, run before any data is loaded or any training starts.

Each failure is a :class:`~fedsim.errors.ConfigError` whose message names the setting
and the fix; the CLI prints it as one line and exits with code 2.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from fedsim.errors import ConfigError


def _positive_int(cfg: DictConfig, key: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{key}={value}: must be a whole number >= 1")
    return value


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
    if not isinstance(cfg.seed, int) or cfg.seed < 0:
        raise ConfigError(f"seed={cfg.seed}: must be a whole number >= 0")

    train = cfg.train
    if train.optimizer not in ("sgd", "adam"):
        raise ConfigError(f"train.optimizer={train.optimizer}: choose sgd or adam")
    if not float(train.lr) > 0:
        raise ConfigError(f"train.lr={train.lr}: must be > 0")
    _positive_int(cfg, "train.epochs", train.epochs)
    _positive_int(cfg, "train.batch_size", train.batch_size)
    if float(train.momentum) < 0 or float(train.momentum) >= 1:
        raise ConfigError(f"train.momentum={train.momentum}: must be in [0, 1)")
    if float(train.weight_decay) < 0:
        raise ConfigError(f"train.weight_decay={train.weight_decay}: must be >= 0")

    if float(cfg.algorithm.proximal_mu) < 0:
        raise ConfigError(f"algorithm.proximal_mu={cfg.algorithm.proximal_mu}: must be >= 0 (0 = FedAvg)")

    if not isinstance(cfg.checkpoint_every, int) or cfg.checkpoint_every < 0:
        raise ConfigError(f"checkpoint_every={cfg.checkpoint_every}: must be a whole number >= 0 (0 = no checkpoints)")
    crash = cfg.get("crash_after_round")
    if crash is not None and (not isinstance(crash, int) or crash < 1):
        raise ConfigError(f"crash_after_round={crash}: must be a round number >= 1 or null")
    faults = cfg.faults
    for key in ("client_failure_prob", "straggler_prob"):
        if not 0.0 <= float(faults[key]) <= 1.0:
            raise ConfigError(f"faults.{key}={faults[key]}: must be a probability in [0, 1]")
    for pid in faults.always_fail:
        if not isinstance(pid, int) or not 0 <= pid < num_clients:
            raise ConfigError(f"faults.always_fail: {pid} is not a partition id in [0, {num_clients})")

    partitioner = cfg.partitioner
    if "alpha" in partitioner and not float(partitioner.alpha) > 0:
        raise ConfigError(f"partitioner.alpha={partitioner.alpha}: must be > 0 (e.g. 0.1 for strong skew)")
    if "alphas" in partitioner:
        for alpha in partitioner.alphas:
            if not float(alpha) > 0:
                raise ConfigError(f"partitioner.alphas: {alpha} must be > 0")
