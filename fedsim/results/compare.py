"""Compare samplers across the runs of one or more sweeps: a table and two plots.

``fedsim-compare <sweep or run folders...> [--target 0.75] [--smooth 1] [--out DIR] [--group-by sampler]``
(or ``python -m fedsim.results.compare ...``).

Every folder under the given paths that holds ``metrics.jsonl`` is a run; runs without
``summary.json`` (unfinished or crashed) are left out and listed with the rounds they
recorded, so a study finished over several sittings shows what is still running. Runs are grouped by
*setting* (dataset, partitioner and its parameters, ``num_clients``, ``clients_per_round``)
and, inside a setting, by *sampler* label. Per (setting, sampler) the tool writes, into the
first given folder (or ``--out``):

- ``comparison.md`` / ``comparison.csv``: number of seeds, final and best accuracy
  (mean ± sample std over seeds, ddof=1; with a single seed the std is undefined and shown
  as ``-`` in the markdown, left empty in the CSV), rounds to ``--target`` (mean ± std over
  the seeds that reached it, and ``k/n reached``; ``never`` if none did; ``--smooth W``
  tests a trailing mean of W evaluated rounds instead of single rounds), speed-up over
  random (random's mean rounds-to-target divided by this sampler's), mean selection seconds
  per round and mean wall seconds per run;
- ``accuracy.png``: accuracy per round, one panel per setting, one mean line per sampler
  with a min–max band over seeds;
- ``participation.png``: per setting and sampler, the share of all selections that went to
  each heterogeneity group of ``partition.json`` (settings whose partition has no groups
  are skipped with a note), next to each group's share of clients.

The pipeline is a few small pure functions: :func:`find_runs` → :func:`load_runs` →
:func:`label_runs` → :func:`summarize` → :func:`to_markdown` / :func:`to_csv` →
:func:`plot_accuracy` / :func:`plot_participation`.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from fedsim.results.analysis import accuracy_curve, load_run, rounds_to_target

RANDOM_CLASS = "RandomSampler"

# Short names for fedsim's sampler classes (others: the class name without "Sampler", lowercased).
_SAMPLER_SHORT = {
    "HiCSSampler": "hics",
    "RandomSampler": "random",
    "PowerOfChoiceSampler": "powd",
    "DivFLSampler": "divfl",
    "FedCorSampler": "fedcor",
    "ClusteredSampler": "clustered",
}

# Config keys that never make two runs belong to different groups: the seed varies by
# design, the sampler is the grouping, the engine/progress do not change results, and the
# top-level ``hics`` block only feeds the (resolved) sampler settings.
_IGNORED_KEYS = ("seed", "sampler", "engine", "progress", "hics")

CSV_COLUMNS = [
    "setting",
    "sampler",
    "sampler_class",
    "n_seeds",
    "seeds",
    "final_acc_mean",
    "final_acc_std",
    "best_acc_mean",
    "best_acc_std",
    "target",
    "smooth",
    "rounds_to_target_mean",
    "rounds_to_target_std",
    "reached",
    "speedup_vs_random",
    "selection_seconds_per_round",
    "wall_seconds_per_run",
]


@dataclass
class Run:
    """One finished run: its records and the labels it is grouped by."""

    dir: Path
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    config: dict[str, Any]
    partition: dict[str, Any] | None = None
    hydra_sampler: str | None = None  # the Hydra choice ``sampler=...`` when .hydra/ has it
    setting: str = ""
    sampler: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def seed(self) -> Any:
        """The run's seed (from the config)."""
        return self.config.get("seed")

    @property
    def sampler_class(self) -> str:
        """The sampler's class name, e.g. ``HiCSSampler``."""
        name = self.summary.get("sampler")
        if name:
            return str(name)
        target = (self.config.get("sampler") or {}).get("_target_", "")
        return target.rsplit(".", 1)[-1] or "unknown"


# ----------------------------------------------------------------------------- loading


def find_runs(paths: Sequence[str | Path]) -> list[Path]:
    """Every folder at or under ``paths`` that holds ``metrics.jsonl`` (sorted, unique)."""
    found: set[Path] = set()
    for path in paths:
        path = Path(path)
        if (path / "metrics.jsonl").is_file():
            found.add(path.resolve())
        if path.is_dir():
            found.update(p.parent.resolve() for p in path.rglob("metrics.jsonl"))
    return sorted(found)


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text())
    return data if isinstance(data, dict) else {}


