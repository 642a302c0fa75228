"""The ``fedsim`` command: Hydra config -> validated experiment -> run -> summary.

Bad settings (unknown config names, invalid values, missing data) stop before any
training with one line on stderr naming the setting, and exit code 2.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_HOME", str(Path(tempfile.gettempdir()) / "fedsim-flwr-home"))

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from fedsim.config import CONF_DIR  # noqa: E402
from fedsim.config_schema import FedsimConfig  # noqa: E402
from fedsim.errors import ConfigError, RunDiverged, first_line  # noqa: E402

CONFIG_GROUPS = ("dataset", "partitioner", "model", "sampler", "algorithm", "engine", "faults", "experiment",
                 "tracking")
EXIT_CONFIG_ERROR = 2
EXIT_NOTHING_TRAINED = 4
"""A run that finished without one usable client update in any round (records are written)."""
EXIT_INTERRUPTED = 130
"""Ctrl-C (the shell's code for SIGINT): records up to the last finished round are kept."""


def config_choices(group: str) -> list[str]:
    """Names a config group offers (its YAML files)."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def check_group_overrides(argv: list[str]) -> None:
    """Reject ``group=name`` overrides naming no config file, before Hydra starts.

    Skipped when the user adds config folders of their own (``hydra.searchpath``).
    """
    if any(arg.startswith("hydra.searchpath") for arg in argv):
        return
    for arg in argv:
        if "=" not in arg or arg.startswith("-"):
            continue
        key, value = arg.split("=", 1)
        group = key.lstrip("+~")
        if group not in CONFIG_GROUPS or "(" in value:
            continue
        choices = config_choices(group)
        for name in value.strip("[]").split(","):
            name = name.strip()
            if name and name not in choices:
                raise ConfigError(f"{group}={name}: unknown {group}; choose one of {', '.join(choices)}")


def parsed_overrides(argv: list[str], skip: tuple[str, ...]) -> list[tuple[str, Any]]:
    """``(text, parsed override)`` for each ``key=value`` argument not starting with ``skip``.

    Empty when Hydra's parser refuses the line: Hydra then reports the syntax error itself.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    texts = [a for a in argv if "=" in a and not a.startswith(skip)]
    try:
        return list(zip(texts, OverridesParser.create().parse_overrides(texts)))
    except Exception:
        return []


def override_values(override: Any) -> list[str]:
    """Every value an override gives (each element of a sweep), as text."""
    if override.is_sweep_override():
        return list(override.sweep_string_iterator())
    return [override.get_value_element_as_str()]


def check_value_overrides(argv: list[str]) -> None:
    """Refuse ``key=value`` overrides whose value does not fit the schema's type.

    Each value of a sweep is checked, before Hydra composes anything, so a bad value is one
    line naming the setting (``train.lr=abc: ... could not be converted to Float``).
    """
    from omegaconf import OmegaConf

    schema = OmegaConf.structured(FedsimConfig)
    for _, override in parsed_overrides(argv, ("-", "hydra", "~")):
        key = override.key_or_group
        if key in CONFIG_GROUPS or override.package is not None:
            continue
        for value in override_values(override):
            try:
                OmegaConf.merge(schema, OmegaConf.from_dotlist([f"{key}={value}"]))
            except Exception as exc:
                raise ConfigError(f"{key}={value}: {first_line(exc)}") from None


def check_composition(argv: list[str]) -> None:
    """Compose the config once (the first value of each sweep) and report a failure in one line.

    Hydra's own report of a composition error (a key a group does not have, given without
    ``+``) spans several lines; this gives the same facts in one.
    """
    from fedsim.config import compose_config

    parsed = parsed_overrides(argv, ("-", "hydra"))
    if not parsed:
        return
    first = []
    for text, override in parsed:
        values = override_values(override) if override.is_sweep_override() else []
        first.append(f"{text.split('=', 1)[0]}={values[0]}" if values else text)
    try:
        compose_config(first)
    except Exception as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        cause = exc.__cause__
        detail = first_line(cause) if cause is not None and str(cause) else ""
        raise ConfigError("; ".join(dict.fromkeys([*lines[:2], detail] if detail else lines[:2]))) from None


def check_output_folders(argv: list[str]) -> None:
    """Refuse an output folder that cannot be created or written, before Hydra tries to."""
    for arg in argv:
        key, _, value = arg.partition("=")
        if key.lstrip("+") not in ("hydra.run.dir", "hydra.sweep.dir") or not value or "${" in value:
            continue
        folder = Path(value).expanduser()
        hydra_files = [folder / ".hydra", *(folder / ".hydra" / f"{n}.yaml" for n in ("config", "hydra", "overrides")),
                       folder / "cli.log"]
        links = [p for p in hydra_files if p.is_symlink()]
        if links:  # Hydra writes these itself, following links: refuse before it starts
            raise ConfigError(f"{key}={value}: {links[0]} is a symbolic link, which Hydra would write through; "
                              f"remove it or choose another folder")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f".fedsim-write-test-{os.getpid()}"
            probe.touch()
            probe.unlink()
        except OSError as exc:
            raise ConfigError(f"{key}={value}: cannot write there ({exc.strerror or exc}); choose another folder") from None


def quiet_flower(level: str = "WARNING") -> None:
    """Lower Flower's log level and drop its duplicate console handler under Hydra.

    ``flwr.supercore.logger`` sets Flower's logger to DEBUG when it is first imported (lazily,
    by the engines), so it is imported here first; otherwise the level set here is undone and
    the wrapped strategies' INFO lines reach the console.
    """
    try:
        import flwr.supercore.logger  # noqa: F401
    except ImportError:  # other Flower versions
        pass
    flwr_logger = logging.getLogger("flwr")
    flwr_logger.setLevel(getattr(logging, level, logging.WARNING))
    flwr_logger.propagate = False
    logging.getLogger("alembic").setLevel(logging.WARNING)  # Flower's state store migrations


_task_started = False


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig) -> float | None:
    """Run one simulation (one job of a sweep); returns the final accuracy."""
    global _task_started
    _task_started = True
    from fedsim.reporting import print_summary

    quiet_flower(cfg.get("flower_log_level", "ERROR"))
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        from fedsim.experiment import build_experiment, run_experiment
        from fedsim.run_folders import plan_run
        from fedsim.logs import close_logging, setup_logging
        from fedsim.results.run_lock import RunLock

        overrides = HydraConfig.get().overrides.task
        target = run_dir if cfg.get("resume") is None else Path(str(cfg.resume)).expanduser()
        if not target.is_dir() and cfg.get("resume") is not None:
            plan_run(cfg, run_dir, overrides)  # says in one line that there is no run to resume
        # one writer per run folder, from deciding what to do with it to the end of the run
        with RunLock(target):
            plan = plan_run(cfg, run_dir, overrides)
            if plan is None:  # a finished run: nothing to do
                return None
            run_dir, cfg, resume = plan
            setup_logging(run_dir, cfg.get("log_level", "INFO"))
            try:
                experiment = build_experiment(cfg)
                summary = run_experiment(experiment, run_dir, resume=resume)
            finally:
                close_logging()
    except ConfigError as exc:
        print(f"fedsim: error: {exc}", file=sys.stderr)
        sys.exit(EXIT_CONFIG_ERROR)
    except RunDiverged as exc:
        print(f"fedsim: error: {exc}; records up to that round are in {run_dir}. Lower train.lr, "
              f"or set on_divergence=continue to keep going", file=sys.stderr)
        sys.exit(RunDiverged.exit_code)
    print_summary(summary)
    if summary.get("no_usable_reply"):
        print(f"fedsim: error: no round produced a usable client update (every selected client failed or was "
              f"rejected; reasons in {run_dir / 'metrics.jsonl'}): the model never trained. Lower train.lr or "
              f"train.weight_decay, or check faults", file=sys.stderr)
        sys.exit(EXIT_NOTHING_TRAINED)
    return summary["final_accuracy"]


def version_text() -> str:
    """fedsim's version and those of the libraries that decide its results."""
    from importlib.metadata import PackageNotFoundError, version

    def of(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return f"fedsim {of('fedsim')} (flwr {of('flwr')}, torch {of('torch')}, hydra-core {of('hydra-core')})"


def main() -> None:
    """Console entry point (``fedsim``)."""
    if "--version" in sys.argv[1:]:
        print(version_text())
        return
    try:
        check_group_overrides(sys.argv[1:])
        check_value_overrides(sys.argv[1:])
        check_composition(sys.argv[1:])
        check_output_folders(sys.argv[1:])
    except ConfigError as exc:
        print(f"fedsim: error: {exc}", file=sys.stderr)
        sys.exit(EXIT_CONFIG_ERROR)
    try:
        hydra_main()
    except KeyboardInterrupt:
        print("fedsim: interrupted; the records of every finished round are kept: rerun the same command to "
              "resume", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except SystemExit as exc:
        # Hydra exits 1 on composition errors (e.g. a misspelt key); those are config errors.
        if exc.code == 1 and not _task_started:
            sys.exit(EXIT_CONFIG_ERROR)
        raise


if __name__ == "__main__":
    main()
