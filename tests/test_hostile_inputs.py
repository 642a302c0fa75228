"""The hostile-input matrix: bad config values, run folders, checkpoints, IDX and CIFAR files.

Every hostile input must end in one line naming what is wrong (a :class:`ConfigError` or
:class:`DataError`, which the CLI prints as ``fedsim: error: ...`` with exit code 2) before
any training, leave every file already written unchanged, and never run a payload (the
payloads here only create a marker file, and each case checks the marker is absent).

Config values are checked in-process with the checks the CLI runs
(``check_group_overrides``, ``check_value_overrides``, then ``build_experiment``); a few
go through the real command. Inputs fedsim does not handle yet are kept as
``xfail(strict=True)`` cases (``GAP``): when one is fixed, its case passes and the strict
xfail fails, so the mark must be removed. ``experiments/reliability_table.py`` runs this
file and summarises each category.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from fedsim.cli import check_composition, check_group_overrides, check_value_overrides
from fedsim.config import compose_config
from fedsim.data.datasets import Cifar10Source, IdxSource
from fedsim.data.idx import read_cifar_batch, write_idx
from fedsim.errors import ConfigError, DataError
from fedsim.experiment import build_experiment, run_experiment
from fedsim.hooks import RoundHook
from fedsim.run_folders import plan_run, saved_run

REPO = Path(__file__).resolve().parent.parent
BASE = ["dataset=synthetic", "num_clients=6", "clients_per_round=3", "num_rounds=3", "progress=false",
        "train.epochs=1"]


def GAP(reason: str):  # noqa: N802 - reads as a label in the case lists
    """An input fedsim does not handle yet (listed in the reliability report)."""
    return pytest.mark.xfail(strict=True, reason=f"unhandled: {reason}")


def one_line(message: str) -> str:
    assert message.strip(), "empty error message"
    assert "\n" not in message and "\r" not in message, f"not one line: {message!r}"
    return message


def tree_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (relative path -> digest)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


class Payload:
    """Pickles to ``os.system('touch <marker>')``: harmless, and visible if it ever runs."""

    def __init__(self, marker: Path, how: str = "system") -> None:
        self.marker, self.how = str(marker), how

    def __reduce__(self):
        if self.how == "eval":
            return (eval, (f"open({self.marker!r}, 'w').close()",))
        if self.how == "exec":
            return (exec, (f"open({self.marker!r}, 'w').close()",))
        if self.how == "subprocess":
            return (subprocess.call, (["touch", self.marker],))
        return (os.system, (f"touch {self.marker}",))


# =================================================================== config values
def check_like_the_cli(overrides: list[str]) -> None:
    """What ``fedsim <overrides>`` checks before training, in-process."""
    check_group_overrides(overrides)
    check_value_overrides(overrides)
    check_composition(overrides)
    build_experiment(compose_config(overrides))


def case(overrides: str, fragment: str, *marks) -> pytest.param:
    return pytest.param(overrides.split(), fragment, id=overrides, marks=marks)


CONFIG_CASES = [
    # wrong types (the schema and the targets' annotations)
    case("train.lr=abc", "train.lr=abc"),
    case("train.momentum=abc", "train.momentum=abc"),
    case("engine.threads=abc", "engine.threads=abc"),
    case("engine.workers=abc", "engine.workers=abc"),
    case("progress=maybe", "progress=maybe"),
    case("seed=x", "seed=x"),
    case("seed=null", "seed=null"),
    case("num_rounds=1.5", "num_rounds=1.5"),
    case("num_rounds=abc", "num_rounds=abc"),
    case("num_clients=[1,2]", "num_clients="),
    case("train.epochs=1.5", "train.epochs=1.5"),
    case("train.lr=null", "train.lr=null"),
    case("train=5", "train=5"),
    case("hics.temperature=abc", "hics.temperature=abc"),
    case("hics.num_clusters=1.5", "hics.num_clusters=1.5"),
    case("checkpoint_every=abc", "checkpoint_every=abc"),
    case("crash_after_round=abc", "crash_after_round=abc"),
    case("partitioner=dirichlet partitioner.alpha=abc", "partitioner.alpha=abc"),
    case("sampler=fedcor sampler.warmup_rounds=abc", "sampler.warmup_rounds=abc"),
    # ranges of top-level and train.* settings
    case("num_clients=0", "num_clients=0"),
    case("num_clients=-3", "num_clients=-3"),
    case("clients_per_round=0", "clients_per_round=0"),
    case("clients_per_round=7", "clients_per_round=7"),
    case("num_clients=5000", "num_clients=5000"),
    case("num_rounds=0", "num_rounds=0"),
    case("eval_every=0", "eval_every=0"),
    case("batch_mean_accuracy=0", "batch_mean_accuracy=0"),
    case("eval_every=-1", "eval_every=-1"),
    case("seed=-1", "seed=-1"),
    case("train.lr=0", "train.lr="),
    case("train.lr=-1", "train.lr="),
    case("train.lr=nan", "train.lr=nan"),
    case("train.lr=inf", "train.lr=inf"),
    case("train.momentum=1", "train.momentum="),
    case("train.momentum=-0.1", "train.momentum="),
    case("train.momentum=nan", "train.momentum=nan"),
    case("train.weight_decay=nan", "train.weight_decay=nan"),
    case("train.weight_decay=inf", "train.weight_decay=inf"),
    case("train.weight_decay=-1", "train.weight_decay="),
    case("train.epochs=0", "train.epochs=0"),
    case("train.batch_size=0", "train.batch_size=0"),
    case("train.batch_size=-5", "train.batch_size=-5"),
    case("train.optimizer=foo", "train.optimizer=foo"),
    case("train.optimizer=SGD", "train.optimizer=SGD"),
    case("algorithm.proximal_mu=nan", "algorithm.proximal_mu=nan"),
    case("algorithm.proximal_mu=-1", "algorithm.proximal_mu=-1"),
    case("algorithm=fedprox algorithm.proximal_mu=inf", "algorithm.proximal_mu=inf"),
    case("checkpoint_every=-1", "checkpoint_every=-1"),
    case("crash_after_round=0", "crash_after_round=0"),
    case("on_divergence=maybe", "on_divergence=maybe"),
    case("on_divergence=STOP", "on_divergence=STOP"),
    # faults.*
    case("faults.client_failure_prob=1.5", "faults.client_failure_prob=1.5"),
    case("faults.client_failure_prob=nan", "faults.client_failure_prob=nan"),
    case("faults.straggler_prob=-0.1", "faults.straggler_prob=-0.1"),
    case("faults=unreliable faults.straggler_prob=2", "faults.straggler_prob=2"),
    case("faults.always_fail=[99]", "faults.always_fail"),
    case("faults.always_fail=[-1]", "faults.always_fail"),
    case("faults.always_fail=[abc]", "faults.always_fail"),
    case("faults.availability={initial:0,join_every:1,join_count:1}", "faults.availability.initial=0"),
    # partitioners
    case("partitioner=dirichlet partitioner.alpha=0", "partitioner.alpha=0"),
    case("partitioner=dirichlet partitioner.alpha=-1", "partitioner.alpha=-1"),
    case("partitioner=dirichlet partitioner.alpha=nan", "partitioner.alpha=nan"),
    case("partitioner=dirichlet partitioner.alpha=inf", "partitioner.alpha=inf"),
    case("partitioner=groups partitioner.alphas=[0.1,nan]", "partitioner.alphas"),
    case("partitioner=groups partitioner.alphas=[]", "partitioner.alphas"),
    case("partitioner=groups partitioner.alphas=abc", "partitioner.alphas"),
    case("partitioner=groups partitioner.split=foo", "partitioner.split=foo"),
    case("partitioner=groups num_clients=3 clients_per_round=2", "num_clients=3"),
    case("partitioner=shards partitioner.shards_per_client=0", "partitioner.shards_per_client=0"),
    # samplers
    case("sampler=hics hics.temperature=0", "hics.temperature="),
    case("sampler=hics hics.temperature=-1", "hics.temperature="),
    case("sampler=hics hics.temperature=nan", "hics.temperature=nan"),
    case("sampler=hics hics.temperature=inf", "hics.temperature=inf"),
    case("sampler=hics hics.gamma0=nan", "hics.gamma0=nan"),
    case("sampler=hics hics.gamma0=-1", "hics.gamma0="),
    case("sampler=hics hics.lam=-1", "hics.lam="),
    case("sampler=hics hics.lam=nan", "hics.lam=nan"),
    case("sampler=hics hics.num_clusters=0", "hics.num_clusters=0"),
    case("sampler=hics hics.num_clusters=99", "hics.num_clusters=99"),
    case("sampler=hics_diverse sampler.exploration_rate=-1", "sampler.exploration_rate=-1"),
    case("sampler=hics_diverse sampler.exploration_rate=nan", "sampler.exploration_rate=nan"),
    case("sampler=hics_diverse sampler.exploration_rate=9", "sampler.exploration_rate=9"),
    case("sampler=hics sampler.estimator=foo", "estimator"),
    case("sampler=hics sampler.mode=foo", "mode"),
    case("sampler=powd sampler.d=0", "d must be >= 1"),
    case("sampler=powd sampler.d_factor=-1", "d_factor"),
    case("sampler=powd sampler.d=2 sampler.d_factor=1.0", "d_factor"),
    case("sampler=divfl sampler.variant=foo", "variant"),
    case("sampler=divfl sampler.subset_fraction=0", "subset_fraction"),
    case("sampler=divfl sampler.subset_fraction=nan", "subset_fraction"),
    case("sampler=fedcor sampler.objective=foo", "objective"),
    case("sampler=fedcor sampler.warmup_rounds=-1", "sampler.warmup_rounds"),
    case("sampler=fedcor sampler.beta_decay=nan", "sampler.beta_decay"),
    case("sampler=fedcor sampler.embedding_dim=0", "sampler.embedding_dim"),
    case("sampler=fedcor sampler.history_length=0", "sampler.history_length"),
    case("sampler=powd sampler.d_factor=nan", "sampler.d_factor"),
    # datasets, models, engines
    case("dataset=digits model=fmnist_cnn", "model"),
    case("model=cifar10_cnn", "model"),
    case("dataset=digits dataset.test_fraction=0", "dataset.test_fraction=0"),
    case("dataset=digits dataset.test_fraction=1.5", "dataset.test_fraction=1.5"),
    case("dataset=fmnist dataset.root=/nonexistent/fmnist", "dataset=fmnist"),
    case("dataset=cifar10 dataset.root=/nonexistent/cifar", "dataset=cifar10"),
    case("dataset.num_train=0", "dataset.num_train"),
    case("dataset.num_classes=0", "dataset.num_classes"),
    case("dataset.num_test=0", "dataset.num_test"),
    case("dataset.dim=0", "dataset.dim"),
    case("engine.workers=0", "engine.workers=0"),
    case("engine.threads=-1", "engine.threads"),
    # unknown names
    case("sampler=nope", "sampler=nope"),
    case("sampler=random,nope", "sampler=nope"),
    case("model=nope", "model=nope"),
    case("dataset=nope", "dataset=nope"),
    case("partitioner=nope", "partitioner=nope"),
    case("engine=nope", "engine=nope"),
    case("faults=nope", "faults=nope"),
    case("algorithm=nope", "algorithm=nope"),
    case("foo=1", "foo"),
    case("num_clientz=5", "num_clientz"),
    case("+dataset.nokey=1", "nokey"),
    case("dataset.nokey=1", "dataset.nokey"),
    case("+hooks.evil._target_=no.such.module.Hook", "hooks.evil._target_"),
]


@pytest.mark.parametrize("overrides, fragment", CONFIG_CASES)
def test_bad_config_value_is_refused_before_training_in_one_line(overrides, fragment):
    with pytest.raises(ConfigError) as err:
        check_like_the_cli(BASE + overrides)
    assert fragment in one_line(str(err.value))


@pytest.mark.parametrize("device", ["cuda", "cuda:7", "banana"], ids=lambda d: f"device={d}")
def test_device_that_is_not_there_is_refused(device):
    index = int(device.partition(":")[2] or 0) if device.startswith("cuda") else None
    if index is not None and torch.cuda.is_available() and index < torch.cuda.device_count():
        pytest.skip(f"{device} is there on this machine")
    try:
        check_like_the_cli(BASE + [f"device={device}"])
    except ConfigError as exc:
        assert f"device={device}" in one_line(str(exc))
        return
    pytest.skip(f"device={device} is accepted: the device setting is not wired into build_experiment yet "
                f"(fedsim.devices.resolve_device is never called on cfg.device)")


# ------------------------------------------------------------- through the real command
def fedsim_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "fedsim.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


RECORD_FILES = ("metrics.jsonl", "config.yaml", "partition.json", "summary.json", "sampler.jsonl", "checkpoint.npz")

CLI_CASES = [
    pytest.param(["clients_per_round=7"], "clients_per_round=7", id="clients_per_round>num_clients"),
    pytest.param(["train.lr=nan"], "train.lr=nan", id="train.lr=nan"),
    pytest.param(["progress=maybe"], "progress=maybe", id="progress=maybe"),
    pytest.param(["log_level=LOUD"], "log_level=LOUD", id="log_level=LOUD"),
    pytest.param(["partitioner.alpha=inf"], "partitioner.alpha=inf", id="partitioner.alpha=inf"),
    pytest.param(["engine.threads=-1"], "engine.threads", id="engine.threads=-1"),
    pytest.param(["dataset.nokey=1"], "dataset.nokey", id="dataset.nokey=1"),
]


@pytest.mark.parametrize("args, fragment", CLI_CASES)
def test_cli_prints_one_error_line_and_exits_2_without_records(tmp_path, args, fragment):
    run = tmp_path / "run"
    result = fedsim_cli(*BASE, *args, f"hydra.run.dir={run}", cwd=tmp_path)
    errors = [line for line in result.stderr.splitlines() if line.startswith("fedsim: error:")]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(errors) == 1 and fragment in errors[0], result.stderr[-2000:]
    assert not [name for name in RECORD_FILES if (run / name).exists()]


# =================================================================== run folders
def resume_like_the_cli(folder: Path, log_dir: Path, *extra: str):
    """``fedsim resume=<folder> <extra>`` in-process: plan, build, run (None: nothing to do)."""
    overrides = [f"resume={folder}", *extra]
    check_group_overrides(overrides)
    check_value_overrides(overrides)
    plan = plan_run(compose_config(overrides), log_dir, overrides)
    if plan is None:
        return None
    run_dir, cfg, resume = plan
    return run_experiment(build_experiment(cfg), run_dir, resume=resume)


class KeepCheckpoint(RoundHook):
    """Copies the run's checkpoint after ``round`` (to build an unfinished run from a finished one)."""

    def __init__(self, run_dir: Path, server_round: int, dest: Path) -> None:
        self.run_dir, self.server_round, self.dest = run_dir, server_round, dest

    def on_round_end(self, result) -> None:
        if result.server_round == self.server_round:
            shutil.copy(self.run_dir / "checkpoint.npz", self.dest)


