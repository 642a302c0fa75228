"""One run's learning curve as a PNG, drawn from its ``metrics.jsonl``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fedsim.hooks import RoundHook, RunContext
from fedsim.results.recorder import METRICS_FILE, read_jsonl


def write_learning_curve(run_dir: str | Path, filename: str = "learning_curve.png") -> Path | None:
    """Draw the run's test accuracy per evaluated round (and per-class accuracy, one thin line
    per class, when rows record ``per_class_accuracy``) into ``run_dir/filename``.

    Returns the PNG's path, or None when the run has no evaluated round yet."""
    run_dir = Path(run_dir)
    rows = read_jsonl(run_dir / METRICS_FILE)
    curve = [(int(r["round"]), float(r["accuracy"])) for r in rows if r.get("accuracy") is not None]
    if not curve:
        return None
    per_class = [(int(r["round"]), [float("nan") if v is None else float(v) for v in r["per_class_accuracy"]])
                 for r in rows if isinstance(r.get("per_class_accuracy"), list) and r["per_class_accuracy"]]
    widths = {len(v) for _, v in per_class}
    if len(widths) > 1:  # inconsistent class counts: draw the overall curve only
        per_class = []
    from fedsim.plotting import save_png  # matplotlib only when a curve is drawn

    rounds, accuracy = (np.array(x) for x in zip(*curve))
    fig = learning_curve_figure(rounds, accuracy, per_class, title=run_dir.name)
    path = run_dir / filename
    fig.tight_layout()
    save_png(fig, path)
    return path


def learning_curve_figure(rounds: np.ndarray, accuracy: np.ndarray, per_class_rows: list, title: str):
    """A single run's figure: overall accuracy and, when given, per-class accuracy."""
    from fedsim.plotting import plt, sns

    sns.set_theme(style="whitegrid", font_scale=0.8)
    fig, ax = plt.subplots(figsize=(7, 4))
    if per_class_rows:
        pc_rounds = [r for r, _ in per_class_rows]
        values = np.array([v for _, v in per_class_rows], dtype=float)
        colors = sns.color_palette("tab10" if values.shape[1] <= 10 else "husl", values.shape[1])
        for k in range(values.shape[1]):
            ax.plot(pc_rounds, values[:, k], lw=0.7, alpha=0.6, color=colors[k], label=f"class {k}")
    ax.plot(rounds, accuracy, color="black", lw=1.6, label="accuracy")
    ax.set(xlabel="round", ylabel="test accuracy", title=title, ylim=(-0.02, 1.02))
    ax.legend(fontsize=6, ncol=2 if per_class_rows else 1)
    return fig


class LearningCurveHook(RoundHook):
    """Draws ``learning_curve.png`` in the run folder at the end of every run."""

    def on_run_start(self, context: RunContext) -> None:
        """Remember the run folder."""
        self.run_dir = context.run_dir

    def on_run_end(self, summary: dict) -> None:
        """Draw the curve from the records written so far."""
        write_learning_curve(self.run_dir)
