"""Round hooks, each on its own, and a user's hook loaded from the config by ``_target_``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord

from conftest import make_config
from fedsim.engine.faults import FaultClock
from fedsim.experiment import build_experiment, run_experiment
from fedsim.hooks import CrashInjector, RoundHook, RoundResult, RunContext
from fedsim.reporting import ProgressBar
from fedsim.results.checkpoint import CheckpointHook, load_checkpoint
from fedsim.results.entropy_report import EntropyReportHook
from fedsim.results.recorder import RecordsHook, RunRecorder, SummaryFile, read_jsonl
from fedsim.selection.random import RandomSampler

ARRAYS = ArrayRecord({"w": Array(np.ones(3, dtype=np.float32))})


def result(server_round: int, accuracy: float | None = 0.5, **row) -> RoundResult:
    return RoundResult(server_round, ARRAYS, {"round": server_round, "accuracy": accuracy, "loss": 1.0,
                                              "selected": [0, 1], "failed": [], "rejected": {}, **row},
                       {"note": server_round})


def context(tmp_path, first_round: int = 1, num_rounds: int = 3) -> RunContext:
    return RunContext(tmp_path, None, first_round, num_rounds, num_classes=10)


def test_records_hook_writes_rows_diagnostics_and_summary_counts(tmp_path):
    hook = RecordsHook(RunRecorder(tmp_path))
    hook.on_round_end(result(1, 0.4))
    hook.on_round_end(result(2, 0.7, failed=[1], rejected={"0": "NaN in arrays"}, loss=float("nan")))
    summary: dict = {}
    hook.on_run_end(summary)
    rows = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["round"] for r in rows] == [1, 2] and rows[1]["loss"] is None  # strict JSON: NaN -> null
    for line in (tmp_path / "metrics.jsonl").read_text().splitlines():  # no bare NaN/Infinity tokens
        json.loads(line, parse_constant=lambda token: pytest.fail(f"non-strict JSON token {token}"))
    assert read_jsonl(tmp_path / "sampler.jsonl") == [{"round": 1, "note": 1}, {"round": 2, "note": 2}]
    assert summary == {"final_accuracy": 0.7, "best_accuracy": 0.7, "failed_client_rounds": 1,
                       "rejected_replies": 1, "rounds_trained": 2, "no_usable_reply": False}


def test_summary_file_adds_identity_and_writes_last(tmp_path):
    hook = SummaryFile(RunRecorder(tmp_path), {"sampler": "hics"})
    hook.on_run_start(context(tmp_path))
    hook.on_run_end({"final_accuracy": 0.9})
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["sampler"] == "hics" and written["final_accuracy"] == 0.9 and written["wall_seconds"] >= 0


def test_checkpoint_hook_saves_when_due_and_after_the_last_round(tmp_path):
    sampler = RandomSampler()
    sampler.setup(np.ones(4), 2, 5, np.random.default_rng(0))
    hook = CheckpointHook(tmp_path, every=2, num_rounds=5, sampler=sampler)
    hook.on_round_end(result(1))
    assert load_checkpoint(tmp_path) is None
    for r in (2, 3, 5):
        hook.on_round_end(result(r))
    assert load_checkpoint(tmp_path).server_round == 5
    never = CheckpointHook(tmp_path / "none", every=0, num_rounds=5, sampler=sampler)
    never.on_round_end(result(5))
    assert not (tmp_path / "none").exists()


def test_progress_bar_counts_from_the_first_round_to_run(tmp_path):
    bar = ProgressBar(enabled=True)
    bar.on_run_start(context(tmp_path, first_round=3, num_rounds=5))
    bar.on_round_end(result(3))
    assert bar.bar.n == 3 and bar.bar.total == 5
    bar.on_run_end({})


def test_fault_clock_sets_the_grids_round():
    class Grid:
        server_round = 0

        def set_round(self, server_round: int) -> None:
            self.server_round = server_round

    grid = Grid()
    FaultClock(grid).on_round_start(7)
    assert grid.server_round == 7


def test_crash_injector_kills_only_after_its_round(monkeypatch):
    kills = []
    monkeypatch.setattr("os.kill", lambda pid, sig: kills.append(sig))
    hook = CrashInjector(after_round=2)
    hook.on_round_end(result(1))
    assert kills == []
    hook.on_round_end(result(2))
    assert len(kills) == 1


def test_entropy_report_hook_adds_spearman(tmp_path):
    (tmp_path / "partition.json").write_text(json.dumps({"label_entropy": [0.0, 0.5, 1.0, 2.0], "groups": None}))
    (tmp_path / "sampler.jsonl").write_text(json.dumps({"round": 1, "entropy": [0.1, 0.2, 0.9, 1.5]}) + "\n")
    hook = EntropyReportHook()
    hook.on_run_start(context(tmp_path))
    summary: dict = {}
    hook.on_run_end(summary)
    assert summary["entropy_spearman"] == pytest.approx(1.0)


class CountingHook(RoundHook):
    """A user's hook: counts rounds and adds the count to the summary."""

    def __init__(self, label: str = "rounds_seen") -> None:
        self.label = label
        self.rounds = 0

    def on_round_end(self, result: RoundResult) -> None:
        self.rounds += 1

    def on_run_end(self, summary: dict) -> None:
        summary[self.label] = self.rounds


