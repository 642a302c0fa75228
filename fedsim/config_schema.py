"""Typed schema of fedsim's configuration (Hydra structured configs).

Every top-level, ``train.*`` and ``hics.*`` setting has a type here, so a value of the
wrong type (``train.lr=abc``, ``progress=maybe``) is refused while the config is composed,
before anything is built. Each setting also says here whether it changes a run's records
(``metadata``; :mod:`fedsim.identity` reads it). The config groups (dataset, partitioner,
model, sampler, algorithm, engine, faults) stay open ``_target_`` nodes, because users plug
in their own classes; their values are checked against the target's signature when it is built
(:func:`fedsim.configuration.check_arguments`). Range rules live with the code that owns
each value (see ``fedsim.config_checks`` for the rules that span several settings).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field, fields
from typing import Any, Dict, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from fedsim.selection.hics import HiCSSampler

SCHEMA_NAME = "fedsim_schema"

HOW = {"identity": False, "resume": True}
"""Metadata of a setting that changes how a run computes, not what: it may be given with ``resume=``."""
OBSERVES = {"identity": False}
"""Metadata of a setting that does not change a run's records (it observes, or is read through others)."""

RETIRED_KEYS = ("algorithm.name",)
"""Settings older fedsim versions wrote into a run's ``config.yaml`` and no longer read.

They are dropped when a run folder's config is read back, so an older run can still be
skipped by a rerun sweep, resumed and compared; anything else the schema does not know
is refused. ``algorithm.name`` went when the algorithm group became typed (it was never read).
"""


def upgrade_legacy(plain: dict[str, Any]) -> None:
    """Bring a config written by an older fedsim to today's form, in place.

    Drops :data:`RETIRED_KEYS`; an ``algorithm`` without ``_target_`` (before samplers wrapped
    any Flower strategy) names the class that computes what it did: FedProx when it had a
    proximal term, else FedAvg.
    """
    for dotted in RETIRED_KEYS:
        *parents, leaf = dotted.split(".")
        node: Any = plain
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    algorithm = plain.get("algorithm")
    if isinstance(algorithm, dict) and "_target_" not in algorithm:
        mu = algorithm.pop("proximal_mu", 0.0)
        algorithm["_target_"] = "fedsim.server.algorithms." + ("FedProx" if mu else "FedAvg")
        if mu:
            algorithm["proximal_mu"] = mu


@dataclass
class TrainConfig:
    """Local training on each client (sent with every round's instructions)."""

    optimizer: str = "sgd"  # sgd | adam
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    epochs: int = 2
    batch_size: int = 32
    # true: each client keeps its SGD momentum (optimizer state) between participations, as the
    # HiCS-FL code does (it lives with the clients, so such a run is not continued from a checkpoint)
    keep_optimizer_state: bool = False


_HICS_DEFAULTS = {name: p.default for name, p in inspect.signature(HiCSSampler).parameters.items()}


@dataclass
class HicsConfig:
    """HiCS-FL's hyperparameters, read by the ``conf/sampler/hics*.yaml`` presets.

    Not every preset reads every key: ``hics`` reads all four, ``hics_oracle`` gamma0, lam
    and num_clusters, ``hics_diverse`` temperature, lam and num_clusters (it fixes gamma0),
    ``hics_reference`` only num_clusters and fallback_tree (it fixes temperature, gamma0 and
    lam to the authors' code). A fixed value is overridden with ``sampler.<key>=...``, not here;
    ``conf/config.yaml`` lists the same. The defaults are HiCSSampler's (one home).
    """

    temperature: float = _HICS_DEFAULTS["temperature"]  # T in softmax(delta_b / T)
    gamma0: float = _HICS_DEFAULTS["gamma0"]  # initial annealing strength gamma_0
    lam: float = _HICS_DEFAULTS["lam"]  # lambda: weight of the entropy gap in the distance
    num_clusters: Optional[int] = _HICS_DEFAULTS["num_clusters"]  # M; None = clients_per_round (the paper's M = K)
    fallback_tree: str = _HICS_DEFAULTS["fallback_tree"]  # the code's fallback: Ward on the distance matrix's rows ("rows")


@dataclass
class FedsimConfig:
    """The whole configuration of one run."""

    dataset: Any = MISSING
    partitioner: Any = MISSING
    model: Any = MISSING
    sampler: Any = MISSING
    algorithm: Any = MISSING  # a Flower Strategy by _target_ (conf/algorithm/)
    engine: Any = field(default=MISSING, metadata=HOW)
    faults: Any = MISSING
    seed: int = 0
    num_clients: int = 20
    clients_per_round: int = 5
    num_rounds: int = 30
    eval_every: int = 1
    # evaluate round t while round t+1 trains (same records; uses a spare core); false: in line
    eval_in_background: bool = field(default=True, metadata=OBSERVES)
    # a batch size B: also record accuracy_batch_mean, the mean of per-batch accuracies over test
    # batches of B (what the authors' HiCS-FL code reports)
    batch_mean_accuracy: Optional[int] = None
    device: str = field(default="auto", metadata=HOW)  # auto (CUDA when present) | cpu | cuda | cuda:N
    progress: bool = field(default=True, metadata=HOW)  # progress bar with round, accuracy and loss
    checkpoint_every: int = 10  # rounds between checkpoints (0 = none); the last round is always saved
    # a run folder to continue from its last checkpoint (with its saved config)
    resume: Optional[str] = field(default=None, metadata=HOW)
    # fault injection for testing resume: SIGKILL this process after that round
    crash_after_round: Optional[int] = field(default=None, metadata=OBSERVES)
    on_divergence: str = "stop"  # stop (exit 3) at a non-finite loss or model | continue
    log_level: str = field(default="INFO", metadata=HOW)  # console and run-folder log: DEBUG | INFO | WARNING | ERROR
    flower_log_level: str = field(default="ERROR", metadata=HOW)  # Flower's own log level
    train: TrainConfig = field(default_factory=TrainConfig)
    hics: HicsConfig = field(default_factory=HicsConfig, metadata=OBSERVES)  # read only through sampler presets
    # your own round hooks, by name: hooks.<name>._target_=pkg.module.Class (examples/my_plugins.py);
    # tracking=... adds fedsim's. A resumed run takes them from the resuming command, never the folder.
    hooks: Dict[str, Any] = field(default_factory=dict, metadata=HOW)


NOT_IDENTITY = tuple(f.name for f in fields(FedsimConfig) if f.metadata.get("identity") is False) + ("tracking",)
"""Top-level settings that do not change a run's records (``tracking`` is a config group that adds hooks)."""

RESUME_SETTINGS = tuple(f.name for f in fields(FedsimConfig) if f.metadata.get("resume"))
"""Settings that may be given with ``resume=``: how to run comes from the command, what to run from the folder.

``hooks`` is one of them: the hooks and tracking of a resumed run are the resuming person's
(none unless given), never those a run folder names, since a folder may come from anyone.
``tracking=...`` (a config group that fills ``hooks``) may be given too."""


def register() -> None:
    """Register the schema with Hydra's ConfigStore (``conf/config.yaml`` extends it)."""
    ConfigStore.instance().store(name=SCHEMA_NAME, node=FedsimConfig)


register()
