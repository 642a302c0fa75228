"""Tracking sinks (CSV, TensorBoard, MLflow) on a tiny run, read back from what they wrote."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord

from conftest import make_config
from fedsim.config import CONF_DIR
from fedsim.experiment import build_experiment, run_experiment
from fedsim.hooks import RoundResult, RunContext
from fedsim.results.recorder import read_jsonl
from fedsim.tracking import CsvTracker, flatten_config

ARRAYS = ArrayRecord({"w": Array(np.ones(3, dtype=np.float32))})


def run_with(tmp_path, small_overrides, *hooks: str) -> dict:
    """Run the tiny federation with the given hooks (``name=module.Class``)."""
    overrides = small_overrides + [f"+hooks.{h.split('=')[0]}._target_={h.split('=')[1]}" for h in hooks]
    return run_experiment(build_experiment(make_config(overrides)), tmp_path)


def test_csv_tracker_writes_one_row_per_round_with_per_class_columns(tmp_path, small_overrides):
    summary = run_with(tmp_path, small_overrides, "csv=fedsim.tracking.CsvTracker")
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    records = read_jsonl(tmp_path / "metrics.jsonl")
    assert [int(r["round"]) for r in rows] == [1, 2, 3]
    assert [f"accuracy_class_{k}" for k in range(10)] == list(rows[0])[-10:]  # synthetic: 10 classes
    for row, record in zip(rows, records):
        assert float(row["accuracy"]) == pytest.approx(record["accuracy"])
        assert float(row["loss"]) == pytest.approx(record["loss"])
        assert [float(row[f"accuracy_class_{k}"]) for k in range(10)] == pytest.approx(record["per_class_accuracy"])
        assert int(row["selected"]) == 3 and int(row["failed"]) == 0
    distinct = [len(set().union(*(r["selected"] for r in records[:i + 1]))) for i in range(3)]
    assert [int(r["distinct_clients"]) for r in rows] == distinct
    assert set(summary) == set(run_experiment(build_experiment(make_config(small_overrides)), tmp_path / "plain"))


def test_csv_tracker_leaves_unmeasured_cells_empty_and_keeps_rows_before_a_resume(tmp_path):
    def result(server_round, accuracy, selected):
        row = {"round": server_round, "accuracy": accuracy, "loss": None, "train_loss": float("nan"),
               "selected": selected, "failed": [selected[0]], "rejected": {}, "available": 4,
               "per_class_accuracy": None if accuracy is None else [accuracy, 1.0]}
        return RoundResult(server_round, ARRAYS, row)

    hook = CsvTracker()
    hook.on_run_start(RunContext(tmp_path, None, 1, 3, num_classes=2))
    for r, acc, sel in ((1, 0.5, [0, 1]), (2, None, [1, 2]), (3, 0.75, [3])):
        hook.on_round_end(result(r, acc, sel))
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert rows[1]["accuracy"] == "" and rows[1]["accuracy_class_0"] == "" and rows[0]["train_loss"] == ""
    assert [r["distinct_clients"] for r in rows] == ["2", "3", "4"] and rows[0]["failed"] == "1"
    # resume after round 1: rows 2 and 3 are recomputed; the distinct count continues from metrics.jsonl
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"round": 1, "selected": [0, 1]}) + "\n")
    hook = CsvTracker()
    hook.on_run_start(RunContext(tmp_path, None, 2, 3, num_classes=2, resumed=True))
    hook.on_round_end(result(2, 0.6, [1, 2]))
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [r["round"] for r in rows] == ["1", "2"] and rows[1]["distinct_clients"] == "3"


def test_tensorboard_tracker_writes_scalars_and_the_config(tmp_path, small_overrides):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_with(tmp_path, small_overrides + ["faults.always_fail=[0,1,2,3,4,5]"],
             "tb=fedsim.tracking.TensorBoardTracker")
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"accuracy", "loss", "selection/selected", "selection/distinct_clients", "selection/failed",
            "selection/rejected", "per_class_accuracy/0", "per_class_accuracy/9"} <= scalars
    records = read_jsonl(tmp_path / "metrics.jsonl")
    accuracy = events.Scalars("accuracy")
    assert [e.step for e in accuracy] == [1, 2, 3]
    assert [e.value for e in accuracy] == pytest.approx([r["accuracy"] for r in records])
    assert [e.value for e in events.Scalars("selection/failed")] == [3, 3, 3]  # every client fails
    assert [e.value for e in events.Scalars("selection/distinct_clients")] == [
        len(set().union(*(r["selected"] for r in records[:i + 1]))) for i in range(3)]
    text = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "num_clients: 6" in text and "clients_per_round: 3" in text


def test_mlflow_tracker_logs_params_and_metrics_per_round_to_a_local_file_store(tmp_path, small_overrides):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    run_with(tmp_path, small_overrides, "mlflow=fedsim.tracking.MlflowTracker")
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").resolve().as_uri())
    experiment = client.get_experiment_by_name("fedsim")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["num_clients"] == "6" and run.data.params["train.epochs"] == "1"
    assert run.data.params["sampler._target_"] == "fedsim.selection.random.RandomSampler"
    assert run.data.tags["fedsim.run_dir"] == str(tmp_path.resolve())
    history = client.get_metric_history(run.info.run_id, "accuracy")
    records = read_jsonl(tmp_path / "metrics.jsonl")
    assert sorted(m.step for m in history) == [1, 2, 3]
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx([r["accuracy"] for r in records])
    for name in ("loss", "train_loss", "selection/selected", "selection/distinct_clients", "selection/failed",
                 "per_class_accuracy/0"):
        assert len(client.get_metric_history(run.info.run_id, name)) == 3, name


def test_mlflow_tracker_takes_a_tracking_uri(tmp_path, small_overrides):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    store = (tmp_path / "elsewhere").resolve().as_uri()
    config = make_config(small_overrides + ["num_rounds=1", "+hooks.m._target_=fedsim.tracking.MlflowTracker",
                                            f"+hooks.m.tracking_uri='{store}'", "+hooks.m.experiment_name=study",
                                            "+hooks.m.run_name=first"])
    run_experiment(build_experiment(config), tmp_path / "run")
    assert not (tmp_path / "run" / "mlruns").exists()
    client = MlflowClient(tracking_uri=store)
    (run,) = client.search_runs([client.get_experiment_by_name("study").experiment_id])
    assert run.info.run_name == "first" and len(client.get_metric_history(run.info.run_id, "accuracy")) == 1


def test_flatten_config_turns_nesting_into_dotted_keys_and_lists_into_json():
    assert flatten_config({"a": {"b": 1, "c": [1, 2]}, "d": None, "e": {}}) == {
        "a.b": "1", "a.c": "[1, 2]", "d": "null", "e": "{}"}


@pytest.mark.parametrize("choice, names", [("[csv]", ["csv"]), ("csv", ["csv"]),
                                           ("[csv,tensorboard,mlflow]", ["csv", "tensorboard", "mlflow"])])
def test_tracking_group_selects_several_sinks(choice, names):
    """``tracking=[csv,mlflow]`` adds several hooks; needs ``- tracking: none`` in conf/config.yaml's defaults."""
    in_defaults = "tracking:" in (CONF_DIR / "config.yaml").read_text()
    config = make_config([f"{'' if in_defaults else '+'}tracking={choice}"])
    assert list(config.hooks) == names
    assert all(config.hooks[n]._target_.startswith("fedsim.tracking.") for n in names)


