"""A fedsim sampler in front of any Flower strategy: Flower's FedAdam/FedYogi, a user's own class."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from fedsim.errors import ConfigError
from fedsim.run_folders import check_resumable

USER_STRATEGY = '''
"""A user's own Flower strategy: FedAvg that logs what it is asked to aggregate."""
import json
from flwr.serverapp.strategy import FedAvg


class LoggingFedAvg(FedAvg):
    def __init__(self, log_file: str, min_train_nodes: int = 1) -> None:
        super().__init__(min_train_nodes=min_train_nodes, min_available_nodes=1)
        self.log_file = log_file

    def aggregate_train(self, server_round, replies):
        replies = list(replies)
        with open(self.log_file, "a") as f:
            f.write(json.dumps({"round": server_round, "replies": len(replies),
                                "records": sorted(replies[0].content.keys())}) + "\\n")
        return super().aggregate_train(server_round, replies)
'''

SMALL = ["num_rounds=3", "num_clients=8", "clients_per_round=3", "progress=false"]


def fedsim(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fedsim.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("algorithm, cls, sampler", [("fedadam", "FedAdam", "hics_diverse"),
                                                     ("fedyogi", "FedYogi", "powd")])
def test_flowers_own_server_optimisers_run_behind_a_sampler(tmp_path, algorithm, cls, sampler):
    run = tmp_path / "run"
    done = fedsim(f"algorithm={algorithm}", f"sampler={sampler}", *SMALL, f"hydra.run.dir={run}")
    assert done.returncode == 0, done.stderr[-2000:]
    config = (run / "config.yaml").read_text()
    assert f"_target_: flwr.serverapp.strategy.{cls}" in config
    records = rows(run)
    assert [r["round"] for r in records] == [1, 2, 3]
    assert all(not r["rejected"] and not r["failed"] and len(r["selected"]) == 3 for r in records)
    assert records[-1]["accuracy"] > 0.2  # it learns (10 classes: chance is 0.1)


def test_a_users_own_strategy_by_target_runs_with_hics(tmp_path):
    (tmp_path / "my_strategy.py").write_text(USER_STRATEGY)
    log, run = tmp_path / "aggregations.jsonl", tmp_path / "run"
    done = fedsim("sampler=hics", *SMALL, "algorithm._target_=my_strategy.LoggingFedAvg",
                  "~algorithm.weighted_aggregation", f"+algorithm.log_file={log}", f"hydra.run.dir={run}",
                  env={"PYTHONPATH": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    # the user's strategy aggregated every round, saw only the model and metrics records
    assert logged == [{"round": r, "replies": 3, "records": ["arrays", "metrics"]} for r in (1, 2, 3)]
    assert [len(r["selected"]) for r in rows(run)] == [3, 3, 3]


def test_a_strategy_that_wants_more_clients_than_a_round_has_is_refused_before_training(tmp_path):
    done = fedsim("algorithm=fedadam", "clients_per_round=1", "num_rounds=2", "progress=false",
                  f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("fedsim: error: algorithm: FedAdam needs at least 2")
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_a_strategy_that_subsamples_is_refused(tmp_path):
    done = fedsim("algorithm=fedadam", "+algorithm.fraction_train=0.5", "num_rounds=2", "progress=false",
                  f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 2
    assert "fraction_train=0.5: the sampler decides who trains; set fraction_train to 1.0" in done.stderr


@pytest.mark.parametrize("target, refused", [("flwr.serverapp.strategy.FedAdam", True),
                                             ("fedsim.server.algorithms.FedAvg", False),
                                             ("fedsim.server.algorithms.FedProx", False)])
def test_only_stateless_aggregation_continues_from_a_checkpoint(tmp_path, target, refused):
    (tmp_path / "checkpoint.npz").write_bytes(b"")
    cfg = OmegaConf.create({"algorithm": {"_target_": target}, "train": {"keep_optimizer_state": False}})
    if refused:
        with pytest.raises(ConfigError, match="keeps server state between rounds"):
            check_resumable(tmp_path, cfg)
    else:
        check_resumable(tmp_path, cfg)