def test_user_hook_from_config_by_target(tmp_path, small_overrides):
    config = make_config(small_overrides + ["+hooks.count._target_=test_hooks.CountingHook",
                                            "+hooks.count.label=counted"])
    summary = run_experiment(build_experiment(config), tmp_path)
    assert summary["counted"] == 3
    assert json.loads((tmp_path / "summary.json").read_text())["counted"] == 3


def test_entropy_report_runs_only_for_samplers_that_attach_it(tmp_path, small_overrides):
    run_experiment(build_experiment(make_config(small_overrides)), tmp_path / "random")
    assert not (tmp_path / "random" / "entropy_report.json").exists()
    run_experiment(build_experiment(make_config(small_overrides + ["sampler=hics"])), tmp_path / "hics")
    assert (tmp_path / "hics" / "entropy_report.json").exists()
    assert json.loads((tmp_path / "hics" / "summary.json").read_text())["sampler"] == "hics"


def test_entropy_report_warns_when_true_entropies_barely_differ(tmp_path):
    (tmp_path / "partition.json").write_text(json.dumps({"label_entropy": [2.30, 2.29, 2.30, 2.28], "groups": None}))
    (tmp_path / "sampler.jsonl").write_text(json.dumps({"round": 1, "entropy": [0.1, 0.2, 0.9, 1.5]}) + "\n")
    hook = EntropyReportHook()
    hook.on_run_start(context(tmp_path))
    hook.on_run_end({})
    report = json.loads((tmp_path / "entropy_report.json").read_text())
    assert "too little heterogeneity spread" in report["warning"]


def test_divergence_guard_stops_at_a_non_finite_loss_or_an_all_non_finite_round():
    from fedsim.errors import RunDiverged
    from fedsim.hooks import DivergenceGuard

    guard = DivergenceGuard()
    guard.on_round_end(result(1))  # finite: nothing happens
    guard.on_round_end(result(2, rejected={"0": "arrays.w: NaN or inf values"}))  # one of two: a hostile client
    with pytest.raises(RunDiverged, match="round 3: the test loss is nan"):
        guard.on_round_end(result(3, loss=float("nan")))
    with pytest.raises(RunDiverged, match="round 4: every client's update was non-finite"):
        guard.on_round_end(result(4, rejected={"0": "arrays.w: NaN or inf values",
                                               "1": "metrics: train-loss=nan is not a finite number"}))


def test_learning_curve_hook_draws_the_run(tmp_path):
    from fedsim.results.learning_curve import LearningCurveHook

    records = RecordsHook(RunRecorder(tmp_path))
    for r in (1, 2, 3):
        records.on_round_end(result(r, 0.2 * r, per_class_accuracy=[0.1 * r, 0.3 * r]))
    hook = LearningCurveHook()
    hook.on_run_start(context(tmp_path))
    hook.on_run_end({})
    assert (tmp_path / "learning_curve.png").stat().st_size > 1000


def test_checkpoint_hook_keeps_the_sampler_state_of_the_round_it_saves(tmp_path):
    sampler = RandomSampler()
    sampler.setup(np.ones(4), 2, 5, np.random.default_rng(0))
    hook = CheckpointHook(tmp_path, every=2, num_rounds=5, sampler=sampler)
    hook.on_round_aggregated(2, ARRAYS)
    at_round_2 = sampler.rng.bit_generator.state
    sampler.rng.random(3)  # round 3 draws before round 2's records (evaluation in the background)
    hook.on_round_end(result(2))
    saved = load_checkpoint(tmp_path).sampler_tree
    assert at_round_2 in _generator_states(saved) and sampler.rng.bit_generator.state not in _generator_states(saved)


