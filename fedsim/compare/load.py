"""Load run folders once into two pandas tables.

- ``rounds``: one row per (run, round), tidy: ``run, sampler, setting, seed, finished, round``
  followed by every key of the run's ``metrics.jsonl`` rows (``accuracy``, ``loss``,
  ``selected``, ``per_class_accuracy`` when recorded, ...).
- ``runs``: one row per run: ``run, dir, sampler, sampler_class, setting, seed, finished,
  rounds_recorded, num_rounds, groups`` (client -> heterogeneity group, from
  ``partition.json``), ``alphas`` (group -> Dirichlet alpha, from ``partitioner.alphas``),
  ``wall_seconds``, ``streams_version`` (1 for runs recorded before fedsim 0.2.0).

A run is a folder holding ``metrics.jsonl``; it is *finished* when it also holds
``summary.json``. Unfinished runs stay in both tables with ``finished=False`` so reports can
list them; :meth:`Study.finished` is what the metrics use.

Labels:
- ``sampler``: ``summary.json``'s ``sampler`` when it is a config name (``hics``,
  ``divfl_stale``); for older folders whose summary holds a class name, the Hydra choice in
  ``.hydra/hydra.yaml``, else a short form of the class (``HiCSSampler`` -> ``hics``). When
  runs of one setting share a label but differ in sampler settings, those settings are
  appended, e.g. ``hics[estimator=weight_rows]``. Both labels compare effective settings
  (:mod:`fedsim.identity`): a switch an older run's config lacks counts as its class's
  default (the value the run had), e.g. ``hics_diverse[exploration_rate=0.0]``, and a switch
  the class does not read with the others given splits nothing.
- ``setting``: dataset, partitioner with its parameters, N and K (e.g. ``fmnist
  groups[alphas=0.001,0.2; min_size_fraction=0.2] N=50 K=5``), plus any other records-defining
  setting that differs between the loaded runs (not seed or sampler), e.g. ``... [train.lr=0.01]``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from fedsim.errors import ConfigError
from fedsim.identity import component_params, effective_config, is_fedsim_target
from fedsim.results.archive import archives_under, unpack
from fedsim.results.recorder import METRICS_FILE, record_problem
from fedsim.safe_io import CONFIG_LIMIT, RECORDS_LIMIT, UnsafeFile, parse_json, read_json, read_text, read_yaml

_SAMPLER_SHORT = {
    "HiCSSampler": "hics",
    "RandomSampler": "random",
    "PowerOfChoiceSampler": "powd",
    "DivFLSampler": "divfl",
    "FedCorSampler": "fedcor",
    "ClusteredSampler": "clustered",
}
# records-defining settings that do not split runs into settings: what a study varies on
# purpose (seed, sampler) and what the setting label already shows
_LABELLED = ("seed", "sampler", "dataset", "partitioner", "num_clients", "clients_per_round")
ID_COLUMNS = ["run", "sampler", "setting", "seed", "finished"]


@dataclass
class Study:
    """The loaded runs: ``runs`` (one row per run) and ``rounds`` (one row per run x round)."""

    runs: pd.DataFrame
    rounds: pd.DataFrame
    skipped: list[str] = field(default_factory=list)  # folders left out: one line each, naming the file

    def finished(self) -> "Study":
        """Only the finished runs (``summary.json`` present)."""
        keep = self.runs[self.runs["finished"].astype(bool)]
        return Study(keep.reset_index(drop=True), self.rounds[self.rounds["run"].isin(keep["run"])].reset_index(drop=True),
                     self.skipped)

    def mixed_streams(self) -> list[str]:
        """Settings with a seed whose runs were drawn with different stream derivations, as
        ```<setting>` (seeds k, ...)`` (those seeds are not paired).

        ``summary.json``'s ``streams_version`` (:data:`fedsim.streams.STREAMS_VERSION`; runs
        recorded before fedsim 0.2.0 have none and count as 1): under one seed, runs of two
        versions saw different partitions, initial models and client streams. Seeds drawn
        wholly with one version or wholly with another pair as they should (pairs are within
        a seed), so a study may add seeds after a stream change without rerunning older ones.
        """
        versions = self.runs.groupby(["setting", "seed"], dropna=False)["streams_version"].nunique()
        mixed = versions[versions > 1].reset_index()
        return [f"`{setting}` (seeds {', '.join(str(s) for s in group['seed'])})"
                for setting, group in mixed.groupby("setting", sort=True)]

    @property
    def unfinished(self) -> pd.DataFrame:
        """Runs without ``summary.json``: run, sampler, setting, seed, rounds recorded."""
        cols = ["run", "sampler", "setting", "seed", "rounds_recorded"]
        return self.runs.loc[~self.runs["finished"].astype(bool), cols].reset_index(drop=True)


def find_runs(paths: Sequence[str | Path]) -> list[Path]:
    """Every folder at or under ``paths`` that holds ``metrics.jsonl`` (sorted, unique)."""
    found: set[Path] = set()
    for path in map(Path, paths):
        if (path / METRICS_FILE).is_file():
            found.add(path.resolve())
        if path.is_dir():
            found.update(p.parent.resolve() for p in path.rglob(METRICS_FILE))
    return sorted(found)


class BadRun(ValueError):
    """A run folder that is not as fedsim writes them; the message names the file (and line)."""


def _mapping(path: Path, reader: Any, limit: int) -> dict[str, Any] | None:
    """A file's top-level mapping (None when the file is not there); BadRun for anything else."""
    if not os.path.lexists(path):
        return None
    try:
        data = reader(path, limit)
    except UnsafeFile as exc:
        raise BadRun(str(exc)) from None
    if not isinstance(data, dict):
        raise BadRun(f"{path}: holds {type(data).__name__}, not the mapping fedsim writes")
    return data


