"""Typed schema of fedsim's configuration (Hydra structured configs).

Every top-level, ``train.*`` and ``hics.*`` setting has a type here, so a value of the
wrong type (``train.lr=abc``, ``progress=maybe``) is refused while the config is composed,
before anything is built. The algorithm group is typed too; the other config groups
(dataset, partitioner, model, sampler, engine, faults) stay open ``_target_`` nodes, because users plug in their own
classes; their values are checked against the target's signature when it is built
(:func:`fedsim.configuration.check_arguments`). Range rules live with the code that owns
each value (see ``fedsim.config_checks`` for the rules that span several settings).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

SCHEMA_NAME = "fedsim_schema"

IDENTITY_IGNORED_KEYS = ("progress", "resume", "crash_after_round", "engine", "device", "log_level",
                         "flower_log_level", "hooks", "tracking", "eval_in_background")
"""Settings that do not change a run's records: they never make two runs "different".

Used when a rerun sweep decides whether a folder holds the same run, by ``fedsim-compare``
when it groups runs into settings, and (``hydra.job.config.override_dirname``) for the
names of sweep folders.
"""


RETIRED_KEYS = ("algorithm.name",)
"""Settings older fedsim versions wrote into a run's ``config.yaml`` and no longer read.

They are dropped when a run folder's config is read back, so an older run can still be
skipped by a rerun sweep, resumed and compared; anything else the schema does not know
is refused. ``algorithm.name`` went when the algorithm group became typed (it was never read).
"""

@dataclass
class TrainConfig:
    """Local training on each client (sent with every round's instructions)."""

    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    epochs: int = 2
    batch_size: int = 32
    keep_optimizer_state: bool = False  # the authors' code: each client keeps its optimizer between rounds


@dataclass
class HicsConfig:
    """HiCS-FL's hyperparameters, read by the ``conf/sampler/hics*.yaml`` presets.

    Not every preset reads every key: ``hics`` reads all four, ``hics_oracle`` gamma0, lam
    and num_clusters, ``hics_diverse`` temperature, lam and num_clusters (it fixes gamma0),
    ``hics_reference`` only num_clusters (it fixes temperature, gamma0 and lam to the
    authors' code). A fixed value is overridden with ``sampler.<key>=...``, not here;
    ``conf/config.yaml`` lists the same.
    """

    temperature: float = 0.0025
    gamma0: float = 4.0
    lam: float = 10.0
    num_clusters: Optional[int] = None


@dataclass
class AlgorithmConfig:
    """The server's aggregation and FedProx's proximal term (``conf/algorithm/*.yaml``)."""

    proximal_mu: float = 0.0
    weighted_aggregation: bool = False


@dataclass
class FedsimConfig:
    """The whole configuration of one run."""

    dataset: Any = MISSING
    partitioner: Any = MISSING
    model: Any = MISSING
    sampler: Any = MISSING
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    engine: Any = MISSING
    faults: Any = MISSING
    seed: int = 0
    num_clients: int = 20
    clients_per_round: int = 5
    num_rounds: int = 30
    eval_every: int = 1
    eval_in_background: bool = True
    batch_mean_accuracy: Optional[int] = None
    device: str = "auto"
    progress: bool = True
    checkpoint_every: int = 10
    resume: Optional[str] = None
    crash_after_round: Optional[int] = None
    on_divergence: str = "stop"
    log_level: str = "INFO"
    flower_log_level: str = "ERROR"
    train: TrainConfig = field(default_factory=TrainConfig)
    hics: HicsConfig = field(default_factory=HicsConfig)
    hooks: Dict[str, Any] = field(default_factory=dict)


def register() -> None:
    """Register the schema with Hydra's ConfigStore (``conf/config.yaml`` extends it)."""
    ConfigStore.instance().store(name=SCHEMA_NAME, node=FedsimConfig)


register()