def test_tracking_default_is_none():
    if "tracking:" not in (CONF_DIR / "config.yaml").read_text():
        pytest.skip("conf/config.yaml has no `- tracking: none` defaults entry yet")
    assert dict(make_config([]).hooks) == {}


def test_mlflow_tracker_continues_its_run_on_resume(tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from fedsim.tracking import MlflowTracker

    def round_result(server_round):
        return RoundResult(server_round, ARRAYS, {"round": server_round, "accuracy": 0.1 * server_round, "loss": 1.0,
                                                  "selected": [server_round], "failed": [], "rejected": {}})

    first = MlflowTracker()
    first.on_run_start(RunContext(tmp_path, {"seed": 0}, 1, 3, num_classes=2))
    first.on_round_end(round_result(1))  # killed here: no on_run_end
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"round": 1, "selected": [1]}) + "\n")
    second = MlflowTracker()
    second.on_run_start(RunContext(tmp_path, {"seed": 0}, 2, 3, num_classes=2, resumed=True))
    second.on_round_end(round_result(2))
    second.on_run_end({})
    client = MlflowClient(tracking_uri=first.uri())
    (run,) = client.search_runs([client.get_experiment_by_name("fedsim").experiment_id])
    assert run.info.run_id == first.run_id == second.run_id and run.info.status == "FINISHED"
    assert [m.value for m in sorted(client.get_metric_history(run.info.run_id, "selection/distinct_clients"),
                                    key=lambda m: m.step)] == [1, 2]
