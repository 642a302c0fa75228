"""Flower's simulation engine (Ray) via ``flwr.simulation.run_simulation``.

The ServerApp's main calls fedsim's ``server_main(grid)``; ``run_simulation`` returns
None and logs (rather than raises) ServerApp errors, so the error is captured here and
re-raised in the caller. ``address`` connects to an existing Ray cluster instead of
starting a local one.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable

from flwr.app import Context
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp


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
    ) -> None:
        self.num_cpus_per_client = num_cpus_per_client
        self.num_gpus_per_client = num_gpus_per_client
        self.address = address
        self.pull_interval = pull_interval
        self.log_level = log_level

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

    def run(self, client_app: ClientApp, num_partitions: int, server_main: Callable[[Grid], None]) -> None:
        """Start the simulation; re-raise any error of the server side here."""
        from flwr.simulation import run_simulation

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
        run_simulation(
            server_app=server_app,
            client_app=client_app,
            num_supernodes=num_partitions,
            backend_config=self.backend_config(),
        )
        if failure:
            raise failure[0]
