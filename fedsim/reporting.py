"""What a user sees on the terminal: a progress bar and a one-screen summary."""

from __future__ import annotations

from typing import Any

from tqdm import tqdm

from fedsim.server.loop import RoundResult


class ProgressReporter:
    """A tqdm bar showing round, accuracy and loss (silent when disabled)."""

    def __init__(self, num_rounds: int, enabled: bool = True) -> None:
        self.bar = tqdm(total=num_rounds, desc="rounds", unit="round", disable=not enabled, dynamic_ncols=True)

    def update(self, result: RoundResult) -> None:
        """Advance by one round and show the latest metrics."""
        row = result.row
        if row["accuracy"] is not None:
            self.bar.set_postfix(acc=f"{row['accuracy']:.4f}", loss=f"{row['loss']:.4f}", refresh=False)
        self.bar.update(1)

    def __enter__(self) -> "ProgressReporter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.close()


def print_summary(summary: dict[str, Any]) -> None:
    """Print the run's summary and where its records are."""
    def fmt(value: Any) -> str:
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    lines = [
        "fedsim run finished",
        f"  sampler         {summary['sampler']}  (engine: {summary['engine']})",
        f"  rounds          {summary['rounds_run']}",
        f"  final accuracy  {fmt(summary['final_accuracy'])}",
        f"  best accuracy   {fmt(summary['best_accuracy'])}",
        f"  wall time       {summary['wall_seconds']:.1f} s",
        f"  records         {summary['run_dir']}",
    ]
    print("\n".join(lines))
