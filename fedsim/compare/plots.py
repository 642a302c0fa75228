"""Comparison plots (matplotlib Agg backend, seaborn styling): one panel per setting."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from fedsim.compare.load import Study
from fedsim.plotting import plt, save_png, sns


def _palette(samplers) -> dict[str, tuple]:
    names = list(dict.fromkeys(samplers))
    return dict(zip(names, sns.color_palette("tab10", max(len(names), 1))))


def _grid(n: int, width: float = 6.5, height: float = 4.2, cols: int = 2):
    cols = max(1, min(n, cols))
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    return save_png(fig, path)


def accuracy_bands(study: Study, target: float, path: Path) -> Path:
    """Mean accuracy per round over seeds, band = min–max over seeds, a line per sampler."""
    sns.set_theme(style="whitegrid", font_scale=0.8)
    acc = study.rounds.dropna(subset=["accuracy"])
    settings = list(dict.fromkeys(study.runs["setting"]))
    colors = _palette(study.runs["sampler"])
    fig, axes = _grid(len(settings), width=8.5, height=4.8)
    for ax, setting in zip(axes, settings):
        part = acc[acc["setting"] == setting]
        stats = part.groupby(["sampler", "round"], sort=False)["accuracy"].agg(["mean", "min", "max"]).reset_index()
        n = part.groupby("sampler")["run"].nunique()
        for sampler, g in stats.groupby("sampler", sort=False):
            ax.plot(g["round"], g["mean"], color=colors[sampler], lw=1.3, label=f"{sampler} (n={n[sampler]})")
            ax.fill_between(g["round"], g["min"], g["max"], color=colors[sampler], alpha=0.15, lw=0)
        ax.axhline(target, color="grey", ls="--", lw=0.8, label=f"target {target}")
        ax.set(title=setting, xlabel="round", ylabel="test accuracy")
        ax.title.set_fontsize(7)
        ax.legend(fontsize=7)
    fig.suptitle("accuracy: mean over seeds, band = min–max over seeds", fontsize=9)
    return _save(fig, path)


def learning_curves(study: Study, target: float, path: Path) -> Path:
    """Every run's accuracy curve, a panel per (setting, sampler), a line per seed."""
    sns.set_theme(style="whitegrid", font_scale=0.8)
    acc = study.rounds.dropna(subset=["accuracy"])
    panels = list(dict.fromkeys(zip(study.runs["setting"], study.runs["sampler"])))
    fig, axes = _grid(len(panels), width=4.5, height=3.0, cols=3)
    multi = len({s for s, _ in panels}) > 1
    for ax, (setting, sampler) in zip(axes, panels):
        part = acc[(acc["setting"] == setting) & (acc["sampler"] == sampler)]
        for seed, g in part.groupby("seed", sort=True):
            ax.plot(g["round"], g["accuracy"], lw=0.9, label=f"seed {seed}")
        ax.axhline(target, color="grey", ls="--", lw=0.8)
        ax.set(title=f"{sampler}" + (f"\n{setting}" if multi else ""), xlabel="round", ylabel="accuracy", ylim=(0, 1))
        ax.title.set_fontsize(8)
        ax.legend(fontsize=6)
    return _save(fig, path)


def participation(shares: pd.DataFrame, path: Path) -> Path | None:
    """Share of selections per heterogeneity group (x: ``alpha=...``), a bar per sampler;
    ``(clients)``: each group's share of clients. None if no setting has groups."""
    if shares.empty:
        return None
    sns.set_theme(style="whitegrid", font_scale=0.8)
    settings = list(dict.fromkeys(shares["setting"]))
    fig, axes = _grid(len(settings), width=8.5, cols=1)
    for ax, setting in zip(axes, settings):
        part = shares[shares["setting"] == setting].sort_values("group", kind="stable")
        order = list(dict.fromkeys(part["label"]))
        sns.barplot(data=part, x="label", y="share", hue="sampler", order=order, ax=ax, errorbar=None)
        ax.set(title=setting, xlabel="heterogeneity group", ylabel="share of selections")
        ax.title.set_fontsize(7)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, path)


def per_class(study: Study, path: Path) -> Path | None:
    """Per-class accuracy per round (mean over seeds), a panel per (setting, sampler), a line
    per class; None when no run records ``per_class_accuracy``."""
    if "per_class_accuracy" not in study.rounds:
        return None
    rows = study.rounds[["setting", "sampler", "run", "round", "per_class_accuracy"]]
    rows = rows[rows["per_class_accuracy"].map(lambda v: isinstance(v, (list, tuple)) and len(v) > 0)]
    if rows.empty:
        return None
    long = rows.explode("per_class_accuracy")
    long["class"] = long.groupby(["run", "round"]).cumcount()
    long["acc"] = pd.to_numeric(long["per_class_accuracy"], errors="coerce")
    mean = long.groupby(["setting", "sampler", "round", "class"], sort=False)["acc"].mean().reset_index()
    sns.set_theme(style="whitegrid", font_scale=0.8)
    panels = list(dict.fromkeys(zip(mean["setting"], mean["sampler"])))
    fig, axes = _grid(len(panels), width=4.5, height=3.0, cols=3)
    classes = sorted(mean["class"].unique())
    colors = dict(zip(classes, sns.color_palette("tab10" if len(classes) <= 10 else "husl", len(classes))))
    for ax, (setting, sampler) in zip(axes, panels):
        part = mean[(mean["setting"] == setting) & (mean["sampler"] == sampler)]
        for cls, g in part.groupby("class"):
            ax.plot(g["round"], g["acc"], lw=0.8, color=colors[cls], label=str(cls))
        ax.set(title=sampler, xlabel="round", ylabel="class accuracy", ylim=(-0.02, 1.02))
        ax.title.set_fontsize(8)
    if panels:
        axes[0].legend(fontsize=6, ncol=2, title="class", title_fontsize=6)
    fig.suptitle("per-class accuracy, mean over seeds", fontsize=9)
    return _save(fig, path)

