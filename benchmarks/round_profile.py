"""Where a round's time goes, next to the plain-PyTorch training floor measured in the same run.

The rounds are fedsim's own: :func:`fedsim.server.loop.run_rounds` with fedsim's record
hooks (``RecordsHook`` writing through a ``RunRecorder``, ``CheckpointHook`` every 10
rounds and after the last) and the run's evaluation columns
(``fedsim.grid_run.evaluation_columns``). Nothing of the loop is copied here; the stages
are measured from outside it:

- the grid is wrapped in :class:`TimedGrid`, which times every ``send_and_receive``;
- a timing hook runs first in the hook list and another last (:class:`StageClock`): they
  mark each round's start (``on_round_start``), the end of its aggregation (the first
  hook's ``on_round_aggregated``) and the time the other hooks take;
- the row gives ``selection_seconds``, ``probe_seconds`` and ``eval_seconds``.

The stages of a round:
  selection    the sampler's ``select`` (the row's ``selection_seconds``)
  probes       pre-selection probe round trips (DivFL, Power-of-Choice; none for random;
               the row's ``probe_seconds``)
  configure    the rest of ``configure_train``: addressing (round 1 also asks every node
               its partition), building the instructions: from the loop's start of the
               round to the start of the training call, minus selection and probes
  training     the training round trip through the engine (local training of the K
               clients): the round's last ``send_and_receive`` (probes and round 1's
               partition query go through ``send_and_receive`` too, always before it, and
               are counted in probes and configure)
  aggregation  ``aggregate_train``: validation, sampler reports, the mean of the models
               (end of the training call to ``on_round_aggregated``)
  evaluation   central evaluation of the new global model on the test set (every round):
               in line, the row's ``eval_seconds``; with ``--eval-in-background`` the time
               the loop lost to it: the round's wall time minus the other stages, clamped
               at 0 (mostly the wait for the previous round's evaluation when it is not done
               by the time this round is aggregated; the last round waits for its own)
  records      every other hook (``on_round_start``, ``on_round_aggregated``,
               ``on_round_end``): the metrics/sampler lines (fsynced) and, every 10 rounds,
               the checkpoint
A round's wall time runs from its ``on_round_start`` to the next round's (the last round's
to ``on_run_end``), and every time is charged to the round in whose wall time it falls:
with the evaluation in the background, round t's ``on_round_end`` hooks (its records) run
after round t+1 is aggregated, inside round t+1. In line, the stages add up to the round
up to the loop's own bookkeeping (building the row, a few microseconds); in the
background they add up to it by construction.

The floor is a bare PyTorch loop training the same clients with the same seeds
(``train_locally``, no Flower, no records), timed in the same process right after.

Workloads: Fashion-MNIST setting 2 (``+experiment=paper_fmnist_s2``: 50 clients, K = 5,
the paper's CNN) and the CIFAR-10 setting-2 workload (K = 10, the CIFAR-10 CNN, Adam,
FedProx) on synthetic 32x32x3 images (50,000 train / 10,000 test, class-dependent
patterns plus noise), so no CIFAR files are needed. One torch thread, the inline engine
with one worker; rounds 2..R are averaged (round 1 warms caches up and addresses nodes),
so ``--rounds`` is at least 2.

    python benchmarks/round_profile.py --rounds 6 --out benchmarks/results/round_profile.md
    python benchmarks/round_profile.py --rounds 6 --eval-in-background --out ...
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

from omegaconf import OmegaConf  # noqa: E402

from fedsim.client.app import make_client_app  # noqa: E402
from fedsim.client.runtime import ClientRuntime  # noqa: E402
from fedsim.client.training import LocalTrainingConfig, train_locally  # noqa: E402
from fedsim.streams import client_training_seed  # noqa: E402
from fedsim.config import compose_config  # noqa: E402
from fedsim.data.datasets import DatasetArrays  # noqa: E402
from fedsim.devices import resolve_device  # noqa: E402
from fedsim.engine.inline import InlineGrid  # noqa: E402
from fedsim.experiment import build_experiment  # noqa: E402
from fedsim.grid_run import evaluation_columns  # noqa: E402
from fedsim.hooks import RoundHook, RoundResult, RunContext  # noqa: E402
from fedsim.results.checkpoint import CheckpointHook  # noqa: E402
from fedsim.results.recorder import RecordsHook, RunRecorder  # noqa: E402
from fedsim.run_folders import run_identity  # noqa: E402
from fedsim.server.evaluation import CentralEvaluator  # noqa: E402
from fedsim.server.loop import run_rounds  # noqa: E402

STAGES = ["selection", "probes", "configure", "training", "aggregation", "evaluation", "records"]
CHECKPOINT_EVERY = 10


class SyntheticImages:
    """CIFAR-10-shaped synthetic data: a fixed random pattern per class plus noise."""

    name = "cifar10"

    def __init__(self, num_train: int = 50_000, num_test: int = 10_000, shape=(3, 32, 32), seed: int = 0) -> None:  # noqa: ANN001
        self.num_train, self.num_test, self.shape, self.seed = num_train, num_test, tuple(shape), seed

    def load(self) -> DatasetArrays:
        rng = np.random.default_rng(self.seed)
        patterns = rng.standard_normal((10, *self.shape), dtype=np.float32)

        def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
            y = (np.arange(n) % 10).astype(np.int64)
            rng.shuffle(y)
            x = rng.standard_normal((n, *self.shape), dtype=np.float32) * 2.0
            x += patterns[y]
            return x, y

        x_tr, y_tr = draw(self.num_train)
        x_te, y_te = draw(self.num_test)
        return DatasetArrays(self.name, x_tr, y_tr, x_te, y_te, num_classes=10)


WORKLOADS = {
    "fmnist_s2": {"overrides": ["+experiment=paper_fmnist_s2"], "dataset": None},
    "cifar10_s2_synthetic": {
        "overrides": ["+experiment=paper_cifar10_s2"],
        "dataset": {"_target_": f"{__name__}.SyntheticImages"},
    },
}


def workload_config(name: str, rounds: int, extra: list[str]) -> Any:
    """The composed config of a workload (its dataset node replaced when synthetic)."""
    spec = WORKLOADS[name]
    cfg = compose_config([*spec["overrides"], f"num_rounds={rounds}", "progress=false", *extra])
    if spec["dataset"] is not None:
        OmegaConf.set_struct(cfg, False)
        cfg.dataset = OmegaConf.create(spec["dataset"])
    return cfg


@dataclass
class Profile:
    """Seconds per stage and round, the rows written, the clients that trained."""

    stages: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    rows: list[dict[str, Any]] = field(default_factory=list)
    selected: list[list[int]] = field(default_factory=list)
    seconds_per_round: list[float] = field(default_factory=list)


class TimedGrid:
    """A grid that times each ``send_and_receive`` call and delegates everything else."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[float, float]] = []  # (start, end) of every send_and_receive, in order

    def send_and_receive(self, messages: Any, *, timeout: float | None = None) -> Any:
        """Forward to the wrapped grid, timed."""
        start = time.perf_counter()
        try:
            return self.inner.send_and_receive(messages, timeout=timeout)
        finally:
            self.calls.append((start, time.perf_counter()))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class StageClock:
    """Two round hooks, ``first`` and ``last`` in the run's hook list, that time the stages.

    Every time is charged to the round whose wall time it falls in (round t's wall runs from
    its ``on_round_start`` to round t+1's, the last round's to ``on_run_end``): with the
    evaluation in the background, round t's ``on_round_end`` hooks run inside round t+1.
    """

    def __init__(self, grid: TimedGrid) -> None:
        self.grid = grid
        self.current = 0  # the round whose wall time it is
        self.wall_start: dict[int, float] = {}  # first hook's on_round_start
        self.loop_start: dict[int, float] = {}  # last hook's on_round_start: the loop starts configuring
        self.first_call: dict[int, int] = {}  # index of the round's first send_and_receive
        self.training: dict[int, tuple[float, float]] = {}  # the round's last send_and_receive
        self.aggregated: dict[int, float] = {}  # first hook's on_round_aggregated
        self.hooks: dict[int, float] = {}  # seconds in the other hooks, by wall round
        self.rows: dict[int, dict[str, Any]] = {}
        self.run_end = 0.0
        self._mark = 0.0
        self.first, self.last = _ClockHook(self, first=True), _ClockHook(self, first=False)

    def _charge(self, seconds: float) -> None:
        self.hooks[self.current] = self.hooks.get(self.current, 0.0) + seconds


