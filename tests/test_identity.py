"""One owner for a run's identity: effective parameters, old run folders, checkpoints."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from fedsim.compare.load import load
from fedsim.config import CONF_DIR
from fedsim.configuration import build, without
from fedsim.errors import ConfigError
from fedsim.identity import component_params, effective_config, get_params, run_identity, same_run
from fedsim.results.checkpoint import check_checkpoint, load_checkpoint
from fedsim.run_folders import plan_run, saved_run
from fedsim.streams import STREAMS_VERSION

OLD_RUN = Path(__file__).parent / "fixtures" / "run_fedsim_0_1"
"""A 2-round digits run (hics_diverse) written by fedsim 0.1.0, before fedsim.identity and
fedsim.streams: its algorithm node has no ``_target_`` and its summary no ``streams_version``."""

SAMPLER_PRESETS = sorted(p.stem for p in (CONF_DIR / "sampler").glob("*.yaml"))


def config(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return compose(config_name="config", overrides=list(overrides))


def test_a_missing_switch_and_its_explicit_default_are_one_run():
    from fedsim.selection.hics_scalable import DEFAULT_MICRO_CLUSTERS

    scalable = ("sampler=hics_diverse", "++sampler.mode=scalable")
    assert same_run(config(*scalable), config(*scalable, f"++sampler.micro_clusters={DEFAULT_MICRO_CLUSTERS}"))
    assert not same_run(config(*scalable), config(*scalable, "++sampler.micro_clusters=7"))
    assert same_run(config("sampler=hics"), config("sampler=hics", "++sampler.exploration_rate=0.0"))
    assert not same_run(config("sampler=hics"), config("sampler=hics", "++sampler.exploration_rate=0.5"))


def test_settings_a_class_does_not_read_split_nothing():
    # positive_part has no softmax: temperature is not read by hics_diverse, but is by hics
    assert same_run(config("sampler=hics_diverse"), config("sampler=hics_diverse", "hics.temperature=0.5"))
    assert not same_run(config("sampler=hics"), config("sampler=hics", "hics.temperature=0.5"))
    assert same_run(config("sampler=powd", "++sampler.d=4"), config("sampler=powd", "++sampler.d=4",
                                                                     "++sampler.d_factor=3"))
    assert same_run(config("sampler=divfl"), config("sampler=divfl", "sampler.subset_fraction=0.5"))
    assert not same_run(config("sampler=divfl", "sampler.stochastic=true"),
                        config("sampler=divfl", "sampler.stochastic=true", "sampler.subset_fraction=0.5"))


def test_how_to_run_is_not_part_of_the_identity_but_what_to_run_is():
    assert same_run(config(), config("progress=false", "log_level=DEBUG", "engine.workers=2", "device=cpu",
                                     "eval_in_background=false"))
    for override in ("seed=1", "train.lr=0.01", "num_rounds=5", "algorithm=fedprox", "algorithm=fedadam",
                     "partitioner.alpha=0.1", "clients_per_round=4"):
        assert not same_run(config(), config(override)), override


@pytest.mark.parametrize("preset", SAMPLER_PRESETS)
def test_identity_of_a_sampler_is_the_built_samplers_get_params(preset):
    node = config(f"sampler={preset}").sampler
    sampler = build(without(node, "hooks", "name"), "sampler")
    static = component_params(dict(node))
    assert {k: v for k, v in static.items() if k not in ("_target_", "name")} == get_params(sampler)


def test_one_default_home_the_class_signature():
    # the hics_diverse preset does not list micro_clusters; the identity still holds its default
    from fedsim.selection.hics import HiCSSampler
    from fedsim.selection.hics_scalable import DEFAULT_MICRO_CLUSTERS

    params = component_params({"_target_": "fedsim.selection.hics.HiCSSampler", "mode": "scalable"})
    assert params["micro_clusters"] == DEFAULT_MICRO_CLUSTERS == get_params(HiCSSampler(mode="scalable"))[
        "micro_clusters"]


def copy_old_run(tmp_path: Path) -> Path:
    run = tmp_path / "old"
    shutil.copytree(OLD_RUN, run)
    return run


def old_run_command() -> list[str]:
    from yaml import safe_load

    return safe_load((OLD_RUN / ".hydra" / "overrides.yaml").read_text())


def test_an_old_format_finished_run_is_skipped_by_its_own_command(tmp_path, capsys):
    run = copy_old_run(tmp_path)
    cfg = config(*old_run_command())
    _, saved = saved_run(str(run))
    assert same_run(saved, cfg)
    assert effective_config(saved)["algorithm"] == {"_target_": "fedsim.server.algorithms.FedAvg",
                                                    "weighted_aggregation": False}
    assert plan_run(cfg, run, old_run_command()) is None
    assert "already finished; skipped" in capsys.readouterr().err
    assert not same_run(saved, config(*old_run_command(), "seed=3"))


def test_an_old_format_run_is_compared_and_marked_as_streams_version_1(tmp_path):
    copy_old_run(tmp_path)
    runs = load([tmp_path]).runs
    assert runs.loc[0, "sampler"] == "hics_diverse" and runs.loc[0, "streams_version"] == 1


def test_an_old_checkpoint_is_not_continued_with_new_streams(tmp_path):
    run = copy_old_run(tmp_path)
    checkpoint = load_checkpoint(run)
    assert "streams_version" not in checkpoint.identity
    _, cfg = saved_run(str(run))
    with pytest.raises(ConfigError, match="before 0.2.0, whose random streams differ"):
        check_checkpoint(checkpoint, run_identity(cfg), checkpoint.arrays, [1, 2], 2)


def test_an_unfinished_old_run_without_checkpoint_starts_again_with_todays_streams(tmp_path):
    run = copy_old_run(tmp_path)
    (run / "summary.json").unlink()
    (run / "checkpoint.npz").unlink()
    old_partition = json.loads((run / "partition.json").read_text())
    done = subprocess.run([sys.executable, "-m", "fedsim.cli", *old_run_command(), f"hydra.run.dir={run}"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "is unfinished; resuming it" in done.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["streams_version"] == STREAMS_VERSION and summary["resumed_from_round"] == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [1, 2]
    assert json.loads((run / "partition.json").read_text()) != old_partition  # rebuilt from today's stream
