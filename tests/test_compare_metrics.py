"""fedsim.compare.load / metrics on tiny run folders with hand-computed numbers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from compare_helpers import HICS, write_run
from fedsim.compare.load import load
from fedsim.compare.metrics import (
    fewest_distinct, group_shares, km_summary, per_run, rounds_to_target, selection_health, selection_summary, summarize,
)


def test_rounds_to_target_raw_smoothed_and_censored() -> None:
    acc = [0.5, 0.8, 0.7, 0.8, 0.9]
    assert rounds_to_target(range(1, 6), acc, 0.75) == (2, True)
    # 3-round trailing means: 0.667 (ends round 3), 0.767 (ends round 4) -> round 4
    assert rounds_to_target(range(1, 6), acc, 0.75, smooth=3) == (4, True)
    # unevaluated rounds are skipped; (0.8 + 0.7) / 2 = 0.75 exactly counts as reached, at round 4
    assert rounds_to_target([1, 2, 3, 4, 5], [np.nan, 0.8, np.nan, 0.7, 0.8], 0.75, smooth=2) == (4, True)
    # never reached: censored at the horizon, not dropped
    assert rounds_to_target([1, 2], [0.5, 0.6], 0.75, horizon=10) == (10, False)
    assert rounds_to_target([1, 2], [0.9, 0.9], 0.75, smooth=3, horizon=10) == (10, False)


def test_km_median_and_restricted_mean_by_hand() -> None:
    # 100, 150 reached, one run censored at R = 200: S = 1, 2/3 from 100, 1/3 from 150
    km = km_summary([100, 200, 150], [True, False, True], 200)
    assert km["median"] == 150  # first round with S <= 0.5
    assert km["restricted_mean"] == pytest.approx(100 + 50 * 2 / 3 + 50 * 1 / 3)  # = 150
    # censoring before the end: events 2, 5, censored 3, horizon 6: S = 1, 2/3 from 2, 0 from 5
    km = km_summary([2, 3, 5], [True, False, True], 6)
    assert km["median"] == 5
    assert km["restricted_mean"] == pytest.approx(2 * 1 + 3 * 2 / 3 + 1 * 0)  # = 4
    # no censoring: the KM restricted mean is the plain mean, the median the middle value
    km = km_summary([132, 71, 89], [True] * 3, 200)
    assert km["median"] == 89 and km["restricted_mean"] == pytest.approx((132 + 71 + 89) / 3)
    # two of three never reach it: survival stays at 2/3 > 0.5, median is "> R"
    km = km_summary([200, 200, 173], [False, False, True], 200)
    assert math.isnan(km["median"]) and km["restricted_mean"] == pytest.approx(173 + 27 * 2 / 3)
    km = km_summary([200, 200], [False, False], 200)
    assert math.isnan(km["median"]) and km["restricted_mean"] == 200


def test_load_labels_unfinished_and_settings(tmp_path: Path) -> None:
    write_run(tmp_path, "a", accuracies=[0.5, 0.8], summary_sampler="random")
    write_run(tmp_path, "b", sampler=HICS, accuracies=[0.5, 0.8], summary_sampler="HiCSSampler")  # old summary
    write_run(tmp_path, "c", sampler=HICS, accuracies=[0.5, 0.8], summary_sampler="HiCSSampler", hydra_choice="hics_ref")
    write_run(tmp_path, "d", sampler=HICS, accuracies=[0.5], finished=False, num_rounds=2)
    study = load([tmp_path])
    runs = study.runs.set_index("run")
    assert runs.loc["a", "sampler"] == "random"
    assert runs.loc["b", "sampler"] == "hics"  # class name -> short name
    assert runs.loc["c", "sampler"] == "hics_ref"  # Hydra choice wins over the class name
    assert runs.loc["d", "finished"] == False  # noqa: E712
    assert list(study.unfinished["run"]) == ["d"] and study.unfinished.iloc[0]["rounds_recorded"] == 1
    assert set(study.finished().rounds["run"]) == {"a", "b", "c"}
    assert runs.loc["a", "setting"] == "fmnist groups[alphas=0.001,0.2; min_size_fraction=0.2] N=4 K=2"
    assert set(study.rounds.columns) >= {"run", "sampler", "setting", "seed", "round", "accuracy", "selected"}
    assert len(study.rounds) == 2 + 2 + 2 + 1


def test_setting_gets_differing_config_keys(tmp_path: Path) -> None:
    write_run(tmp_path, "a", accuracies=[0.5], extra_config={"train": {"lr": 0.01, "epochs": 2}})
    write_run(tmp_path, "b", accuracies=[0.5], extra_config={"train": {"lr": 0.1, "epochs": 2}}, seed=1)
    settings = set(load([tmp_path]).runs["setting"])
    assert settings == {"fmnist groups[alphas=0.001,0.2; min_size_fraction=0.2] N=4 K=2 [train.lr=0.01]",
                        "fmnist groups[alphas=0.001,0.2; min_size_fraction=0.2] N=4 K=2 [train.lr=0.1]"}


def test_sampler_label_reads_a_switch_an_older_run_lacks_as_its_default(tmp_path: Path) -> None:
    write_run(tmp_path, "old", sampler=HICS, accuracies=[0.5], summary_sampler="hics_diverse")
    write_run(tmp_path, "new", sampler={**HICS, "exploration_rate": 0.7}, accuracies=[0.5],
              summary_sampler="hics_diverse", seed=1)
    write_run(tmp_path, "before_mode", sampler=HICS, accuracies=[0.5], summary_sampler="hics")
    write_run(tmp_path, "with_mode", sampler={**HICS, "mode": "exact"}, accuracies=[0.5], summary_sampler="hics",
              seed=1)
    labels = load([tmp_path]).runs.set_index("run")["sampler"]
    assert labels["old"] == "hics_diverse[exploration_rate=0.0]"  # HiCSSampler's default
    assert labels["new"] == "hics_diverse[exploration_rate=0.7]"
    assert labels["before_mode"] == labels["with_mode"] == "hics"  # the default it had: nothing to tell apart


def test_class_defaults_only_for_fedsim_classes(monkeypatch) -> None:
    import fedsim.identity as identity
    from fedsim.identity import component_params, is_fedsim_target

    assert component_params({"_target_": "fedsim.selection.hics.HiCSSampler"}, is_fedsim_target)["mode"] == "exact"
    imported = []
    monkeypatch.setattr(identity, "locate", lambda path: imported.append(path))
    for foreign in ("os.system", "fedsim.nope.Missing"):  # an untrusted folder's target is never imported
        assert component_params({"_target_": foreign, "x": 1}, is_fedsim_target) == {"_target_": foreign, "x": 1}
    assert imported == []


def test_per_run_metrics_by_hand(tmp_path: Path) -> None:
    acc = [0.1, 0.3, 0.5, 0.6, 0.8, 0.7, 0.9, 0.7]  # R = 8
    write_run(tmp_path, "a", accuracies=acc)
    row = per_run(load([tmp_path]), target=0.75, smooth=2, final_window=3).iloc[0]
    assert (row["rtt_raw"], row["reached_raw"]) == (5, True)
    assert (row["rtt_smooth"], row["reached_smooth"]) == (6, True)  # (0.8 + 0.7) / 2
    assert row["mean_acc"] == pytest.approx(sum(acc) / 8)
    assert row["last_quarter_acc"] == pytest.approx((0.9 + 0.7) / 2)  # rounds 7, 8 (> 6)
    assert row["best_acc"] == 0.9
    assert row["final_window_acc"] == pytest.approx((0.7 + 0.9 + 0.7) / 3)
    assert row["volatility"] == pytest.approx((0.1 + 0.2 + 0.2) / 3)  # second half 0.8 0.7 0.9 0.7


def test_summary_keeps_censored_runs(tmp_path: Path) -> None:
    write_run(tmp_path, "r0", seed=0, accuracies=[0.5, 0.8, 0.8, 0.8])
    write_run(tmp_path, "r1", seed=1, accuracies=[0.5, 0.6, 0.6, 0.6])  # never: censored at 4
    write_run(tmp_path, "r2", seed=2, accuracies=[0.5, 0.6, 0.9, 0.9])
    row = summarize(per_run(load([tmp_path]), 0.75, smooth=1)).iloc[0]
    assert row["rtt_raw_per_seed"] == "2, >4, 3" and row["reached_raw"] == 2
    assert row["rtt_raw_km_median"] == 3
    assert row["rtt_raw_restricted_mean"] == pytest.approx(3.0)  # (2 + 4 + 3) / 3: censored only at R
    assert row["mean_acc_std"] == pytest.approx(np.std([0.725, 0.575, 0.725], ddof=1))


def test_selection_health_by_hand(tmp_path: Path) -> None:
    write_run(tmp_path, "a", accuracies=[0.5] * 4, selected=[[0, 1], [1, 2], [2, 3], [0, 1]])
    health = selection_health(load([tmp_path]), window=2).set_index("window")
    assert health.loc["1-2", "distinct_clients"] == 3
    assert health.loc["1-2", "repeat_rate"] == 0.5  # round 2 repeats client 1 of {1, 2}
    assert health.loc["3-4", "distinct_clients"] == 4
    assert health.loc["3-4", "repeat_rate"] == 0.25  # round 3: 1/2, round 4: 0
    assert health.loc["3-4", "top5_share"] == 1.0


def test_fewest_distinct_sees_windows_that_straddle_blocks(tmp_path: Path) -> None:
    # blocks of 2 rounds (1-2, 3-4) pick 3 and 4 distinct clients; rounds 2-3 pick only client 1
    write_run(tmp_path, "a", accuracies=[0.5] * 4, selected=[[0, 1, 2], [1], [1], [2, 3, 4]])
    blocks = selection_health(load([tmp_path]), window=2)
    assert blocks["distinct_clients"].min() == 3
    row = fewest_distinct(load([tmp_path]), window=2).iloc[0]
    assert (row["fewest_distinct"], row["fewest_window"]) == (1, 2)


def test_fewest_distinct_of_a_run_shorter_than_the_window(tmp_path: Path) -> None:
    write_run(tmp_path, "a", accuracies=[0.5] * 3, selected=[[0, 1], [1, 2], [2, 3]])
    row = fewest_distinct(load([tmp_path]), window=50).iloc[0]
    assert (row["fewest_distinct"], row["fewest_window"]) == (4, 1)


def test_top5_share_and_window_means(tmp_path: Path) -> None:
    sel = [[0, 1, 2], [0, 1, 3], [0, 4, 5]]  # counts 3, 2, 1, 1, 1, 1 over 9 slots
    write_run(tmp_path, "a", seed=0, accuracies=[0.5] * 3, selected=sel, groups=None)
    write_run(tmp_path, "b", seed=1, accuracies=[0.5] * 3, selected=[[0, 1, 2]], groups=None)  # 3 slots each x3
    health = selection_health(load([tmp_path]), window=3)
    a = health.set_index("run").loc["a"]
    assert a["top5_share"] == pytest.approx(8 / 9)
    assert a["repeat_rate"] == pytest.approx((2 / 3 + 1 / 3) / 2)
    summary = selection_summary(health).iloc[0]
    assert summary["top5_share"] == pytest.approx((8 / 9 + 1.0) / 2)
    assert summary["distinct_clients"] == pytest.approx((6 + 3) / 2)


def test_group_shares_labelled_by_alpha(tmp_path: Path) -> None:
    write_run(tmp_path, "a", accuracies=[0.5, 0.6], selected=[[0, 1], [0, 2]])  # groups 0, 0, 0, 1
    shares = group_shares(load([tmp_path]))
    got = {(r.sampler, r.label): r.share for r in shares.itertuples()}
    assert got == {("random", "alpha=0.001"): 0.75, ("random", "alpha=0.2"): 0.25,
                   ("(clients)", "alpha=0.001"): 0.5, ("(clients)", "alpha=0.2"): 0.5}


def test_groups_sharing_an_alpha_get_distinct_labels() -> None:
    from fedsim.compare.load import group_alpha_labels

    assert group_alpha_labels([0, 1, 1], [0.001, 0.2]) == {0: "alpha=0.001", 1: "alpha=0.2"}
    assert group_alpha_labels([0, 1, 2], [0.001, 0.001, 0.001]) == {
        0: "group 0 (alpha=0.001)", 1: "group 1 (alpha=0.001)", 2: "group 2 (alpha=0.001)"}
