"""fedsim as a Flower App: ``flwr run .`` runs the same experiment as the ``fedsim`` command.

``pyproject.toml`` names :data:`server_app` and :data:`client_app` as the app's components.
Both build the experiment from fedsim's Hydra config (:func:`fedsim.config.compose_config`);
Flower's run config (``[tool.flwr.app.config]`` plus ``flwr run --run-config ...``) gives the
overrides: a key in kebab-case becomes the snake_case setting (``num-rounds=20`` ->
``num_rounds=20``), dotted keys reach nested settings (``train.lr=0.01``), ``experiment``
selects a preset (``+experiment=...``). Run-config values equal to the app's defaults
(:data:`DEFAULT_RUN_CONFIG`, the same values as ``conf/config.yaml``) and empty strings are
not passed on, so a preset's own values win over them. Keys of the app itself, not settings:

- ``overrides``: any further Hydra overrides, space-separated (``overrides='faults=unreliable
  train.momentum=0'``): Flower refuses ``--run-config`` keys that ``[tool.flwr.app.config]``
  does not declare, so settings not declared there go through this key;
- ``run-dir``: the run folder (default ``outputs/flwr/<date>_<time>`` under the ServerApp's
  working directory; under ``flwr run`` that is where the local SuperLink was started);
- ``node-wait-timeout``: seconds to wait for ``num_clients`` nodes before the first round.

The ServerApp runs fedsim's round loop on Flower's grid with fedsim's round hooks, so the run
folder holds the usual ``config.yaml``, ``metrics.jsonl``, ``summary.json`` and so on. The
ClientApp rebuilds the same experiment in its own process (once per process and run config:
the partition is seeded from ``seed``, so it is the server's) and serves the node's
``partition-id`` with fedsim's ClientApp. Flower must start ``num_clients`` SuperNodes
(``flwr run . --federation-config "num-supernodes=20"``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from fedsim.errors import ConfigError

# As fedsim's Ray engine: Ray leaves CUDA_VISIBLE_DEVICES alone for clients given no GPU share
# (and stops warning that it will in future versions).
os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")

RUN_DIR_KEY = "run-dir"
NODE_WAIT_KEY = "node-wait-timeout"
OVERRIDES_KEY = "overrides"
APP_KEYS = (RUN_DIR_KEY, NODE_WAIT_KEY, OVERRIDES_KEY)
"""Run-config keys the app reads itself; every other key is a fedsim setting."""

DEFAULT_NODE_WAIT_TIMEOUT = 60.0
DEFAULT_RUN_DIR_ROOT = Path("outputs") / "flwr"

DEFAULT_RUN_CONFIG: dict[str, Any] = {
    "experiment": "",
    "sampler": "random",
    "dataset": "digits",
    "partitioner": "dirichlet",
    "model": "auto",
    "algorithm": "fedavg",
    "num-clients": 20,
    "clients-per-round": 5,
    "num-rounds": 30,
    "seed": 0,
    "train.lr": 0.05,
    "train.epochs": 2,
    "train.batch-size": 32,
    OVERRIDES_KEY: "",
    RUN_DIR_KEY: "",
    NODE_WAIT_KEY: DEFAULT_NODE_WAIT_TIMEOUT,
}
"""``[tool.flwr.app.config]`` of pyproject.toml, flattened as Flower does (a test keeps them
equal, and equal to conf/config.yaml). Flower refuses ``--run-config`` keys not declared
there; any other setting goes through ``overrides`` (Hydra overrides, space-separated)."""

BASE_OVERRIDES = ("progress=false",)
"""Settings of every Flower App run unless the run config sets them (no progress bar in Flower's log)."""

PLUS_KEYS = ("experiment",)
"""Config groups that are not in the default list: selected with ``+group=name``."""

logger = logging.getLogger("fedsim.flower_app")


# ---------------------------------------------------------------------- run config
def hydra_value(value: Any) -> str:
    """A run-config value as the value of a Hydra override."""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if any(ch.isspace() for ch in text) and not text.startswith(("'", '"', "[", "{")):
        return "'" + text.replace("'", "\\'") + "'"
    return text


def run_config_to_overrides(run_config: Mapping[str, Any]) -> list[str]:
    """Hydra overrides for a Flower run config (``{"num-rounds": 20}`` -> ``["num_rounds=20"]``).

    Keys of the app itself (:data:`APP_KEYS`), empty strings and values equal to
    :data:`DEFAULT_RUN_CONFIG` are left out; :data:`BASE_OVERRIDES` come first unless the run
    config sets that key, the free-form ``overrides`` (split like a shell line) last.
    """
    import shlex

    overrides: list[str] = []
    for key, value in run_config.items():
        if key in APP_KEYS or value == "" or (key in DEFAULT_RUN_CONFIG and value == DEFAULT_RUN_CONFIG[key]
                                              and type(value) is type(DEFAULT_RUN_CONFIG[key])):
            continue
        name = key.replace("-", "_")
        overrides.append(f"{'+' if name in PLUS_KEYS else ''}{name}={hydra_value(value)}")
    try:
        overrides += shlex.split(str(run_config.get(OVERRIDES_KEY) or ""))
    except ValueError as exc:
        raise ConfigError(f"run config overrides={run_config.get(OVERRIDES_KEY)!r}: {exc}") from None
    keys = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    base = [o for o in BASE_OVERRIDES if o.split("=", 1)[0] not in keys]
    return base + overrides


def compose(overrides: list[str]):
    """fedsim's config for these overrides; a bad one is a one-line ConfigError."""
    from fedsim.config import compose_config

    try:
        return compose_config(overrides)
    except ConfigError:
        raise
    except Exception as exc:  # Hydra's composition errors
        raise ConfigError(f"run config {' '.join(overrides)}: {str(exc).splitlines()[0]}") from None


def run_dir_for(run_config: Mapping[str, Any]) -> Path:
    """The run folder: ``run-dir`` if set, else a fresh ``outputs/flwr/<date>_<time>``."""
    given = str(run_config.get(RUN_DIR_KEY) or "").strip()
    if given:
        return Path(given).expanduser().resolve()
    base = (DEFAULT_RUN_DIR_ROOT / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")).resolve()
    folder, n = base, 1
    while folder.exists():
        folder, n = base.with_name(f"{base.name}-{n}"), n + 1
    return folder


# ---------------------------------------------------------------------- server side
def run_server(grid: Grid, run_config: Mapping[str, Any]) -> dict[str, Any] | None:
    """Build the experiment of ``run_config`` and run its rounds on ``grid``; returns the summary.

    ``None`` when the run folder holds the same run, finished (nothing to do).
    """
    import json

    from fedsim.experiment import build_experiment
    from fedsim.grid_run import run_on_grid
    from fedsim.logs import close_logging, setup_logging
    from fedsim.results.run_lock import RunLock
    from fedsim.run_folders import plan_run

    overrides = run_config_to_overrides(run_config)
    cfg = compose(overrides)
    plan = plan_run(cfg, run_dir_for(run_config), overrides)
    if plan is None:
        return None
    run_dir, cfg, resume = plan
    with RunLock(run_dir):
        setup_logging(run_dir, cfg.get("log_level", "INFO"))
        try:
            logger.info("run folder %s (overrides: %s)", run_dir, " ".join(overrides) or "none")
            experiment = build_experiment(cfg)
            experiment.strategy.node_wait_timeout = float(run_config.get(NODE_WAIT_KEY, DEFAULT_NODE_WAIT_TIMEOUT))
            if hasattr(grid, "pull_interval"):
                grid.pull_interval = min(float(grid.pull_interval), 0.01)  # Flower's default polls every 0.1 s
            summary = run_on_grid(experiment, grid, run_dir, resume=resume)
            logger.info("finished: %s", json.dumps({k: summary.get(k) for k in ("final_accuracy", "rounds_run")}))
            return summary
        except ConfigError as exc:
            logger.error("%s", exc)
            raise
        finally:
            close_logging()


def make_server_app(run_config: Mapping[str, Any] | None = None) -> ServerApp:
    """fedsim's ServerApp; ``run_config`` are defaults under Flower's run config (for tests)."""
    base = dict(run_config or {})
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        run_server(grid, {**base, **dict(context.run_config)})

    return app


# ---------------------------------------------------------------------- client side
_CLIENT_APPS: dict[tuple[str, ...], tuple[ClientApp, int]] = {}
_CLIENT_LOCK = threading.Lock()


def fedsim_client_app(run_config: Mapping[str, Any]) -> tuple[ClientApp, int]:
    """fedsim's ClientApp for this run config and its number of partitions (built once per process)."""
    overrides = run_config_to_overrides(run_config)
    key = tuple(overrides)
    with _CLIENT_LOCK:
        if key not in _CLIENT_APPS:
            from fedsim.client.app import make_client_app
            from fedsim.client.runtime import ClientRuntime
            from fedsim.experiment import build_experiment
            from fedsim.run_folders import saved_run

            cfg = compose(overrides)
            if cfg.get("resume") is not None:  # the server continues with the saved config: so do we
                _, cfg = saved_run(cfg.resume)
            experiment = build_experiment(cfg)
            runtime = ClientRuntime(experiment.source, experiment.partitioning.client_indices,
                                    experiment.model_factory, dataset=experiment.dataset,
                                    device=str(cfg.get("device", "cpu")))
            _CLIENT_APPS[key] = (make_client_app(runtime), runtime.num_clients)
        return _CLIENT_APPS[key]


def make_flower_client_app(run_config: Mapping[str, Any] | None = None) -> ClientApp:
    """fedsim's ClientApp, built from the run config on the first message of each process."""
    base = dict(run_config or {})
    app = ClientApp()

    def handle(message: Message, context: Context) -> Message:
        inner, num_partitions = fedsim_client_app({**base, **dict(context.run_config)})
        pid = int(context.node_config["partition-id"])
        if not 0 <= pid < num_partitions:
            raise ConfigError(f"this node simulates partition {pid} but num_clients={num_partitions}; "
                              f"start as many SuperNodes as num_clients")
        return inner(message, context)

    app.train()(handle)
    app.evaluate()(handle)
    app.query()(handle)
    return app


server_app = make_server_app()
client_app = make_flower_client_app()