class _ClockHook(RoundHook):
    """One of a :class:`StageClock`'s two hooks: ``first`` marks, ``last`` charges the hooks between."""

    def __init__(self, clock: StageClock, first: bool) -> None:
        self.clock, self.is_first = clock, first

    def on_round_start(self, server_round: int) -> None:
        clock, now = self.clock, time.perf_counter()
        if self.is_first:
            clock.current = server_round
            clock.wall_start[server_round] = clock._mark = now
            clock.hooks.setdefault(server_round, 0.0)
        else:
            clock._charge(now - clock._mark)
            clock.loop_start[server_round] = now
            clock.first_call[server_round] = len(clock.grid.calls)

    def on_round_aggregated(self, server_round: int, arrays: Any) -> None:
        clock, now = self.clock, time.perf_counter()
        if self.is_first:
            calls = clock.grid.calls[clock.first_call[server_round]:]
            clock.training[server_round] = calls[-1]  # probes (and round 1's partition query) come before
            clock.aggregated[server_round] = clock._mark = now
        else:
            clock._charge(now - clock._mark)

    def on_round_end(self, result: RoundResult) -> None:
        clock, now = self.clock, time.perf_counter()
        if self.is_first:
            clock._mark = now
        else:
            clock._charge(now - clock._mark)
            clock.rows[result.server_round] = result.row

    def on_run_end(self, summary: dict[str, Any]) -> None:
        if self.is_first:
            self.clock.run_end = time.perf_counter()


