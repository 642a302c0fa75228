"""fedsim as a Flower App (fedsim/flower_app.py): run config -> settings, the app on Flower's
simulation runtime, and the strategy's wait for nodes."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
from flwr.common.config import flatten_dict
from omegaconf import OmegaConf

from fedsim.config import compose_config
from fedsim.errors import ConfigError
from fedsim.experiment import build_experiment, run_experiment
from fedsim.flower_app import (
    DEFAULT_RUN_CONFIG,
    make_flower_client_app,
    make_server_app,
    run_config_to_overrides,
    run_dir_for,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
TINY = {"dataset": "synthetic", "num-clients": 4, "clients-per-round": 2, "num-rounds": 2, "train.epochs": 1}


def test_run_config_keys_become_hydra_overrides():
    assert run_config_to_overrides({"sampler": "hics", "num-rounds": 20}) == [
        "progress=false", "sampler=hics", "num_rounds=20"]
    assert run_config_to_overrides({"train.lr": 0.01, "faults.client-failure-prob": 0.1, "progress": True,
                                    "experiment": "paper_fmnist_s2", "faults.always-fail": "[1,2]"}) == [
        "train.lr=0.01", "faults.client_failure_prob=0.1", "progress=true", "+experiment=paper_fmnist_s2",
        "faults.always_fail=[1,2]"]
    # The app's own keys, empty strings and values equal to the defaults (so a preset's values
    # win) are not settings; `overrides` are Hydra overrides, passed last.
    assert run_config_to_overrides({**DEFAULT_RUN_CONFIG, "run-dir": "/x", "node-wait-timeout": 5.0}) == [
        "progress=false"]
    assert run_config_to_overrides({"num-clients": 50, "seed": 0, "experiment": ""}) == [
        "progress=false", "num_clients=50"]
    assert run_config_to_overrides({"sampler": "hics", "overrides": "faults=unreliable 'train.momentum=0' "
                                                                    "progress=true"}) == [
        "sampler=hics", "faults=unreliable", "train.momentum=0", "progress=true"]
    with pytest.raises(ConfigError, match="overrides="):
        run_config_to_overrides({"overrides": "train.lr='0.1"})


def test_default_run_config_matches_pyproject_and_fedsim_defaults():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    app = pyproject["tool"]["flwr"]["app"]
    assert app["components"] == {"serverapp": "fedsim.flower_app:server_app",
                                 "clientapp": "fedsim.flower_app:client_app"}
    assert flatten_dict(app["config"]) == DEFAULT_RUN_CONFIG  # Flower flattens it the same way
    cfg = compose_config()
    for key, value in DEFAULT_RUN_CONFIG.items():
        if key in ("run-dir", "node-wait-timeout", "overrides", "experiment"):
            assert value == "" or key == "node-wait-timeout", key
        elif key in ("sampler", "dataset", "partitioner", "model", "algorithm"):
            assert compose_config([f"{key}={value}"]) == cfg, key
        else:
            assert OmegaConf.select(cfg, key.replace("-", "_")) == value, key


def test_a_fresh_default_run_folder_each_time(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = run_dir_for({"run-dir": ""})
    first.mkdir(parents=True)
    second = run_dir_for({})
    assert first.parent == second.parent == tmp_path / "outputs" / "flwr" and first != second
    assert run_dir_for({"run-dir": str(tmp_path / "mine")}) == tmp_path / "mine"


class FewNodesGrid:
    """A grid that only ever lists two nodes."""

    def get_node_ids(self):
        return [11, 12]


def test_too_few_nodes_stop_with_a_clear_error_after_the_timeout(caplog):
    strategy = build_experiment(compose_config(["dataset=synthetic", "num_clients=4", "clients_per_round=2"])).strategy
    strategy.node_wait_timeout = 0.4
    strategy.node_wait_log_every = 0.1
    with caplog.at_level(logging.INFO, logger="fedsim.server"):
        with pytest.raises(ConfigError, match=r"^only 2 of 4 client nodes connected within 0\.4 s; start as many "
                                              r"SuperNodes as num_clients .*num-supernodes.* or lower num_clients$"):
            strategy.discover_partitions(FewNodesGrid())
    waits = [r.getMessage() for r in caplog.records if r.name == "fedsim.server"]
    assert waits and all(m == "waiting for nodes: 2 of 4 connected" for m in waits)


@pytest.mark.slow
def test_the_app_runs_on_flowers_simulation_runtime_and_writes_the_records(tmp_path):
    from flwr.simulation import run_simulation

    run_dir = tmp_path / "run"
    run_config = {**TINY, "run-dir": str(run_dir)}
    run_simulation(
        server_app=make_server_app(run_config),
        client_app=make_flower_client_app(run_config),
        num_supernodes=4,
        backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                        "init_args": {"logging_level": logging.WARNING, "log_to_driver": False,
                                      "include_dashboard": False}},
    )
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [1, 2]
    assert all(len(r["selected"]) == 2 and not r["failed"] for r in rows)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["engine"] == "flwr" and summary["rounds_run"] == 2
    assert (run_dir / "config.yaml").exists() and (run_dir / "partition.json").exists()
    # The same experiment as the fedsim command: same partition, same selections, same model.
    inline_dir = tmp_path / "inline"
    run_experiment(build_experiment(compose_config(run_config_to_overrides(TINY))), inline_dir)
    inline = [json.loads(line) for line in (inline_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["selected"] for r in rows] == [r["selected"] for r in inline]
    assert [r["accuracy"] for r in rows] == pytest.approx([r["accuracy"] for r in inline], abs=1e-6)