def _hydra_sampler_choice(run_dir: Path) -> str | None:
    """``sampler`` from ``.hydra/hydra.yaml``'s runtime choices, when the run has one."""
    hydra_file = run_dir / ".hydra" / "hydra.yaml"
    if not hydra_file.is_file():
        return None
    try:
        text = hydra_file.read_text()
        data = yaml.safe_load(text)
        choice = data["hydra"]["runtime"]["choices"]["sampler"]
    except Exception:  # noqa: BLE001 - an odd or partial hydra.yaml only loses the nicer name
        return None
    return str(choice) if choice else None


def load_runs(run_dirs: Sequence[Path]) -> tuple[list[Run], list[Path]]:
    """Finished runs (with ``summary.json``) and the folders skipped as unfinished."""
    runs: list[Run] = []
    skipped: list[Path] = []
    for run_dir in run_dirs:
        record = load_run(run_dir)
        if record["summary"] is None:
            skipped.append(run_dir)
            continue
        partition_path = run_dir / "partition.json"
        runs.append(
            Run(
                dir=run_dir,
                rows=record["rows"],
                summary=record["summary"],
                config=_read_yaml(run_dir / "config.yaml"),
                partition=json.loads(partition_path.read_text()) if partition_path.is_file() else None,
                hydra_sampler=_hydra_sampler_choice(run_dir),
            )
        )
    return runs, skipped


# ----------------------------------------------------------------------------- labels