def read_run(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any], list[dict[str, Any]]]:
    """(config, summary or None, partition, metrics rows) of one run folder, checked (BadRun otherwise).

    Everything is read through :mod:`fedsim.safe_io` (no links, no special files, bounded,
    UTF-8, strict JSON). ``num_rounds`` must be a whole number, the sampler a mapping, and
    every metrics line a record (:func:`~fedsim.results.recorder.record_problem`: rounds
    increasing within 1..num_rounds, accuracy in [0, 1]); only an unfinished run's last line
    may be torn (the run was stopped while writing it).
    """
    config_path = run_dir / "config.yaml"
    config = _mapping(config_path, read_yaml, CONFIG_LIMIT) or {}
    if not isinstance(config.get("sampler", {}), dict):
        raise BadRun(f"{config_path}: sampler is {config['sampler']!r}, not a sampler config")
    num_rounds = config.get("num_rounds")
    if isinstance(num_rounds, bool) or not isinstance(num_rounds, int) or num_rounds < 1:
        raise BadRun(f"{config_path}: num_rounds is {num_rounds!r}, not a whole number >= 1")
    summary = _mapping(run_dir / "summary.json", read_json, CONFIG_LIMIT)
    partition = _mapping(run_dir / "partition.json", read_json, RECORDS_LIMIT) or {}
    metrics = run_dir / METRICS_FILE
    try:
        lines = read_text(metrics, RECORDS_LIMIT).splitlines()
    except UnsafeFile as exc:
        raise BadRun(str(exc)) from None
    rows, last = [], 0
    for number, line in enumerate(lines, start=1):
        problem = record_problem(line, last, num_rounds)
        if problem and summary is None and number == len(lines):
            break  # the torn last line of an unfinished run
        if problem:
            raise BadRun(f"{metrics}: line {number}: {problem}")
        rows.append(parse_json(line))
        last = rows[-1]["round"]
    return config, summary, partition, rows


def _hydra_sampler_choice(run_dir: Path) -> str | None:
    try:
        data = read_yaml(run_dir / ".hydra" / "hydra.yaml")
        choice = data["hydra"]["runtime"]["choices"]["sampler"]
    except Exception:  # noqa: BLE001 - missing or odd hydra.yaml only loses the nicer name
        return None
    return str(choice) if isinstance(choice, str) and choice else None


def _short(target: str, suffix: str) -> str:
    name = str(target).rsplit(".", 1)[-1]
    if name.endswith(suffix) and name != suffix:
        name = name[: -len(suffix)]
    return name.lower()


def _looks_like_class(name: str) -> bool:
    return name[:1].isupper() or name.endswith("Sampler")


def sampler_class(config: dict[str, Any], summary: dict[str, Any] | None) -> str:
    """The sampler's class name from the config's ``_target_`` (else an old summary's ``sampler``)."""
    target = str((config.get("sampler") or {}).get("_target_", ""))
    if target:
        return target.rsplit(".", 1)[-1]
    name = str((summary or {}).get("sampler") or "")
    return name if _looks_like_class(name) else "unknown"


