"""What a user sees on the terminal: a progress bar and a one-screen summary."""

from __future__ import annotations

from typing import Any

from tqdm import tqdm

from fedsim.hooks import RoundHook, RoundResult, RunContext


class ProgressBar(RoundHook):
    """A tqdm bar showing round, accuracy and loss (silent when disabled)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.bar: tqdm | None = None

    def on_run_start(self, context: RunContext) -> None:
        """Open the bar at the first round to run (a resumed run starts part-way)."""
        self.bar = tqdm(total=context.num_rounds, initial=context.first_round - 1, desc="rounds", unit="round",
                        disable=not self.enabled, dynamic_ncols=True)

    def on_round_end(self, result: RoundResult) -> None:
        """Advance by one round and show the latest metrics."""
        row = result.row
        if row["accuracy"] is not None and row["loss"] is not None:
            self.bar.set_postfix(acc=f"{row['accuracy']:.4f}", loss=f"{row['loss']:.4f}", refresh=False)
        self.bar.update(1)

    def on_run_end(self, summary: dict[str, Any]) -> None:
        """Close the bar."""
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
        f"  client failures {summary.get('failed_client_rounds', 0)} failed client-rounds, "
        f"{summary.get('rejected_replies', 0)} rejected replies",
        f"  wall time       {summary['wall_seconds']:.1f} s",
        f"  records         {summary['run_dir']}",
    ]
    if summary.get("no_usable_reply"):
        lines.append("  every selected client failed or was rejected in every round: the model never trained")
    print("\n".join(lines))