def _fmt_value(value: Any) -> str:
    """Compact text for a config value (lists as comma-joined items)."""
    if isinstance(value, (list, tuple)):
        return ",".join(_fmt_value(v) for v in value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}={_fmt_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def _short_class(target: str, suffix: str) -> str:
    name = target.rsplit(".", 1)[-1]
    if name.endswith(suffix) and name != suffix:
        name = name[: -len(suffix)]
    return name.lower()


def sampler_base_name(sampler_class: str, hydra_choice: str | None = None) -> str:
    """Readable sampler name: the Hydra choice if known, else a short form of the class."""
    if hydra_choice:
        return hydra_choice
    return _SAMPLER_SHORT.get(sampler_class, _short_class(sampler_class, "Sampler"))


def setting_label(config: dict[str, Any]) -> str:
    """Dataset + partitioner (with its parameters) + N and K, e.g.
    ``fmnist groups[alphas=0.001,0.2; min_size_fraction=0.2] N=50 K=5``."""
    dataset = config.get("dataset") or {}
    data_name = dataset.get("name") or _short_class(str(dataset.get("_target_", "?")), "Source")
    part = config.get("partitioner") or {}
    part_name = _short_class(str(part.get("_target_", "?")), "Partitioner")
    params = [f"{k}={_fmt_value(v)}" for k, v in part.items() if not str(k).startswith("_")]
    part_text = part_name + (f"[{'; '.join(params)}]" if params else "")
    return f"{data_name} {part_text} N={config.get('num_clients')} K={config.get('clients_per_round')}"


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def distinguishing_settings(configs: Sequence[dict[str, Any]]) -> list[str]:
    """Keys (dotted, sorted) present in all of ``configs`` whose values are not all the same.

    A key only some configs have (a setting added by a later fedsim version) cannot tell
    runs apart and is ignored.
    """
    flats = [_flatten(c) for c in configs]
    keys = sorted(set.intersection(*(set(f) for f in flats))) if flats else []
    return [k for k in keys if len({json.dumps(f[k], default=str) for f in flats}) > 1]


def label_runs(runs: list[Run], group_by: str = "sampler") -> list[Run]:
    """Set each run's ``setting`` and group label (in place; returns ``runs``).

    ``group_by="sampler"``: the sampler's base name (see :func:`sampler_base_name`); when
    runs of one setting share a base name but differ in sampler settings, the differing
    settings are appended, e.g. ``hics[estimator=weight_rows, ...]``. Any other value is a
    dotted config key (e.g. ``algorithm.name``) and labels read ``key=value``.
    """
    for run in runs:
        run.setting = setting_label(run.config)
        if group_by == "sampler":
            run.sampler = sampler_base_name(run.sampler_class, run.hydra_sampler)
        else:
            value: Any = run.config
            for part in group_by.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            run.sampler = f"{group_by}={_fmt_value(value)}"
    if group_by != "sampler":
        return runs
    by_name: dict[tuple[str, str], list[Run]] = defaultdict(list)
    for run in runs:
        by_name[(run.setting, run.sampler)].append(run)
    for group in by_name.values():
        samplers = [{k: v for k, v in (r.config.get("sampler") or {}).items() if k != "_target_"} for r in group]
        samplers = [dict(s, _class=r.sampler_class) for s, r in zip(samplers, group)]
        keys = distinguishing_settings(samplers)
        if not keys:
            continue
        for run, flat in zip(group, (_flatten(s) for s in samplers)):
            run.sampler += "[" + ", ".join(f"{k}={_fmt_value(flat.get(k))}" for k in keys) + "]"
    return runs


# ----------------------------------------------------------------------------- statistics


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample std (ddof=1); std is None with fewer than 2 values, both None with 0."""
    if not values:
        return None, None
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else None)


def final_accuracy(run: Run) -> float | None:
    """``summary.final_accuracy``, else the last evaluated accuracy."""
    value = run.summary.get("final_accuracy")
    if value is None:
        curve = accuracy_curve(run.rows)
        value = curve[-1][1] if curve else None
    return None if value is None else float(value)


def best_accuracy(run: Run) -> float | None:
    """``summary.best_accuracy``, else the best evaluated accuracy."""
    value = run.summary.get("best_accuracy")
    if value is None:
        curve = accuracy_curve(run.rows)
        value = max(a for _, a in curve) if curve else None
    return None if value is None else float(value)


def mean_selection_seconds(run: Run) -> float | None:
    """Mean ``selection_seconds`` over the run's rounds."""
    values = [float(r["selection_seconds"]) for r in run.rows if r.get("selection_seconds") is not None]
    return statistics.fmean(values) if values else None


def group_runs(runs: Sequence[Run]) -> dict[tuple[str, str], list[Run]]:
    """Runs by (setting, sampler label), in first-seen order of settings, labels sorted."""
    groups: dict[tuple[str, str], list[Run]] = defaultdict(list)
    for run in runs:
        groups[(run.setting, run.sampler)].append(run)
    settings = list(dict.fromkeys(run.setting for run in runs))
    return {k: sorted(groups[k], key=lambda r: (str(r.seed), str(r.dir))) for k in sorted(groups, key=lambda k: (settings.index(k[0]), k[1]))}


def config_warnings(groups: dict[tuple[str, str], list[Run]], group_by: str = "sampler") -> list[str]:
    """Notes for groups whose runs differ in more than the seed (and, when grouping by
    sampler, the sampler settings already in the label), or repeat a seed."""
    ignored = set(_IGNORED_KEYS) - ({"sampler"} if group_by != "sampler" else set())
    notes = []
    for (setting, sampler), group in groups.items():
        rest = [{k: v for k, v in r.config.items() if k not in ignored} for r in group]
        keys = distinguishing_settings(rest)
        if keys:
            notes.append(f"{setting} / {sampler}: runs also differ in {', '.join(keys)}")
        seeds = [r.seed for r in group]
        if len(set(map(str, seeds))) < len(seeds):
            notes.append(f"{setting} / {sampler}: repeated seeds {seeds} (each run counted)")
    return notes


def summarize(groups: dict[tuple[str, str], list[Run]], target: float, smooth: int = 1) -> list[dict[str, Any]]:
    """One table row per (setting, sampler): raw numbers (None where undefined).

    ``smooth``: rounds to target are read off a trailing mean of that many evaluated
    rounds (1 = the raw curve), see :func:`fedsim.results.analysis.rounds_to_target`."""
    rows = []
    for (setting, sampler), group in groups.items():
        finals = [v for v in map(final_accuracy, group) if v is not None]
        bests = [v for v in map(best_accuracy, group) if v is not None]
        reached = [r for r in (rounds_to_target(run.rows, target, smooth) for run in group) if r is not None]
        sel = [v for v in map(mean_selection_seconds, group) if v is not None]
        walls = [float(r.summary["wall_seconds"]) for r in group if r.summary.get("wall_seconds") is not None]
        final_mean, final_std = mean_std(finals)
        best_mean, best_std = mean_std(bests)
        rtt_mean, rtt_std = mean_std([float(r) for r in reached])
        classes = sorted({r.sampler_class for r in group})
        rows.append(
            {
                "setting": setting,
                "sampler": sampler,
                "sampler_class": "/".join(classes),
                "n_seeds": len(group),
                "seeds": " ".join(str(r.seed) for r in group),
                "final_acc_mean": final_mean,
                "final_acc_std": final_std,
                "best_acc_mean": best_mean,
                "best_acc_std": best_std,
                "target": target,
                "smooth": smooth,
                "rounds_to_target_mean": rtt_mean,
                "rounds_to_target_std": rtt_std,
                "reached_count": len(reached),
                "reached": f"{len(reached)}/{len(group)}",
                "speedup_vs_random": None,
                "selection_seconds_per_round": statistics.fmean(sel) if sel else None,
                "wall_seconds_per_run": statistics.fmean(walls) if walls else None,
            }
        )
    return add_speedups(rows)


def _random_row(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The setting's random baseline: the row labelled ``random``, else the first RandomSampler row."""
    randoms = [r for r in rows if r["sampler_class"] == RANDOM_CLASS]
    exact = [r for r in randoms if r["sampler"] == "random"]
    return (exact or randoms or [None])[0]


def add_speedups(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Speed-up = random's mean rounds-to-target / this row's, per setting (None when
    either never reached the target or the setting has no random runs). In place."""
    by_setting: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_setting[row["setting"]].append(row)
    for setting_rows in by_setting.values():
        baseline = _random_row(setting_rows)
        base = baseline["rounds_to_target_mean"] if baseline else None
        for row in setting_rows:
            mine = row["rounds_to_target_mean"]
            row["speedup_vs_random"] = base / mine if base is not None and mine else None
    return rows


# ----------------------------------------------------------------------------- output


def _pm(mean: float | None, std: float | None, digits: int) -> str:
    if mean is None:
        return "-"
    return f"{mean:.{digits}f} ± {'-' if std is None else f'{std:.{digits}f}'}"


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def to_markdown(
    rows: list[dict[str, Any]],
    target: float,
    *,
    skipped: int = 0,
    unfinished: Sequence[str] = (),
    smooth: int = 1,
    notes: Sequence[str] = (),
    plots: Sequence[str] = (),
) -> str:
    """The comparison as markdown: one table per setting, then conventions and notes.

    ``unfinished``: one line per left-out run (e.g. ``powd_seed1: 57 round(s) recorded``)."""
    skipped = max(skipped, len(unfinished))
    smoothing = f" (trailing mean of {smooth} evaluated rounds)" if smooth > 1 else ""
    out = [
        "# Sampler comparison",
        "",
        f"{sum(r['n_seeds'] for r in rows)} finished runs; {skipped} unfinished run(s) skipped "
        f"(no summary.json). Target accuracy: {target}{smoothing}.",
        "",
    ]
    header = (
        "| sampler | seeds | final acc | best acc | rounds to target | reached "
        "| speed-up vs random | selection s/round | wall s/run |"
    )
    for setting in dict.fromkeys(r["setting"] for r in rows):
        out += [f"## {setting}", "", header, "|" + "---|" * 9]
        for r in (r for r in rows if r["setting"] == setting):
            rtt = "never" if r["reached_count"] == 0 else _pm(r["rounds_to_target_mean"], r["rounds_to_target_std"], 1)
            out.append(
                f"| {r['sampler']} | {r['n_seeds']} | {_pm(r['final_acc_mean'], r['final_acc_std'], 4)} "
                f"| {_pm(r['best_acc_mean'], r['best_acc_std'], 4)} | {rtt} | {r['reached']} reached "
                f"| {_num(r['speedup_vs_random'], '.2f')} | {_num(r['selection_seconds_per_round'], '.4f')} "
                f"| {_num(r['wall_seconds_per_run'], '.1f')} |"
            )
        out.append("")
    out += [
        "## Conventions",
        "",
        "- mean ± std over seeds; std is the sample std (ddof=1), shown as `-` with one seed.",
        "- rounds to target: first evaluated round with accuracy >= target (with `--smooth W`: "
        "the trailing mean of the last W evaluated rounds >= target); mean ± std over the "
        "seeds that reached it only (runs that never reached it are not counted, see `reached`).",
        "- speed-up vs random: random's mean rounds to target / this sampler's (same setting); "
        "`-` if either never reached the target or the setting has no random runs.",
        "- selection s/round: per-run mean of `selection_seconds`, averaged over seeds; "
        "wall s/run: mean of `summary.wall_seconds`.",
        "- accuracy.png: mean over seeds per round, band = min–max over seeds.",
        "",
    ]
    if plots:
        out += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    if unfinished:
        out += ["## Unfinished runs (left out)", ""] + [f"- {u}" for u in unfinished] + [""]
    if notes:
        out += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(out)


def to_csv(rows: list[dict[str, Any]]) -> str:
    """The comparison as CSV (raw numbers; empty cells where undefined)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in CSV_COLUMNS})
    return buffer.getvalue()


def curve_band(runs: Sequence[Run]) -> tuple[list[int], list[float], list[float], list[float]]:
    """Rounds, and per round the mean, min and max accuracy over the runs evaluated there."""
    per_round: dict[int, list[float]] = defaultdict(list)
    for run in runs:
        for server_round, accuracy in accuracy_curve(run.rows):
            per_round[server_round].append(accuracy)
    rounds = sorted(per_round)
    return (
        rounds,
        [statistics.fmean(per_round[r]) for r in rounds],
        [min(per_round[r]) for r in rounds],
        [max(per_round[r]) for r in rounds],
    )


def participation_shares(runs: Sequence[Run]) -> dict[int, float] | None:
    """Share of all selections (over runs and rounds) that went to each group; None without groups."""
    counts: dict[int, int] = defaultdict(int)
    total = 0
    for run in runs:
        groups = (run.partition or {}).get("groups")
        if groups is None:
            return None
        for group in set(groups):
            counts[int(group)] += 0
        for row in run.rows:
            for client in row.get("selected") or []:
                counts[int(groups[int(client)])] += 1
                total += 1
    return {g: (counts[g] / total if total else 0.0) for g in sorted(counts)}


def client_shares(runs: Sequence[Run]) -> dict[int, float] | None:
    """Each group's share of clients (first run's partition); None without groups."""
    groups = (runs[0].partition or {}).get("groups") if runs else None
    if not groups:
        return None
    return {g: groups.count(g) / len(groups) for g in sorted(set(groups))}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 2)
    return math.ceil(n / cols), cols