def run_profiled(
    cfg: Any,
    device: str = "cpu",
    workers: int = 1,
    run_dir: Path | None = None,
    eval_threads: int | None = None,
    eval_in_background: bool = False,
) -> tuple[Profile, Any]:
    """Run ``cfg`` through fedsim's round loop, each stage timed. Returns (profile, experiment)."""
    torch.set_num_threads(1)
    experiment = build_experiment(cfg)
    runtime = ClientRuntime(
        source=_Loaded(experiment.dataset),
        client_indices=experiment.partitioning.client_indices,
        model_factory=experiment.model_factory,
        dataset=experiment.dataset,
        device=device,
    )
    evaluator = CentralEvaluator(
        experiment.dataset.x_test, experiment.dataset.y_test, experiment.model_factory, device=device,
        threads=eval_threads,
    )
    inner = InlineGrid(make_client_app(runtime), cfg.num_clients, workers=workers)
    grid = TimedGrid(inner)
    clock = StageClock(grid)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(run_dir or tmp)
            records = [
                RecordsHook(RunRecorder(folder)),
                CheckpointHook(folder, CHECKPOINT_EVERY, cfg.num_rounds, experiment.strategy.sampler, run_identity(cfg)),
            ]
            context = RunContext(folder, cfg, 1, cfg.num_rounds, experiment.dataset.num_classes)
            run_rounds(
                grid, experiment.strategy, experiment.initial_arrays, context,
                experiment.train_config.as_message_config(), evaluation_columns(evaluator), eval_every=1,
                hooks=[clock.first, *records, clock.last], eval_in_background=eval_in_background,
            )
    finally:
        inner.close()
        runtime.release()
    return _profile(clock, cfg.num_rounds, eval_in_background), experiment


def _profile(clock: StageClock, num_rounds: int, eval_in_background: bool) -> Profile:
    """Each round's stages out of the clock's marks and the rows (see the module docstring)."""
    profile = Profile()
    for r in range(1, num_rounds + 1):
        row = clock.rows[r]
        wall = (clock.wall_start[r + 1] if r < num_rounds else clock.run_end) - clock.wall_start[r]
        train_start, train_end = clock.training[r]
        stage = {
            "selection": row["selection_seconds"],
            "probes": row["probe_seconds"],
            "configure": train_start - clock.loop_start[r] - row["selection_seconds"] - row["probe_seconds"],
            "training": train_end - train_start,
            "aggregation": clock.aggregated[r] - train_end,
            "records": clock.hooks[r],
        }
        if eval_in_background:  # what the loop lost to it: the wall time no other stage accounts for
            stage["evaluation"] = max(wall - sum(stage.values()), 0.0)
        else:
            stage["evaluation"] = row["eval_seconds"]
        for name in STAGES:
            profile.stages[name].append(stage[name])
        profile.seconds_per_round.append(wall)
        profile.rows.append(row)
        profile.selected.append(list(row["selected"]))
    return profile


