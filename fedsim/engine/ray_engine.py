"""Flower's simulation engine (Ray) via ``flwr.simulation.run_simulation``.

The ServerApp's main calls fedsim's ``server_main(grid)``; ``run_simulation`` returns
None and logs (rather than raises) ServerApp errors, so the error is captured here and
re-raised in the caller. ``address`` connects to an existing Ray cluster instead of
starting a local one.

GPUs: ``num_gpus_per_client`` is each client actor's share of a GPU (0.25: four
clients per GPU). Ray then exposes the GPU it assigned to the actor as ``cuda:0``, and
the client runtime computes there (``device=auto`` or ``cuda``); with a share of 0 a
client under ``device=auto`` stays on the CPU. A share > 0 on a local cluster without
a CUDA GPU is refused up front (Ray would wait forever for a GPU to place actors on).

Network exposure: Ray 2.55 binds its GCS, raylet and worker gRPC servers to every
interface (0.0.0.0, hard-coded; ``_node_ip_address`` does not change it). So a local
cluster fedsim starts runs with Ray's token authentication (``RAY_AUTH_MODE=token``) and a
random token made for this process: anyone on the network who reaches the ports is
refused. ``token_auth=false`` turns it off; a ``RAY_AUTH_MODE`` already in the environment,
or ``address`` (a cluster someone else started), is left to its owner.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from flwr.app import Context
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from fedsim.errors import ConfigError

_TOKEN = secrets.token_hex(32)  # one per process: Ray's driver caches the token it first reads
logger = logging.getLogger(__name__)


def _driver_uses_tokens() -> bool:
    """Whether this process's Ray (already imported, so its mode is fixed) authenticates by token."""
    from ray._raylet import AuthenticationMode, get_authentication_mode

    return get_authentication_mode() == AuthenticationMode.TOKEN


@contextmanager
def token_authentication(enabled: bool) -> Iterator[None]:
    """Ray token authentication for a cluster started inside this block (environment restored after).

    Ray reads its authentication mode once, when it is imported: if this process imported Ray
    without it, turning it on now would lock the driver out of its own cluster, so the run
    goes on without it and a warning says so.
    """
    if not enabled or "RAY_AUTH_MODE" in os.environ:
        yield
        return
    if "ray" in sys.modules and not _driver_uses_tokens():
        logger.warning("engine.token_auth: Ray was imported before fedsim could turn on its token authentication; "
                       "this run's local Ray cluster accepts connections without a token")
        yield
        return
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=_TOKEN)
    try:
        yield
    finally:
        for key in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN"):
            os.environ.pop(key, None)


class RayEngine:
    """Runs the federation on Flower's Ray backend."""

    name = "ray"

    def __init__(
        self,
        num_cpus_per_client: float = 1.0,
        num_gpus_per_client: float = 0.0,
        address: str | None = None,
        pull_interval: float = 0.01,
        log_level: str = "WARNING",
        token_auth: bool = True,
    ) -> None:
        if float(num_gpus_per_client) < 0:
            raise ConfigError(f"engine.num_gpus_per_client={num_gpus_per_client}: must be >= 0 (0 = CPU clients)")
        self.num_cpus_per_client = num_cpus_per_client
        self.num_gpus_per_client = num_gpus_per_client
        self.address = address
        self.pull_interval = pull_interval
        self.log_level = log_level
        self.token_auth = bool(token_auth)

    def backend_config(self) -> dict[str, Any]:
        """Flower's backend_config: client resources and quiet Ray init args."""
        init_args: dict[str, Any] = {
            "logging_level": getattr(logging, self.log_level, logging.WARNING),
            "log_to_driver": False,
        }
        if self.address:
            init_args["address"] = self.address  # an existing cluster: it owns its dashboard
        else:
            init_args["include_dashboard"] = False
        return {
            "client_resources": {"num_cpus": self.num_cpus_per_client, "num_gpus": self.num_gpus_per_client},
            "init_args": init_args,
        }

    def check_gpus(self) -> None:
        """Refuse a GPU share when the local machine has no CUDA GPU to give."""
        if float(self.num_gpus_per_client) > 0 and not self.address:
            import torch

            if not torch.cuda.is_available():
                raise ConfigError(
                    f"engine.num_gpus_per_client={self.num_gpus_per_client}: no CUDA GPU is available here; "
                    "set engine.num_gpus_per_client=0"
                )

    def run(self, client_app: ClientApp, num_partitions: int, server_main: Callable[[Grid], None]) -> None:
        """Start the simulation; re-raise any error of the server side here."""
        self.check_gpus()

        failure: list[BaseException] = []
        server_app = ServerApp()

        @server_app.main()
        def main(grid: Grid, context: Context) -> None:
            if hasattr(grid, "pull_interval"):
                grid.pull_interval = self.pull_interval  # Flower's default polls every 0.1 s
            try:
                server_main(grid)
            except BaseException as exc:  # re-raised in the driver below
                failure.append(exc)

        os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
        with token_authentication(self.token_auth and not self.address):
            from flwr.simulation import run_simulation  # imports Ray: after the authentication mode is set

            run_simulation(
                server_app=server_app,
                client_app=client_app,
                num_supernodes=num_partitions,
                backend_config=self.backend_config(),
            )
        if failure:
            raise failure[0]