def plot_accuracy(groups: dict[tuple[str, str], list[Run]], target: float, path: Path) -> Path:
    """Accuracy vs round: a panel per setting, mean line and min–max band per sampler."""
    plt = _pyplot()
    settings = list(dict.fromkeys(s for s, _ in groups))
    nrows, ncols = _grid(len(settings))
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.5 * ncols, 4.2 * nrows), squeeze=False)
    for ax, setting in zip(axes.flat, settings):
        for (s, sampler), runs in groups.items():
            if s != setting:
                continue
            rounds, mean, low, high = curve_band(runs)
            if not rounds:
                continue
            (line,) = ax.plot(rounds, mean, label=f"{sampler} (n={len(runs)})", linewidth=1.4)
            ax.fill_between(rounds, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
        ax.axhline(target, color="grey", linestyle="--", linewidth=0.8, label=f"target {target}")
        ax.set_title(setting, fontsize=8)
        ax.set_xlabel("round")
        ax.set_ylabel("test accuracy")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(settings):]:
        ax.set_visible(False)
    fig.suptitle("accuracy: mean over seeds, band = min–max", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_participation(groups: dict[tuple[str, str], list[Run]], path: Path) -> tuple[Path | None, list[str]]:
    """Share of selections per heterogeneity group, a panel per setting with groups.

    Returns the file (None if no setting has groups) and the settings skipped for lack of them.
    """
    settings = list(dict.fromkeys(s for s, _ in groups))
    panels: dict[str, list[tuple[str, dict[int, float]]]] = {}
    reference: dict[str, dict[int, float]] = {}
    skipped: list[str] = []
    for setting in settings:
        items = [(sampler, runs) for (s, sampler), runs in groups.items() if s == setting]
        shares = [(sampler, participation_shares(runs)) for sampler, runs in items]
        if any(share is None for _, share in shares):
            skipped.append(setting)
            continue
        panels[setting] = shares  # type: ignore[assignment]
        reference[setting] = client_shares(items[0][1]) or {}
    if not panels:
        return None, skipped
    plt = _pyplot()
    nrows, ncols = _grid(len(panels))
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.5 * ncols, 4.2 * nrows), squeeze=False)
    for ax, (setting, shares) in zip(axes.flat, panels.items()):
        group_ids = sorted(set().union(*(s.keys() for _, s in shares), reference[setting]))
        width = 0.8 / (len(shares) + 1)
        for i, (sampler, share) in enumerate(shares):
            xs = [g + (i - len(shares) / 2) * width for g in range(len(group_ids))]
            ax.bar(xs, [share.get(g, 0.0) for g in group_ids], width=width, label=sampler)
        xs = [g + (len(shares) / 2) * width for g in range(len(group_ids))]
        ax.bar(xs, [reference[setting].get(g, 0.0) for g in group_ids], width=width, color="none",
               edgecolor="black", hatch="//", label="share of clients")
        ax.set_xticks(range(len(group_ids)), [str(g) for g in group_ids])
        ax.set_xlabel("heterogeneity group (partition.json groups)")
        ax.set_ylabel("share of selections")
        ax.set_title(setting, fontsize=8)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path, skipped