def sampler_label(config: dict[str, Any], summary: dict[str, Any] | None, hydra_choice: str | None) -> str:
    """Config name of the sampler: summary's ``sampler`` if it is one, else the Hydra choice,
    else a short form of the class name."""
    name = str((summary or {}).get("sampler") or "")
    if name and not _looks_like_class(name):
        return name
    if hydra_choice:
        return hydra_choice
    cls = sampler_class(config, summary)
    return _SAMPLER_SHORT.get(cls, _short(cls, "Sampler"))


def fmt_value(value: Any) -> str:
    """Compact text for a config value (lists comma-joined)."""
    if isinstance(value, (list, tuple)):
        return ",".join(fmt_value(v) for v in value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}={fmt_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def base_setting_label(config: dict[str, Any]) -> str:
    """Dataset + partitioner (with parameters) + N and K."""
    dataset = config.get("dataset") or {}
    data_name = dataset.get("name") or _short(str(dataset.get("_target_", "?")), "Source")
    part = config.get("partitioner") or {}
    params = [f"{k}={fmt_value(v)}" for k, v in part.items() if not str(k).startswith("_")]
    part_text = _short(str(part.get("_target_", "?")), "Partitioner") + (f"[{'; '.join(params)}]" if params else "")
    return f"{data_name} {part_text} N={config.get('num_clients')} K={config.get('clients_per_round')}"


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one dict of dotted keys."""
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def differing_keys(dicts: Sequence[dict[str, Any]]) -> list[str]:
    """Dotted keys present in every dict whose values are not all equal (sorted)."""
    flats = [flatten(d) for d in dicts]
    if not flats:
        return []
    keys = sorted(set.intersection(*(set(f) for f in flats)))
    return [k for k in keys if len({json.dumps(f[k], default=str) for f in flats}) > 1]


def effective(config: dict[str, Any]) -> dict[str, Any]:
    """A folder's config as :mod:`fedsim.identity` sees it (defaults of fedsim's own classes only)."""
    return effective_config(config, trusted=is_fedsim_target)


def _setting_labels(configs: list[dict[str, Any]]) -> list[str]:
    rest = [{k: v for k, v in effective(c).items() if k not in _LABELLED} for c in configs]
    keys = differing_keys(rest)
    labels = []
    for config, flat in zip(configs, map(flatten, rest)):
        extra = ", ".join(f"{k}={fmt_value(flat.get(k))}" for k in keys)
        labels.append(base_setting_label(config) + (f" [{extra}]" if extra else ""))
    return labels


def _run_names(dirs: list[Path]) -> list[str]:
    names = [d.name for d in dirs]
    if len(set(names)) == len(names):
        return names
    root = Path(os.path.commonpath([str(d) for d in dirs]))
    return [str(d.relative_to(root)) for d in dirs]


def load(paths: Sequence[str | Path], strict: bool = False) -> Study:
    """Load every run under ``paths`` (see the module docstring for the two tables).

    Run archives (``runs.parquet``, :mod:`fedsim.results.archive`) at or under ``paths`` are
    read too: unpacked into a temporary folder and read through the same checks; a run that
    is also there as a folder is read from the folder. ``dir`` is where the run's folder is
    (or would be, unpacked). A run folder that :func:`read_run` refuses is left out and
    listed in ``Study.skipped`` (one line naming the file); with ``strict`` the first one
    raises :class:`BadRun`.
    """
    with tempfile.TemporaryDirectory(prefix="fedsim-compare-") as scratch:
        found, skipped = {d: d for d in find_runs(paths)}, []  # where a run belongs -> where it is read
        for index, archive in enumerate(a for p in paths for a in archives_under(p)):
            try:
                unpacked = unpack(archive, Path(scratch) / str(index))
            except ConfigError as exc:
                if strict:
                    raise BadRun(str(exc)) from None
                skipped.append(str(exc))
                continue
            for run_dir in unpacked:
                found.setdefault((archive.parent / run_dir.name).resolve(), run_dir)
        return _load(found, strict, skipped)


def _load(found: dict[Path, Path], strict: bool, skipped: list[str]) -> Study:
    records = []
    where = {}
    for home, run_dir in sorted(found.items()):
        where[run_dir] = home
        try:
            records.append((run_dir, *read_run(run_dir)))
        except BadRun as exc:
            if strict:
                raise
            skipped.append(str(exc))
    dirs = [where[r[0]] for r in records]
    settings = _setting_labels([r[1] for r in records])
    run_rows, frames = [], []
    for name, setting, (run_dir, config, summary, partition, rows) in zip(_run_names(dirs), settings, records):
        alphas = (config.get("partitioner") or {}).get("alphas")
        last_round = max((int(r["round"]) for r in rows if "round" in r), default=0)
        run_rows.append(
            {
                "run": name,
                "dir": str(where[run_dir]),
                "sampler": sampler_label(config, summary, _hydra_sampler_choice(run_dir)),
                "sampler_class": sampler_class(config, summary),
                "sampler_config": {k: v for k, v in (config.get("sampler") or {}).items()},
                "setting": setting,
                "seed": config.get("seed"),
                "finished": summary is not None,
                "rounds_recorded": len(rows),
                "num_rounds": int(config.get("num_rounds") or last_round),
                "groups": partition.get("groups"),
                "alphas": list(alphas) if isinstance(alphas, (list, tuple)) else None,
                "wall_seconds": (summary or {}).get("wall_seconds"),
                "streams_version": (summary or {}).get("streams_version", 1),
            }
        )
        frame = pd.DataFrame(rows)
        if frame.empty:
            frame = pd.DataFrame({"round": pd.Series(dtype=int)})
        frame.insert(0, "run", name)
        frames.append(frame)
    runs = pd.DataFrame(run_rows, columns=[
        "run", "dir", "sampler", "sampler_class", "sampler_config", "setting", "seed", "finished",
        "rounds_recorded", "num_rounds", "groups", "alphas", "wall_seconds", "streams_version",
    ])
    _disambiguate_samplers(runs)
    runs = runs.sort_values(["setting", "sampler", "seed", "run"], key=_sort_key).reset_index(drop=True)
    rounds = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["run", "round"])
    ids = runs[ID_COLUMNS]
    rounds = ids.merge(rounds, on="run", how="right")
    if "accuracy" in rounds:
        rounds["accuracy"] = pd.to_numeric(rounds["accuracy"], errors="coerce")
    rounds = rounds.sort_values(["run", "round"]).reset_index(drop=True)
    return Study(runs, rounds, skipped)


def seed_key(value: Any) -> tuple:
    """Sort key: numbers in numeric order, then anything else as text."""
    return (0, value, "") if isinstance(value, (int, float)) and not isinstance(value, bool) else (1, 0, str(value))


def _sort_key(column: pd.Series) -> pd.Series:
    return column.map(seed_key)


def _disambiguate_samplers(runs: pd.DataFrame) -> None:
    """Append differing sampler settings to labels shared by runs of one setting (in place)."""
    by_label: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, row in runs.iterrows():
        by_label[(row["setting"], row["sampler"])].append(i)
    for idx in by_label.values():
        # effective parameters: a switch an older run lacks is its class's default (the value it
        # ran with); one a run's class does not read with its other settings is not there, and a
        # key not in every run's parameters tells nothing apart (differing_keys skips it)
        cfgs = [dict(component_params(runs.at[i, "sampler_config"], trusted=is_fedsim_target),
                     _class=runs.at[i, "sampler_class"]) for i in idx]
        keys = [k for k in differing_keys(cfgs) if k != "_target_"]
        if not keys:
            continue
        for i, cfg in zip(idx, map(flatten, cfgs)):
            runs.at[i, "sampler"] += "[" + ", ".join(f"{k}={fmt_value(cfg.get(k))}" for k in keys) + "]"


def group_alpha_labels(groups: Sequence[int] | None, alphas: Sequence[float] | None) -> dict[int, str]:
    """Group id -> label: ``alpha=<a>`` when the partitioner lists alphas, else ``group <g>``."""
    if not groups:
        return {}
    ids = sorted({int(g) for g in groups})
    labels = {g: (f"alpha={fmt_value(alphas[g])}" if alphas is not None and g < len(alphas) else f"group {g}")
              for g in ids}
    if len(set(labels.values())) < len(labels):  # groups sharing an alpha (setting 3): name them apart
        labels = {g: f"group {g} ({label})" if label.startswith("alpha") else label for g, label in labels.items()}
    return labels
