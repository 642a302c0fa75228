"""End-to-end simulations on both engines: the global model improves, runs are reproducible."""

from __future__ import annotations

import json

import pytest

from conftest import make_config
from fedsim.experiment import build_experiment, run_experiment
from fedsim.results.recorder import read_jsonl
from fedsim.server.loop import TIMING_COLUMNS

TIMING_KEYS = set(TIMING_COLUMNS)


def run(overrides, run_dir):
    experiment = build_experiment(make_config(overrides))
    initial_loss, initial_acc = _initial_metrics(experiment)
    summary = run_experiment(experiment, run_dir)
    return summary, read_jsonl(run_dir / "metrics.jsonl"), (initial_loss, initial_acc)


def _initial_metrics(experiment):
    from fedsim.server.evaluation import CentralEvaluator

    evaluator = CentralEvaluator(experiment.dataset.x_test, experiment.dataset.y_test, experiment.model_factory)
    return evaluator(experiment.initial_arrays)


def _without_timings(rows):
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in rows]


def test_inline_three_rounds_improve_the_global_model_and_write_records(tmp_path, small_overrides):
    summary, rows, (initial_loss, initial_acc) = run(small_overrides, tmp_path)
    assert [r["round"] for r in rows] == [1, 2, 3]
    assert rows[-1]["loss"] < initial_loss
    assert summary["final_accuracy"] > initial_acc + 0.2
    assert all(len(set(r["selected"])) == 3 for r in rows)
    for name in ("config.yaml", "partition.json", "summary.json", "metrics.jsonl"):
        assert (tmp_path / name).exists()
    partition = json.loads((tmp_path / "partition.json").read_text())
    assert len(partition["label_entropy"]) == 6 and sum(partition["sizes"]) == 1000


def test_inline_same_seed_gives_identical_metrics(tmp_path, small_overrides):
    _, first, _ = run(small_overrides, tmp_path / "a")
    _, second, _ = run(small_overrides, tmp_path / "b")
    assert _without_timings(first) == _without_timings(second)
    _, other_seed, _ = run(small_overrides + ["seed=1"], tmp_path / "c")
    assert _without_timings(other_seed) != _without_timings(first)


def test_run_folder_is_never_overwritten(tmp_path, small_overrides):
    run(small_overrides + ["num_rounds=1"], tmp_path)
    before = (tmp_path / "metrics.jsonl").read_text()
    from fedsim.errors import ConfigError

    with pytest.raises(ConfigError, match="already holds a run"):
        run(small_overrides + ["num_rounds=1"], tmp_path)
    assert (tmp_path / "metrics.jsonl").read_text() == before


@pytest.mark.slow
def test_ray_engine_improves_the_model_and_matches_inline_selections(tmp_path, small_overrides):
    _, ray_rows, (initial_loss, _) = run(small_overrides + ["engine=ray"], tmp_path / "ray")
    _, inline_rows, _ = run(small_overrides, tmp_path / "inline")
    assert ray_rows[-1]["loss"] < initial_loss
    assert [r["selected"] for r in ray_rows] == [r["selected"] for r in inline_rows]
    assert [r["accuracy"] for r in ray_rows] == pytest.approx([r["accuracy"] for r in inline_rows], abs=0.02)


def test_fedprox_mu_reaches_the_clients(tmp_path, small_overrides):
    """The proximal term is sent as ``proximal-mu`` and changes local training."""
    _, plain, _ = run(small_overrides, tmp_path / "fedavg")
    _, prox, _ = run(small_overrides + ["algorithm=fedprox", "algorithm.proximal_mu=5.0"], tmp_path / "fedprox")
    assert [r["selected"] for r in plain] == [r["selected"] for r in prox]
    assert [r["train_loss"] for r in plain] != [r["train_loss"] for r in prox]


def test_kept_optimizer_state_changes_training_and_travels_with_the_client(tmp_path, small_overrides):
    """``train.keep_optimizer_state``: a client's momentum carries over to its next participation,
    whichever worker process trains it."""
    base = small_overrides + ["num_rounds=4", "train.momentum=0.9"]
    _, fresh, _ = run(base, tmp_path / "fresh")
    _, kept, _ = run(base + ["train.keep_optimizer_state=true"], tmp_path / "kept")
    _, kept_2, _ = run(base + ["train.keep_optimizer_state=true", "engine.workers=2"], tmp_path / "kept2")
    assert [r["selected"] for r in fresh] == [r["selected"] for r in kept]
    repeat = next(i for i, r in enumerate(kept) if set(r["selected"]) & {p for q in kept[:i] for p in q["selected"]})
    assert [r["train_loss"] for r in fresh[:repeat]] == [r["train_loss"] for r in kept[:repeat]]
    assert fresh[repeat]["train_loss"] != kept[repeat]["train_loss"]  # a returning client's momentum
    assert _without_timings(kept) == _without_timings(kept_2)