# ----------------------------------------------------------------------------- entry point


def describe_unfinished(run_dir: Path, base: Path) -> str:
    """``<folder>: N rounds recorded`` for a run without ``summary.json`` (folder relative to ``base``)."""
    try:
        name = str(run_dir.resolve().relative_to(base.resolve()))
    except ValueError:
        name = str(run_dir)
    rounds = len(load_run(run_dir)["rows"])
    return f"{name}: {rounds} round(s) recorded"


def compare(
    paths: Sequence[str | Path],
    target: float = 0.75,
    out: str | Path | None = None,
    group_by: str = "sampler",
    smooth: int = 1,
) -> dict[str, Any]:
    """Run the whole comparison; returns the rows, counts and written files."""
    if smooth < 1:
        raise ValueError(f"smooth must be >= 1, got {smooth}")
    run_dirs = find_runs(paths)
    runs, skipped = load_runs(run_dirs)
    out_dir = Path(out) if out is not None else Path(paths[0])
    if out_dir.is_file():
        out_dir = out_dir.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"runs": len(runs), "skipped": [str(p) for p in skipped], "rows": [], "files": []}
    if not runs:
        return result
    groups = group_runs(label_runs(runs, group_by))
    rows = summarize(groups, target, smooth)
    notes = config_warnings(groups, group_by)
    plots = [plot_accuracy(groups, target, out_dir / "accuracy.png").name]
    participation, no_groups = plot_participation(groups, out_dir / "participation.png")
    if participation is not None:
        plots.append(participation.name)
    notes += [f"{s}: partition.json has no groups; left out of participation.png" for s in no_groups]
    if group_by != "sampler" and not any(r["sampler_class"] == RANDOM_CLASS for r in rows):
        notes.append("speed-up needs a group whose runs all use RandomSampler")
    unfinished = [describe_unfinished(p, Path(paths[0])) for p in skipped]
    markdown = to_markdown(rows, target, unfinished=unfinished, smooth=smooth, notes=notes, plots=plots)
    (out_dir / "comparison.md").write_text(markdown)
    (out_dir / "comparison.csv").write_text(to_csv(rows))
    result.update(rows=rows, notes=notes, files=[out_dir / "comparison.md", out_dir / "comparison.csv"] + [out_dir / p for p in plots])
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry ``fedsim-compare``."""
    parser = argparse.ArgumentParser(
        prog="fedsim-compare", description="Compare samplers over fedsim run/sweep folders (table + plots)."
    )
    parser.add_argument("paths", nargs="+", help="sweep folders or run folders (searched recursively for metrics.jsonl)")
    parser.add_argument("--target", type=float, default=0.75, help="target accuracy for rounds-to-target (default 0.75)")
    parser.add_argument(
        "--smooth", type=int, default=1,
        help="rounds to target on a trailing mean of this many evaluated rounds (default 1: raw curve)",
    )
    parser.add_argument("--out", default=None, help="output folder (default: the first given folder)")
    parser.add_argument(
        "--group-by", default="sampler",
        help="'sampler' (default: sampler name + distinguishing settings) or a dotted config key, e.g. algorithm.name",
    )
    args = parser.parse_args(argv)
    if args.smooth < 1:
        print(f"fedsim-compare: --smooth must be >= 1 (got {args.smooth}); pass e.g. --smooth 5", file=sys.stderr)
        return 2
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        print(f"fedsim-compare: no such path: {', '.join(missing)}", file=sys.stderr)
        return 2
    result = compare(args.paths, target=args.target, out=args.out, group_by=args.group_by, smooth=args.smooth)
    print(f"{result['runs']} finished run(s); {len(result['skipped'])} unfinished run(s) skipped (no summary.json)")
    if not result["runs"]:
        print("fedsim-compare: no finished runs to compare", file=sys.stderr)
        return 1
    for note in result["notes"]:
        print(f"note: {note}")
    for path in result["files"]:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
