"""Shared test setup: Flower offline and quiet, its state in a temporary folder."""

from __future__ import annotations

import os
import tempfile

os.environ["FLWR_TELEMETRY_ENABLED"] = "0"
os.environ.setdefault("FLWR_HOME", tempfile.mkdtemp(prefix="fedsim-test-flwr-"))
os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")

import pytest  # noqa: E402

from fedsim.config import compose_config as make_config  # noqa: E402,F401


@pytest.fixture
def small_overrides() -> list[str]:
    """A tiny, fast, learnable federation on synthetic data."""
    return [
        "dataset=synthetic",
        "num_clients=6",
        "clients_per_round=3",
        "num_rounds=3",
        "progress=false",
        "train.lr=0.05",
        "train.epochs=1",
    ]