def _generator_states(tree) -> list:
    """Every numpy Generator state inside a captured sampler tree."""
    if isinstance(tree, dict):
        found = [tree["s"]] if tree.get("t") == "gen" else []
        return found + [s for v in tree.values() for s in _generator_states(v)]
    if isinstance(tree, list):
        return [s for v in tree for s in _generator_states(v)]
    return []


class EventLog(RoundHook):
    """Writes down every hook call in order; raises where told."""

    def __init__(self, raise_at_end_of: int | None = None, raise_at_start_of: int | None = None) -> None:
        self.events: list[tuple[str, int]] = []
        self.raise_at_end_of, self.raise_at_start_of = raise_at_end_of, raise_at_start_of

    def on_round_start(self, server_round: int) -> None:
        self.events.append(("start", server_round))
        if server_round == self.raise_at_start_of:
            raise RuntimeError(f"round {server_round} failed")

    def on_round_aggregated(self, server_round: int, arrays) -> None:
        self.events.append(("aggregated", server_round))

    def on_round_end(self, result: RoundResult) -> None:
        self.events.append(("end", result.server_round))
        if result.server_round == self.raise_at_end_of:
            raise RuntimeError(f"stop at round {result.server_round}")


def _run_with(tmp_path, small_overrides, background: bool, hook: RoundHook, extra=()):
    config = make_config(small_overrides + [f"eval_in_background={str(background).lower()}", *extra])
    return run_experiment(build_experiment(config), tmp_path, hooks=[hook])


def test_background_evaluation_hands_a_round_to_the_hooks_after_the_next_one_trained(tmp_path, small_overrides):
    inline, background = EventLog(), EventLog()
    _run_with(tmp_path / "inline", small_overrides, False, inline)
    _run_with(tmp_path / "background", small_overrides, True, background)
    assert inline.events == [(e, r) for r in (1, 2, 3) for e in ("start", "aggregated", "end")]
    assert background.events == [("start", 1), ("aggregated", 1), ("start", 2), ("aggregated", 2), ("end", 1),
                                 ("start", 3), ("aggregated", 3), ("end", 2), ("end", 3)]


@pytest.mark.parametrize("sampler", ["random", "hics"])
def test_background_evaluation_writes_the_same_records_and_checkpoint(tmp_path, small_overrides, sampler):
    from fedsim.server.loop import TIMING_COLUMNS

    runs = {}
    for background in (False, True):
        folder = tmp_path / str(background)
        _run_with(folder, small_overrides, background, RoundHook(), [f"sampler={sampler}", "checkpoint_every=2"])
        rows = [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in read_jsonl(folder / "metrics.jsonl")]
        runs[background] = (rows, read_jsonl(folder / "sampler.jsonl"), load_checkpoint(folder))
    (rows, diagnostics, checkpoint), (rows_bg, diagnostics_bg, checkpoint_bg) = runs[False], runs[True]
    assert rows == rows_bg and all(r["accuracy"] is not None for r in rows) and diagnostics == diagnostics_bg
    assert checkpoint.server_round == checkpoint_bg.server_round == 3
    assert json.dumps(checkpoint.sampler_tree, sort_keys=True) == json.dumps(checkpoint_bg.sampler_tree, sort_keys=True)
    for key in checkpoint.arrays.keys():
        np.testing.assert_array_equal(checkpoint.arrays[key].numpy(), checkpoint_bg.arrays[key].numpy())


def test_a_hook_that_stops_the_run_keeps_the_next_round_out_of_the_records(tmp_path, small_overrides):
    log = EventLog(raise_at_end_of=1)
    with pytest.raises(RuntimeError, match="stop at round 1"):
        _run_with(tmp_path, small_overrides, True, log)
    assert ("end", 2) not in log.events
    assert [r["round"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == [1]


def test_a_failed_round_still_hands_the_round_before_it_to_the_hooks(tmp_path, small_overrides):
    log = EventLog(raise_at_start_of=3)
    with pytest.raises(RuntimeError, match="round 3 failed"):
        _run_with(tmp_path, small_overrides, True, log)
    assert log.events[-1] == ("end", 2)
    assert [r["round"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == [1, 2]
