"""Probes (evaluate messages) run on the inline engine's workers, with the same results."""

from __future__ import annotations

import os
import time

import pytest
from conftest import make_config
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fedsim.engine.inline import InlineGrid
from fedsim.experiment import build_experiment, run_experiment
from fedsim.results.recorder import read_jsonl
from fedsim.server.loop import TIMING_COLUMNS

TIMINGS = set(TIMING_COLUMNS)
BASE = ["dataset=synthetic", "num_clients=6", "clients_per_round=2", "num_rounds=3", "progress=false", "train.epochs=1"]


def pid_app() -> ClientApp:
    app = ClientApp()

    @app.evaluate()
    def evaluate(msg, context):  # noqa: ANN001, ANN202
        time.sleep(0.2)  # long enough that both workers get messages
        pid = int(context.node_config["partition-id"])
        metrics = MetricRecord({"pid": pid, "process": os.getpid()})
        return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)

    return app


def test_evaluate_messages_are_spread_over_workers_in_order():
    grid = InlineGrid(pid_app(), 6, workers=2)
    try:
        record = RecordDict({"arrays": ArrayRecord(), "config": ConfigRecord({"server-round": 1})})
        nodes = [6, 2, 4, 1, 5, 3]
        messages = [Message(RecordDict(dict(record)), node, MessageType.EVALUATE) for node in nodes]
        replies = grid.send_and_receive(messages)
        assert [r.content["metrics"]["pid"] + 1 for r in replies] == nodes
        processes = {r.content["metrics"]["process"] for r in replies}
        assert len(processes) == 2 and os.getpid() not in processes
    finally:
        grid.close()


@pytest.mark.parametrize("sampler", ["divfl", "powd"])
def test_probing_samplers_same_results_with_two_workers(tmp_path, sampler):
    runs = {}
    for workers in (1, 2):
        run_dir = tmp_path / f"{sampler}-w{workers}"
        run_experiment(build_experiment(make_config(BASE + [f"engine.workers={workers}", f"sampler={sampler}"])), run_dir)
        rows = read_jsonl(run_dir / "metrics.jsonl")
        assert sum(r["extra_messages"] > 0 for r in rows) >= 2  # probes did run (PowD: from round 2)
        runs[workers] = [{k: v for k, v in r.items() if k not in TIMINGS} for r in rows]
    assert runs[1] == runs[2]


def test_spawned_workers_when_cuda_is_in_use(monkeypatch):
    """With CUDA initialised in this process the workers are spawned (forking would break CUDA)."""
    from fedsim.engine import inline

    monkeypatch.setattr(inline, "_cuda_in_use", lambda: True)
    grid = InlineGrid(pid_app(), 4, workers=2)
    try:
        record = RecordDict({"arrays": ArrayRecord(), "config": ConfigRecord({"server-round": 1})})
        nodes = [3, 1, 4, 2]
        replies = grid.send_and_receive([Message(RecordDict(dict(record)), n, MessageType.EVALUATE) for n in nodes])
        assert [r.content["metrics"]["pid"] + 1 for r in replies] == nodes
        assert grid._pool._ctx.get_start_method() == "spawn"
    finally:
        grid.close()
