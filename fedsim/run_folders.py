"""What to do with a run folder: start a run, resume one, skip a finished one, or refuse.

A run folder comes from outside (a colleague's results, a download): nothing in it may run
code. Its ``config.yaml`` may only name the ``_target_`` classes of fedsim's own config groups
(``conf/``); anything else is refused in one line before anything is built.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fedsim.config_schema import RESUME_SETTINGS, FedsimConfig, upgrade_legacy
from fedsim.errors import ConfigError, first_line
from fedsim.identity import is_fedsim_target, known_targets, same_run, trusted_target
from fedsim.results.checkpoint import CHECKPOINT
from fedsim.results.recorder import METRICS_FILE
from fedsim.safe_io import read_yaml


FEDSIM_FILES = (METRICS_FILE, "config.yaml", "partition.json", "summary.json", "sampler.jsonl",
                "checkpoint.npz", "learning_curve.png", "fedsim.log", "metrics.csv", "entropy_report.json",
                "entropy_estimate.png")
"""Files fedsim writes into a run folder: a folder holding any of them is not a fresh one, and
without a run's records there they are someone's own files, which a fresh run never overwrites."""


def plan_run(cfg: DictConfig, run_dir: Path, overrides: Sequence[str] = ()) -> tuple[Path, DictConfig, bool] | None:
    """Decide what to run: (folder, config, resume?), or None when there is nothing to do.

    ``resume=<folder>`` continues that run with its saved config (no other settings but
    :data:`~fedsim.config_schema.RESUME_SETTINGS`; a finished run is left as it is). Otherwise a fresh folder
    starts a run; a folder already holding the same run (a rerun sweep) is skipped if
    finished and resumed if not, with the user's own (identical) config; a folder holding a
    different run, or files fedsim writes but no run of the same config, is refused.
    """
    if cfg.get("resume") is not None:
        allowed = RESUME_SETTINGS + ("tracking",)  # tracking: the config group that fills hooks
        extra = [o for o in overrides if o.split("=", 1)[0].lstrip("+~").split(".")[0] not in allowed]
        if extra:
            raise ConfigError(f"resume={cfg.resume} takes no other settings (got {' '.join(extra)}): a resumed run "
                              f"continues with its saved config; start a new run to change settings")
        saved_dir, saved_cfg = saved_run(cfg.resume)
        if os.path.lexists(saved_dir / "summary.json"):
            print(f"fedsim: {saved_dir} already finished; nothing to resume", file=sys.stderr)
            return None
        check_resumable(saved_dir, saved_cfg)
        for key in RESUME_SETTINGS:
            if key != "resume":
                # how to run comes from this command, what to run from the folder; hooks included:
                # the folder's are never used (a folder may come from anyone)
                saved_cfg[key] = cfg[key]
        print(f"fedsim: resuming {saved_dir} with its saved config", file=sys.stderr)
        return saved_dir, saved_cfg, True
    written = [name for name in FEDSIM_FILES if os.path.lexists(run_dir / name)]
    if not written:
        return run_dir, cfg, False
    if not os.path.lexists(run_dir / METRICS_FILE):
        raise ConfigError(f"output folder {run_dir} already holds {', '.join(written)}; choose another folder "
                          f"(hydra.run.dir=...)")
    _, saved_cfg = saved_run(str(run_dir))
    if not same_run(saved_cfg, cfg):
        raise ConfigError(f"output folder {run_dir} holds a different run; choose another folder")
    if os.path.lexists(run_dir / "summary.json"):
        print(f"fedsim: {run_dir} already finished; skipped", file=sys.stderr)
        return None
    check_resumable(run_dir, cfg)
    print(f"fedsim: {run_dir} is unfinished; resuming it", file=sys.stderr)
    return run_dir, cfg, True


def check_resumable(run_dir: Path, cfg: DictConfig) -> None:
    """Refuse (ConfigError) to continue a run from a checkpoint that cannot hold all its state.

    With ``train.keep_optimizer_state`` each client's optimizer state (SGD momentum) lives on
    its node between participations; the server's checkpoint does not have it, so a run
    continued from one would differ from the uninterrupted run. The same holds for an
    algorithm with server state (FedAdam's moments): only one that declares ``stateless``
    (fedsim's FedAvg and FedProx) continues from a checkpoint. Without a checkpoint a
    resume starts again at round 1, which repeats the run exactly, so that is allowed.
    """
    if not os.path.lexists(run_dir / CHECKPOINT):
        return
    algorithm = cfg.algorithm.get("_target_", "")
    if not getattr(trusted_target(algorithm, is_fedsim_target), "stateless", False):
        raise ConfigError(f"{run_dir}: algorithm {algorithm.rsplit('.', 1)[-1]} keeps server state between rounds "
                          f"that {CHECKPOINT} does not hold, so a run continued from it would differ from an "
                          f"uninterrupted one; run it again in a new folder, or set checkpoint_every=0 for such runs")
    if cfg.train.get("keep_optimizer_state"):
        raise ConfigError(f"{run_dir}: train.keep_optimizer_state=true runs cannot be resumed (the clients' "
                          f"optimizer state is not in {CHECKPOINT}, so the run would differ from an uninterrupted "
                          f"one); run it again in a new folder, or set checkpoint_every=0 for such runs")


def foreign_targets(node: Any, path: str = "") -> list[str]:
    """``setting=target`` for every ``_target_`` in ``node`` that fedsim's configs do not name."""
    if isinstance(node, dict):
        found = []
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if key == "_target_" and value not in known_targets():
                found.append(f"{where}={value}")
            found += foreign_targets(value, where)
        return found
    if isinstance(node, list):
        return [t for i, v in enumerate(node) for t in foreign_targets(v, f"{path}[{i}]")]
    return []


def interpolations(node: Any, path: str = "") -> list[tuple[str, str]]:
    """``(setting, value)`` of every string holding an OmegaConf interpolation (``${...}``)."""
    if isinstance(node, dict):
        return [found for k, v in node.items() for found in interpolations(v, f"{path}.{k}" if path else str(k))]
    if isinstance(node, list):
        return [found for i, v in enumerate(node) for found in interpolations(v, f"{path}[{i}]")]
    return [(path, node)] if isinstance(node, str) and "${" in node else []


def saved_run(folder: str) -> tuple[Path, DictConfig]:
    """The folder and saved config of a run to resume (ConfigError if it is not one, or not safe).

    The config is read as plain YAML (no tags, no code) and may only name fedsim's own
    targets; a run of your own plugin classes is resumed by rerunning its original command
    with ``hydra.run.dir=<folder>``, which uses the config you give, not the folder's.
    """
    run_dir = Path(folder).expanduser()
    path = run_dir / "config.yaml"
    if not run_dir.is_dir() or not os.path.lexists(path):
        raise ConfigError(f"resume={folder}: no fedsim run there (config.yaml missing); give a run folder")
    try:
        plain = read_yaml(path)
        if not isinstance(plain, dict):
            raise ValueError("not a mapping")
    except Exception as exc:
        reason = first_line(exc)
        raise ConfigError(f"resume={folder}: config.yaml is not a readable config ({reason})") from None
    interpolation = next(iter(interpolations(plain)), None)
    if interpolation:
        raise ConfigError(f"resume={folder}: config.yaml sets {interpolation[0]}={interpolation[1]!r}, an "
                          f"interpolation; fedsim writes configs resolved, so this one was edited (it could read "
                          f"the environment); rerun the original command instead")
    upgrade_legacy(plain)
    foreign = foreign_targets(plain)
    if foreign:
        raise ConfigError(f"resume={folder}: config.yaml names {foreign[0]}, which is not one of fedsim's own "
                          f"classes; rerun the original command with hydra.run.dir={folder} to continue it")
    try:  # the schema's types and required settings, as for a new run
        cfg = OmegaConf.merge(OmegaConf.structured(FedsimConfig), plain)
        missing = sorted(OmegaConf.missing_keys(cfg))
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
    except Exception as exc:
        reason = first_line(exc)
        key = getattr(exc, "full_key", None)
        raise ConfigError(f"resume={folder}: config.yaml is not a fedsim config "
                          f"({f'{key}: ' if key else ''}{reason})") from None
    cfg.resume = str(run_dir)
    cfg.crash_after_round = None
    return run_dir, cfg