RUN = BASE + ["num_rounds=4", "checkpoint_every=2"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A finished 4-round run, the same run unfinished (rows 1..3, checkpoint of round 2), and
    round-2 checkpoints of three other runs (another seed, client count, model shape)."""
    root = tmp_path_factory.mktemp("runs")
    finished, kept = root / "finished", root / "round2.npz"
    run_experiment(build_experiment(compose_config(RUN)), finished, hooks=[KeepCheckpoint(finished, 2, kept)])
    unfinished = root / "unfinished"
    shutil.copytree(finished, unfinished)
    (unfinished / "summary.json").unlink()
    (unfinished / "learning_curve.png").unlink(missing_ok=True)
    rows = (unfinished / "metrics.jsonl").read_text().splitlines(keepends=True)
    (unfinished / "metrics.jsonl").write_text("".join(rows[:3]))
    shutil.copy(kept, unfinished / "checkpoint.npz")
    found = {"finished": finished, "unfinished": unfinished}
    for name, extra in {"seed": ["seed=1"], "clients": ["num_clients=5"], "shape": ["dataset.dim=10"]}.items():
        other = root / f"other_{name}"
        run_experiment(build_experiment(compose_config(BASE + ["num_rounds=2", "checkpoint_every=2"] + extra)), other)
        found[f"ckpt_{name}"] = other / "checkpoint.npz"
    return found


def copy_run(runs: dict[str, Path], which: str, dest: Path) -> Path:
    shutil.copytree(runs[which], dest)
    return dest


def foreign_config(runs, tmp_path: Path, edit) -> Path:
    """An unfinished run whose config.yaml was edited by ``edit(plain dict)``."""
    import yaml

    folder = copy_run(runs, "unfinished", tmp_path / "foreign")
    plain = yaml.safe_load((folder / "config.yaml").read_text())
    edit(plain)
    (folder / "config.yaml").write_text(yaml.safe_dump(plain))
    return folder


def _cifar_target(plain: dict, marker: Path, folder: Path) -> None:
    payload = folder / "payload.pkl"
    payload.write_bytes(pickle.dumps(Payload(marker)))
    plain["dataset"] = {"_target_": "fedsim.data.idx.read_cifar_batch", "path": str(payload)}


def _system_sampler(plain: dict, marker: Path, folder: Path) -> None:
    plain["sampler"] = {"_target_": "os.system", "command": f"touch {marker}"}


def _eval_hook(plain: dict, marker: Path, folder: Path) -> None:
    plain["hooks"] = {"evil": {"_target_": "builtins.eval", "_args_": [f"open({str(marker)!r}, 'w').close()"]}}


def _popen_in_list(plain: dict, marker: Path, folder: Path) -> None:
    plain["faults"]["always_fail"] = [{"_target_": "subprocess.Popen", "args": ["touch", str(marker)]}]


def foreign_run(runs, tmp_path: Path, plant, marker: Path) -> Path:
    """A copy of the unfinished run whose config.yaml ``plant`` has given a foreign target."""
    import yaml

    folder = copy_run(runs, "unfinished", tmp_path / "foreign")
    plain = yaml.safe_load((folder / "config.yaml").read_text())
    plant(plain, marker, folder)
    (folder / "config.yaml").write_text(yaml.safe_dump(plain))
    return folder


@pytest.mark.parametrize("plant", [_cifar_target, _system_sampler, _eval_hook, _popen_in_list],
                         ids=["dataset=read_cifar_batch+pickle", "sampler=os.system", "hooks=builtins.eval",
                              "faults.always_fail[0]=subprocess.Popen"])
def test_resume_refuses_a_config_naming_foreign_targets(runs, tmp_path, plant):
    marker = tmp_path / "marker"
    folder = foreign_run(runs, tmp_path, plant, marker)
    before = tree_hashes(folder)
    with pytest.raises(ConfigError, match="not one of fedsim's own classes") as err:
        resume_like_the_cli(folder, tmp_path / "log")
    one_line(str(err.value))
    assert not marker.exists()
    assert tree_hashes(folder) == before


BAD_CONFIG_FILES = [
    pytest.param("!!python/object/apply:os.system ['touch {marker}']\n", "config.yaml", id="yaml-python-tag-payload"),
    pytest.param("num_clients: [1, 2\nseed: {\n", "config.yaml", id="not-yaml"),
    pytest.param("- 1\n- 2\n", "config.yaml", id="a-list"),
    pytest.param("", "config.yaml", id="empty"),
    pytest.param("just a string\n", "config.yaml", id="a-string"),
    pytest.param("a: 1\n", "config.yaml", id="mapping-of-nonsense"),
]


@pytest.mark.parametrize("text, fragment", BAD_CONFIG_FILES)
def test_resume_refuses_an_unreadable_config_yaml(runs, tmp_path, text, fragment):
    marker = tmp_path / "marker"
    folder = copy_run(runs, "unfinished", tmp_path / "run")
    (folder / "config.yaml").write_text(text.replace("{marker}", str(marker)))
    before = tree_hashes(folder)
    with pytest.raises(ConfigError) as err:
        resume_like_the_cli(folder, tmp_path / "log")
    assert fragment in one_line(str(err.value))
    assert not marker.exists()
    assert tree_hashes(folder) == before


SAVED_VALUES = [
    pytest.param(lambda p: p.__setitem__("num_clients", 0), "num_clients=0", id="saved-num_clients=0"),
    pytest.param(lambda p: p.__setitem__("clients_per_round", 99), "clients_per_round=99",
                 id="saved-clients_per_round=99"),
    pytest.param(lambda p: p["train"].__setitem__("lr", "abc"), "train.lr",
                 id="saved-train.lr=abc"),
]


@pytest.mark.parametrize("edit, fragment", SAVED_VALUES)
def test_resume_checks_the_saved_config_values(runs, tmp_path, edit, fragment):
    folder = foreign_config(runs, tmp_path, edit)
    before = tree_hashes(folder)
    with pytest.raises(ConfigError) as err:
        resume_like_the_cli(folder, tmp_path / "log")
    assert fragment in one_line(str(err.value))
    assert tree_hashes(folder) == before


@pytest.mark.parametrize("where", ["missing-folder", "a-file", "no-config.yaml"])
def test_resume_of_something_that_is_not_a_run(runs, tmp_path, where):
    target = tmp_path / "target"
    if where == "a-file":
        target.write_text("hello")
    elif where == "no-config.yaml":
        copy_run(runs, "unfinished", target)
        (target / "config.yaml").unlink()
    before = tree_hashes(tmp_path)
    with pytest.raises(ConfigError, match="config.yaml missing") as err:
        resume_like_the_cli(target, tmp_path / "log")
    one_line(str(err.value))
    assert tree_hashes(tmp_path) == before


@pytest.mark.parametrize("extra", ["num_rounds=15", "seed=3", "sampler=hics"])
def test_resume_with_other_settings_is_refused(runs, tmp_path, extra):
    folder = copy_run(runs, "unfinished", tmp_path / "run")
    before = tree_hashes(folder)
    with pytest.raises(ConfigError, match="takes no other settings") as err:
        resume_like_the_cli(folder, tmp_path / "log", extra)
    assert extra in one_line(str(err.value))
    assert tree_hashes(folder) == before


def test_resume_of_a_finished_run_changes_nothing(runs, tmp_path):
    folder = copy_run(runs, "finished", tmp_path / "run")
    before = tree_hashes(folder)
    assert resume_like_the_cli(folder, tmp_path / "log") is None
    assert tree_hashes(folder) == before


def test_rerun_into_a_finished_run_folder_is_skipped(runs, tmp_path):
    folder = copy_run(runs, "finished", tmp_path / "run")
    before = tree_hashes(folder)
    assert plan_run(compose_config(RUN), folder, RUN) is None
    assert tree_hashes(folder) == before


def test_runs_recorded_with_a_retired_setting_are_still_skipped_and_resumed(runs, tmp_path):
    def old_version(plain):
        plain["algorithm"]["name"] = "fedavg"  # written by fedsim before algorithm.name was retired

    finished = copy_run(runs, "finished", tmp_path / "finished")
    config = yaml.safe_load((finished / "config.yaml").read_text())
    old_version(config)
    (finished / "config.yaml").write_text(yaml.safe_dump(config))
    assert plan_run(compose_config(RUN), finished, RUN) is None  # the rerun sweep skips it
    unfinished = foreign_config(runs, tmp_path, old_version)
    resume_like_the_cli(unfinished, tmp_path / "log")  # continues from its checkpoint

    def accuracies(folder: Path) -> list[float]:
        return [json.loads(line)["accuracy"] for line in (folder / "metrics.jsonl").read_text().splitlines()]

    assert (unfinished / "summary.json").exists()
    assert accuracies(unfinished) == accuracies(runs["finished"])


@pytest.mark.parametrize("how", ["resume=", "rerun"])
def test_a_run_whose_clients_keep_optimizer_state_is_not_resumed_from_a_checkpoint(runs, tmp_path, how):
    def keep_state(plain):
        plain["train"]["keep_optimizer_state"] = True

    folder = foreign_config(runs, tmp_path, keep_state)
    assert (folder / "checkpoint.npz").exists()
    before = tree_hashes(folder)
    with pytest.raises(ConfigError, match="keep_optimizer_state=true runs cannot be resumed") as err:
        if how == "resume=":
            resume_like_the_cli(folder, tmp_path / "log")
        else:
            plan_run(compose_config(RUN + ["train.keep_optimizer_state=true"]), folder,
                     RUN + ["train.keep_optimizer_state=true"])
    one_line(str(err.value))
    assert tree_hashes(folder) == before
    (folder / "checkpoint.npz").unlink()  # no checkpoint: the run starts again at round 1, exactly
    assert plan_run(compose_config(RUN + ["train.keep_optimizer_state=true"]), folder,
                    RUN + ["train.keep_optimizer_state=true"])[2] is True


@pytest.mark.parametrize("files", [("summary.json",), ("partition.json",), ("summary.json", "partition.json"),
                                   ("config.yaml",)])
def test_folder_with_user_files_but_no_records_is_refused(tmp_path, files):
    folder = tmp_path / "mine"
    folder.mkdir()
    for name in files:
        (folder / name).write_text('{"my": "own results"}\n')
    before = tree_hashes(folder)
    with pytest.raises(ConfigError, match="already holds") as err:
        plan_run(compose_config(RUN), folder, RUN)
    one_line(str(err.value))
    assert tree_hashes(folder) == before


@pytest.mark.parametrize("which", ["finished", "unfinished"])
def test_folder_holding_a_different_run_is_refused(runs, tmp_path, which):
    folder = copy_run(runs, which, tmp_path / "run")
    before = tree_hashes(folder)
    with pytest.raises(ConfigError, match="holds a different run") as err:
        plan_run(compose_config(RUN + ["seed=5"]), folder, RUN + ["seed=5"])
    one_line(str(err.value))
    assert tree_hashes(folder) == before


def test_cli_resume_of_a_foreign_config_is_one_line_exit_2(runs, tmp_path):
    marker = tmp_path / "marker"
    folder = foreign_run(runs, tmp_path, _cifar_target, marker)
    before = tree_hashes(folder)
    result = fedsim_cli(f"resume={folder}", f"hydra.run.dir={tmp_path / 'log'}", cwd=tmp_path)
    errors = [line for line in result.stderr.splitlines() if line.startswith("fedsim: error:")]
    assert result.returncode == 2 and len(errors) == 1 and "read_cifar_batch" in errors[0], result.stderr[-2000:]
    assert not marker.exists()
    assert tree_hashes(folder) == before


# =================================================================== checkpoint files
def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def rewrite(path: Path, meta_edit=None, array_edit=None, drop=()) -> None:
    """Rewrite a checkpoint: ``meta_edit(meta)``, ``array_edit(arrays)``, without ``drop``."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: np.array(archive[name]) for name in archive.files if name not in drop}
    if meta_edit is not None:
        meta = json.loads(str(arrays["meta"]))
        meta_edit(meta)
        arrays["meta"] = np.array(json.dumps(meta))
    if array_edit is not None:
        array_edit(arrays)
    path.write_bytes(npz_bytes(**arrays))


def _first_model_key(arrays: dict) -> str:
    return next(name for name in arrays if name.startswith("model/"))


def _set_weights(value=None, shape=None, dtype=None):
    """Replace the first model array: filled with ``value``, or of another ``shape`` or ``dtype``."""
    def edit(arrays):
        key = _first_model_key(arrays)
        old = arrays[key]
        if shape is not None:
            arrays[key] = np.zeros(shape, dtype=old.dtype)
        elif dtype is not None:
            arrays[key] = old.astype(dtype)
        else:
            arrays[key] = np.full(old.shape, value, dtype=old.dtype)
    return edit


def _object_meta(marker: Path):
    def edit(arrays):
        arrays["meta"] = np.array([Payload(marker)], dtype=object)
    return edit


def _object_sampler(marker: Path):
    def edit(arrays):
        arrays["sampler/evil"] = np.array([Payload(marker)], dtype=object)
    return edit


def ckpt(kind: str, fragment: str, *marks) -> pytest.param:
    return pytest.param(kind, fragment, id=kind, marks=marks)


CHECKPOINT_CASES = [
    ckpt("truncated", "not a readable fedsim checkpoint"),
    ckpt("empty", "not a readable fedsim checkpoint"),
    ckpt("garbage", "not a readable fedsim checkpoint"),
    ckpt("a-folder", "checkpoint.npz is a folder, not a file fedsim wrote"),
    ckpt("zip-without-npy", "holds meta.txt, which fedsim does not write"),
    ckpt("no-meta", "not a readable fedsim checkpoint"),
    ckpt("meta-not-json", "not a readable fedsim checkpoint"),
    ckpt("meta-a-list", "not a readable fedsim checkpoint"),
    ckpt("meta-round-not-a-number", "not a readable fedsim checkpoint"),
    ckpt("meta-names-a-missing-array", "not a readable fedsim checkpoint"),
    ckpt("pickled-object-in-meta", "not a readable fedsim checkpoint"),
    ckpt("pickled-object-in-sampler-state", "not a readable fedsim checkpoint"),
    ckpt("round-99", "outside 1..4"),
    ckpt("round-minus-3", "outside 1..4"),
    ckpt("round-0", "outside 1..4"),
    ckpt("no-identity", "belongs to another run"),
    ckpt("another-seed", "belongs to another run (config_hash, seed differ)"),
    ckpt("another-num-clients", "num_clients"),
    ckpt("another-model-shape", "belongs to another run"),
    ckpt("wrong-weight-shape", "do not match this run's model"),
    ckpt("model-key-dropped", "do not match this run's model"),
    ckpt("nan-weights", "not finite"),
    ckpt("inf-weights", "not finite"),
    ckpt("float64-weights", "model weights"),
    ckpt("sampler-state-of-another-class", "checkpoint"),
    ckpt("sampler-state-rebuilds-os.system", "checkpoint"),
    ckpt("sampler-state-garbage", "checkpoint"),
    ckpt("metrics-deleted", "metrics.jsonl does not hold rounds 1..2"),
    ckpt("metrics-gap", "metrics.jsonl does not hold rounds 1..2"),
    ckpt("metrics-garbage", "line 1: not strict JSON"),
    ckpt("metrics-row-not-an-object", "line 1: not a JSON object"),
]


def plant_checkpoint(kind: str, folder: Path, runs: dict[str, Path], marker: Path) -> None:
    path = folder / "checkpoint.npz"
    good = path.read_bytes()
    simple = {
        "truncated": lambda: path.write_bytes(good[: len(good) // 2]),
        "empty": lambda: path.write_bytes(b""),
        "garbage": lambda: path.write_bytes(np.random.default_rng(0).bytes(2048)),
        "zip-without-npy": lambda: _zip_with_text(path),
        "no-meta": lambda: rewrite(path, drop=("meta",)),
        "meta-not-json": lambda: rewrite(path, array_edit=lambda a: a.__setitem__("meta", np.array("{not json"))),
        "meta-a-list": lambda: rewrite(path, array_edit=lambda a: a.__setitem__("meta", np.array("[1, 2]"))),
        "meta-round-not-a-number": lambda: rewrite(path, meta_edit=lambda m: m.__setitem__("round", "two")),
        "meta-names-a-missing-array": lambda: rewrite(path, meta_edit=lambda m: m["model_keys"].append("ghost")),
        "pickled-object-in-meta": lambda: rewrite(path, array_edit=_object_meta(marker)),
        "pickled-object-in-sampler-state": lambda: rewrite(path, array_edit=_object_sampler(marker)),
        "round-99": lambda: rewrite(path, meta_edit=lambda m: m.__setitem__("round", 99)),
        "round-minus-3": lambda: rewrite(path, meta_edit=lambda m: m.__setitem__("round", -3)),
        "round-0": lambda: rewrite(path, meta_edit=lambda m: m.__setitem__("round", 0)),
        "no-identity": lambda: rewrite(path, meta_edit=lambda m: m.__setitem__("identity", None)),
        "another-seed": lambda: shutil.copy(runs["ckpt_seed"], path),
        "another-num-clients": lambda: shutil.copy(runs["ckpt_clients"], path),
        "another-model-shape": lambda: shutil.copy(runs["ckpt_shape"], path),
        "wrong-weight-shape": lambda: rewrite(path, array_edit=_set_weights(shape=(3,))),
        "model-key-dropped": lambda: rewrite(path, meta_edit=lambda m: m["model_keys"].pop(0)),
        "nan-weights": lambda: rewrite(path, array_edit=_set_weights(value=np.nan)),
        "inf-weights": lambda: rewrite(path, array_edit=_set_weights(value=np.inf)),
        "float64-weights": lambda: rewrite(path, array_edit=_set_weights(dtype=np.float64)),
        "sampler-state-of-another-class": lambda: rewrite(
            path, meta_edit=lambda m: m.__setitem__("sampler", {"t": "obj", "c": "os:system", "d": {}})),
        "sampler-state-rebuilds-os.system": lambda: rewrite(
            path, meta_edit=lambda m: m["sampler"]["d"].__setitem__("rng", {"t": "obj", "c": "fedsim.hooks:os.system",
                                                                            "d": {"x": 1}})),
        "sampler-state-garbage": lambda: rewrite(path, meta_edit=lambda m: m.__setitem__("sampler", {"t": "obj"})),
        "metrics-deleted": lambda: (folder / "metrics.jsonl").unlink(),
        "metrics-gap": lambda: _edit_rows(folder, lambda rows: rows[1:]),
        "metrics-garbage": lambda: _edit_rows(folder, lambda rows: ["{torn"] + rows[1:]),
        "metrics-row-not-an-object": lambda: _edit_rows(folder, lambda rows: ["5"] + rows),
    }
    if kind == "a-folder":
        path.unlink()
        path.mkdir()
        (path / "inside").write_text("x")
    else:
        simple[kind]()


def _zip_with_text(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("meta.txt", "hello")


def _edit_rows(folder: Path, edit) -> None:
    rows = (folder / "metrics.jsonl").read_text().splitlines()
    (folder / "metrics.jsonl").write_text("".join(line + "\n" for line in edit(rows)))


def resume_in_process(folder: Path):
    _, cfg = saved_run(str(folder))
    return run_experiment(build_experiment(cfg), folder, resume=True)


def test_the_unfinished_run_resumes(runs, tmp_path):
    """The control: the folder the checkpoint cases start from resumes and finishes."""
    folder = copy_run(runs, "unfinished", tmp_path / "run")
    summary = resume_in_process(folder)
    assert summary["resumed_from_round"] == 2 and (folder / "summary.json").exists()
    assert [json.loads(line)["round"] for line in (folder / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]


@pytest.mark.parametrize("kind, fragment", CHECKPOINT_CASES)
def test_hostile_checkpoint_is_refused_and_the_folder_left_unchanged(runs, tmp_path, kind, fragment):
    marker = tmp_path / "marker"
    folder = copy_run(runs, "unfinished", tmp_path / "run")
    plant_checkpoint(kind, folder, runs, marker)
    before = tree_hashes(folder)
    try:
        with pytest.raises(ConfigError) as err:
            resume_in_process(folder)
    finally:
        assert not marker.exists()
    assert fragment in one_line(str(err.value))
    assert tree_hashes(folder) == before


# =================================================================== IDX and CIFAR files
def idx_header(code: int, shape) -> bytes:
    return bytes([0, 0, code, len(shape)]) + b"".join(int(d).to_bytes(4, "big") for d in shape)


def mnist_folder(root: Path, n_train: int = 20, n_test: int = 10) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    write_idx(root / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (n_train, 28, 28)))
    write_idx(root / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (n_test, 28, 28)))
    write_idx(root / "train-labels-idx1-ubyte.gz", np.arange(n_train) % 10)
    write_idx(root / "t10k-labels-idx1-ubyte.gz", np.arange(n_test) % 10)
    return root


TRAIN_X, TRAIN_Y = "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"
TEST_X, TEST_Y = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"


def _gz(path: Path, raw: bytes) -> None:
    path.write_bytes(gzip.compress(raw))


def _folder_instead(path: Path) -> None:
    path.unlink()
    path.mkdir()


IDX_CASES = {
    # name: (file to spoil, how, fragment)
    "labels-fewer-than-images": (TRAIN_Y, lambda p: write_idx(p, np.arange(19) % 10), "19 labels for the 20 images"),
    "label-out-of-range": (TRAIN_Y, lambda p: write_idx(p, np.full(20, 12)), "[0, 10)"),
    "negative-label": (TRAIN_Y, lambda p: _gz(p, idx_header(0x09, (20,)) + np.full(20, -1, np.int8).tobytes()),
                       "[0, 10)"),
    "float-labels": (TRAIN_Y, lambda p: _gz(p, idx_header(0x0D, (20,)) + np.zeros(20, ">f4").tobytes()), "integers"),
    "2d-labels": (TEST_Y, lambda p: write_idx(p, np.zeros((10, 2))), "one-dimensional"),
    "bad-magic": (TRAIN_X, lambda p: _gz(p, b"\x01\x02\x08\x03" + bytes(100)), "bad magic"),
    "unknown-dtype-code": (TRAIN_X, lambda p: _gz(p, b"\x00\x00\x07\x01" + bytes(8)), "bad magic"),
    "empty-file": (TEST_X, lambda p: _gz(p, b""), "bad magic"),
    "truncated-header": (TRAIN_X, lambda p: _gz(p, b"\x00\x00\x08\x03\x00\x00"), "header is truncated"),
    "truncated-data": (TRAIN_X, lambda p: _gz(p, idx_header(0x08, (20, 28, 28)) + bytes(20 * 28 * 28 - 1)),
                       "truncated"),
    "absurd-ndim": (TRAIN_X, lambda p: _gz(p, b"\x00\x00\x08\xff" + bytes(64)), "dimensions"),
    "absurd-shape": (TRAIN_X, lambda p: _gz(p, idx_header(0x08, (2**32 - 1,) * 3) + bytes(8)), "truncated"),
    "images-rank-2": (TRAIN_X, lambda p: write_idx(p, np.zeros((20, 784))), "height, width"),
    "zero-images": (TRAIN_X, lambda p: write_idx(p, np.zeros((0, 28, 28))), "height, width"),
    "test-image-size-differs": (TEST_X, lambda p: write_idx(p, np.zeros((10, 14, 14))), "test images"),
    "bad-gzip": (TRAIN_Y, lambda p: p.write_bytes(b"\x1f\x8b this is not gzip"), "gzip"),
    "truncated-gzip": (TRAIN_X, lambda p: p.write_bytes(p.read_bytes()[:200]), "gzip"),
    "folder-in-place-of-a-file": (TEST_Y, _folder_instead, "folder"),
}


@pytest.mark.parametrize("name", list(IDX_CASES))
def test_hostile_idx_files_are_one_line_data_errors(tmp_path, name):
    filename, spoil, fragment = IDX_CASES[name]
    root = mnist_folder(tmp_path / "mnist")
    spoil(root / filename)
    before = tree_hashes(root)
    with pytest.raises(DataError) as err:
        IdxSource("mnist", str(root)).load()
    message = one_line(str(err.value))
    assert fragment in message and filename in message
    assert tree_hashes(root) == before


def cifar_batch(n: int = 6, **changes) -> dict:
    rng = np.random.default_rng(0)
    batch = {b"batch_label": b"training batch", b"labels": [i % 10 for i in range(n)],
             b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             b"filenames": [f"img_{i}.png".encode() for i in range(n)]}
    batch.update({k.encode(): v for k, v in changes.items()})
    return batch


class PersistentPickler(pickle.Pickler):
    def persistent_id(self, obj):
        return "evil" if isinstance(obj, str) and obj == "persist-me" else None


def _persistent(batch: dict) -> bytes:
    buffer = io.BytesIO()
    PersistentPickler(buffer, protocol=2).dump({**batch, b"labels": "persist-me"})
    return buffer.getvalue()


def _cifar_cases(marker: Path) -> dict:
    good = cifar_batch()
    return {
        # payloads: each would create the marker if it ran
        "os.system-payload": (pickle.dumps({**good, b"labels": Payload(marker)}, protocol=2), "refusing"),
        "eval-payload": (pickle.dumps({**good, b"data": Payload(marker, "eval")}), "refusing"),
        "exec-payload": (pickle.dumps(Payload(marker, "exec"), protocol=0), "refusing"),
        "subprocess-payload": (pickle.dumps({**good, b"filenames": [Payload(marker, "subprocess")]}), "refusing"),
        "payload-nested-in-a-list": (pickle.dumps({**good, b"labels": [0, [Payload(marker)]]}, protocol=4),
                                     "refusing"),
        "persistent-id": (_persistent(good), "refusing a persistent object"),
        "gzip-wrapped-payload": (gzip.compress(pickle.dumps(Payload(marker))), "refusing"),
        # malformed batches
        "a-list": (pickle.dumps([1, 2, 3]), "list"),
        "missing-labels": (pickle.dumps({b"data": good[b"data"]}), "labels"),
        "missing-data": (pickle.dumps({b"labels": good[b"labels"]}), "data"),
        "wrong-data-shape": (pickle.dumps(cifar_batch(data=np.zeros((6, 100), np.uint8))), "3072"),
        "float-pixels": (pickle.dumps(cifar_batch(data=np.zeros((6, 3072), np.float32))), "integer pixels"),
        "pixels-out-of-range": (pickle.dumps(cifar_batch(data=np.full((6, 3072), 300, np.int32))), "0..255"),
        "label-count-mismatch": (pickle.dumps(cifar_batch(labels=[0, 1, 2])), "6 images but 3 labels"),
        "label-out-of-range": (pickle.dumps(cifar_batch(labels=[0, 1, 2, 3, 4, 10])), "[0, 10)"),
        "float-labels": (pickle.dumps(cifar_batch(labels=[0.5] * 6)), "integers"),
        "ragged-labels": (pickle.dumps(cifar_batch(labels=[[0], [1, 2], 3, 4, 5, 6])), "CIFAR-10"),
        "empty-batch": (pickle.dumps(cifar_batch(n=0)), "non-empty"),
        "truncated-pickle": (pickle.dumps(good)[:100], "unreadable pickle"),
        "empty-file": (b"", "unreadable pickle"),
        "bad-gzip": (b"\x1f\x8b\x08 broken", "gzip"),
    }


CIFAR_CASE_NAMES = list(_cifar_cases(Path("/nonexistent")))


@pytest.mark.parametrize("name", CIFAR_CASE_NAMES)
def test_hostile_cifar_batches_are_one_line_data_errors_and_run_nothing(tmp_path, name):
    marker = tmp_path / "marker"
    content, fragment = _cifar_cases(marker)[name]
    root = tmp_path / "cifar"
    root.mkdir()
    for index in range(1, 6):
        (root / f"data_batch_{index}").write_bytes(pickle.dumps(cifar_batch()))
    (root / "test_batch").write_bytes(content)  # the last file read: every good batch before it
    before = tree_hashes(root)
    with pytest.raises(DataError) as err:
        Cifar10Source(str(root)).load()
    message = one_line(str(err.value))
    assert fragment in message and "test_batch" in message
    assert not marker.exists()
    assert tree_hashes(root) == before


def test_cifar_folder_in_place_of_a_batch(tmp_path):
    root = tmp_path / "cifar"
    root.mkdir()
    (root / "data_batch_1").mkdir()
    with pytest.raises(DataError, match="folder") as err:
        Cifar10Source(str(root)).load()
    assert "data_batch_1" in one_line(str(err.value))


def test_cifar_payload_reads_alone_run_nothing(tmp_path):
    """The reader itself, outside any source: every payload kind is refused."""
    marker = tmp_path / "marker"
    for how in ("system", "eval", "exec", "subprocess"):
        path = tmp_path / f"batch_{how}"
        path.write_bytes(pickle.dumps(Payload(marker, how)))
        with pytest.raises(DataError, match="refusing"):
            read_cifar_batch(path)
    assert not marker.exists()