class _Loaded:
    """A dataset source that hands back arrays already in memory."""

    def __init__(self, dataset: DatasetArrays) -> None:
        self.dataset = dataset

    def load(self) -> DatasetArrays:
        return self.dataset


def plain_floor(experiment: Any, selected: list[list[int]], device: str = "cpu") -> list[float]:
    """Seconds per round of a bare PyTorch loop training the same clients with the same seeds."""
    torch.set_num_threads(1)
    dev = resolve_device(device)
    data = experiment.dataset
    config = LocalTrainingConfig.from_mapping(experiment.train_config.as_message_config())
    config.proximal_mu = float(experiment.cfg.algorithm.proximal_mu)
    model = experiment.model_factory().to(dev)
    global_state = {k: v.to(dev) for k, v in experiment.initial_arrays.to_torch_state_dict().items()}
    tensors = {}
    for clients in selected:
        for pid in clients:
            if pid not in tensors:
                idx = experiment.partitioning.client_indices[pid]
                tensors[pid] = (torch.from_numpy(data.x_train[idx]).to(dev), torch.from_numpy(data.y_train[idx]).to(dev))
    seconds = []
    for server_round, clients in enumerate(selected, start=1):
        start = time.perf_counter()
        states = []
        for pid in clients:
            model.load_state_dict(global_state)
            seed = client_training_seed(int(experiment.cfg.seed), server_round, pid)
            torch.manual_seed(seed)
            train_locally(model, *tensors[pid], config, seed)
            states.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        if dev.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
        global_state = {k: torch.stack([s[k] for s in states]).float().mean(0).to(global_state[k].dtype) for k in global_state}
    return seconds


def table(name: str, profile: Profile, floor: list[float]) -> list[str]:
    """Markdown lines: each stage's seconds and share of the round, and the floor."""
    keep = slice(1, None)  # rounds 2..R
    total = float(np.mean(profile.seconds_per_round[keep]))
    floor_s = float(np.mean(floor[keep]))
    lines = [
        f"### {name}: {total:.3f} s/round (rounds 2..{len(profile.seconds_per_round)})",
        "",
        "| stage | s/round | share of round |",
        "|---|---|---|",
    ]
    for stage in STAGES:
        value = float(np.mean(profile.stages[stage][keep]))
        lines.append(f"| {stage} | {value:.4f} | {value / total:.1%} |")
    lines.append(f"| **plain-PyTorch training floor** (same clients, same seeds) | {floor_s:.4f} | {floor_s / total:.1%} |")
    training = float(np.mean(profile.stages["training"][keep]))
    lines += [
        "",
        f"- round / floor: **{total / floor_s:.3f}x**; training round trip / floor: {training / floor_s:.3f}x",
        f"- time outside local training (round - floor) as share of the round: **{(total - floor_s) / total:.1%}**",
        f"- final accuracy after {len(profile.rows)} rounds: {profile.rows[-1]['accuracy']:.4f}",
        "",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--sampler", default="random")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--eval-threads", type=int, default=None, help="torch threads of central evaluation")
    parser.add_argument("--eval-in-background", "--overlap-eval", dest="eval_in_background", action="store_true",
                        help="run the loop with eval_in_background=True: evaluate round t while round t+1 trains")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/round_profile.md"))
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error("--rounds must be at least 2 (round 1 is left out of the means)")
    where = ", in the background while the next round trains" if args.eval_in_background else ""
    lines = [
        f"Produced by: `python benchmarks/round_profile.py {' '.join(sys.argv[1:])}`",
        "",
        "One torch thread, inline engine (1 worker), device "
        f"{args.device}, sampler {args.sampler}, central evaluation every round "
        f"({args.eval_threads or 1} torch thread(s) while evaluating{where}). Shares are of the "
        "mean round (rounds 2..R); the floor is a bare PyTorch loop training the same clients "
        "with the same seeds, measured in the same run right after fedsim's rounds.",
        f"Load average at start: {os.getloadavg()[0]:.2f} (shared machine; 2 cores).",
        "",
    ]
    for name in args.workloads:
        cfg = workload_config(name, args.rounds, [f"sampler={args.sampler}"])
        profile, experiment = run_profiled(
            cfg, device=args.device, eval_threads=args.eval_threads, eval_in_background=args.eval_in_background
        )
        floor = plain_floor(experiment, profile.selected, device=args.device)
        block = table(name, profile, floor)
        print("\n".join(block), flush=True)
        lines += block
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
