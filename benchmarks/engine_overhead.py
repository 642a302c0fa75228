"""Engine overhead against a pure-PyTorch ceiling, measured as ratios in one run.

One workload — Fashion-MNIST, the paper's CNN, 50 clients (paper setting 2 partition),
2 local epochs, batch 64, K = 5 and K = 10 — timed per round in:
  (a) a plain PyTorch loop doing exactly the same local training (same clients, same
      seeds, fedsim's own ``train_locally``) and a plain mean, no framework: the ceiling;
  (b) fedsim's in-process engine, sequential (1 worker) and with 2 worker processes;
  (c) fedsim on Flower's Ray engine (one actor per core).
With ``--probes``, it times instead DivFL's (ideal) probe round trips (every available
client sends a full-batch gradient) per round with 1 and 2 inline workers, from the
``probe_seconds`` column of the runs' records (``benchmarks/results/probe_parallel.md``).
Start-up (process-internal: building the experiment to the first round starting) is
reported too. A second table splits each engine's CPU seconds per round by process kind
(this driver process; client processes: inline workers or Ray's ``ray::`` actors; Ray's own
processes: GCS, raylet, agents), read from ``/proc`` at every round end: on a machine with as
many cores as client processes, CPU that Ray's own processes and the driver take is time the
clients wait for a core. Central evaluation runs only after the last round, which is left out of
the per-round times, so they time training and engine work alone (rounds 2..R-1).

    python benchmarks/engine_overhead.py --rounds 6 --out benchmarks/results/engine_overhead.md
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

from fedsim.config import compose_config as make_config  # noqa: E402
from fedsim.client.training import LocalTrainingConfig, train_locally  # noqa: E402
from fedsim.streams import client_training_seed  # noqa: E402
from fedsim.experiment import build_experiment, run_experiment  # noqa: E402
from fedsim.hooks import RoundHook  # noqa: E402


def overrides(k: int, rounds: int, engine: list[str]) -> list[str]:
    """The common workload, with K clients per round, on one engine."""
    return [
        "+experiment=paper_fmnist_s2", f"clients_per_round={k}", f"num_rounds={rounds}",
        f"eval_every={rounds}", "checkpoint_every=0", "progress=false", "sampler=random", *engine,
    ]


CPU_KINDS = ("driver", "clients", "ray system")


def cpu_by_kind() -> dict[str, float]:
    """CPU seconds (user + system) used so far by this process and its descendants, by kind."""
    ticks = os.sysconf("SC_CLK_TCK")
    table: dict[int, tuple[int, float, bytes]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        table[int(stat.parent.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks, command)
    root = os.getpid()

    def descends(pid: int) -> bool:
        seen = 0
        while pid in table and seen < 64:
            pid, seen = table[pid][0], seen + 1
            if pid == root:
                return True
        return False

    kinds = dict.fromkeys(CPU_KINDS, 0.0)
    for pid, (_, cpu, command) in table.items():
        if pid == root:
            kinds["driver"] += cpu
        elif descends(pid):
            ray_own = b"ray" in command and not command.startswith(b"ray::")
            kinds["ray system" if ray_own else "clients"] += cpu
    return kinds


def time_fedsim(k: int, rounds: int, engine: list[str]) -> dict:
    """Per-round seconds (rounds 2..R-1: the first warms caches up, the last evaluates), start-up,
    and CPU seconds per round by process kind over the same rounds."""
    started = time.perf_counter()
    experiment = build_experiment(make_config(overrides(k, rounds, engine)))
    stamps: list[float] = []
    cpu: list[dict[str, float]] = []
    first_round_start: list[float] = []

    class RoundClock(RoundHook):
        def on_round_end(self, result) -> None:  # noqa: ANN001
            stamps.append(time.perf_counter())
            cpu.append(cpu_by_kind())

    original = experiment.strategy.configure_train

    def mark(*args, **kwargs):  # noqa: ANN002, ANN003
        if not first_round_start:
            first_round_start.append(time.perf_counter())
        return original(*args, **kwargs)

    experiment.strategy.configure_train = mark
    with tempfile.TemporaryDirectory() as run_dir:
        run_experiment(experiment, Path(run_dir) / "run", hooks=[RoundClock()])
        selected = [row["selected"] for row in _rows(Path(run_dir) / "run")]
    per_round = np.diff(stamps[:-1])  # the last round also evaluates the model: left out
    spans = len(stamps) - 2
    cpu_per_round = {kind: (cpu[-2][kind] - cpu[0][kind]) / spans for kind in CPU_KINDS}
    return {"per_round": float(np.mean(per_round)), "startup": first_round_start[0] - started, "selected": selected,
            "cpu": cpu_per_round}


def _rows(run_dir: Path) -> list[dict]:
    from fedsim.results.recorder import read_jsonl

    return read_jsonl(run_dir / "metrics.jsonl")


def time_plain_loop(k: int, rounds: int, selected: list[list[int]]) -> dict:
    """The ceiling: the same clients and seeds, plain torch, no Flower, no records."""
    experiment = build_experiment(make_config(overrides(k, rounds, [])))
    torch.set_num_threads(1)
    data = experiment.dataset
    config = LocalTrainingConfig.from_mapping(experiment.train_config.as_message_config())
    tensors = {}
    for pid, idx in enumerate(experiment.partitioning.client_indices):
        tensors[pid] = (torch.from_numpy(data.x_train[idx]), torch.from_numpy(data.y_train[idx]))
    model = experiment.model_factory()
    global_state = experiment.initial_arrays.to_torch_state_dict()
    stamps = []
    for server_round, clients in enumerate(selected, start=1):
        states = []
        for pid in clients:
            model.load_state_dict(global_state)
            seed = client_training_seed(experiment.cfg.seed, server_round, pid)
            torch.manual_seed(seed)
            train_locally(model, *tensors[pid], config, seed)
            states.append({key: value.detach().clone() for key, value in model.state_dict().items()})
        global_state = {key: torch.stack([s[key] for s in states]).mean(0) for key in global_state}
        stamps.append(time.perf_counter())
    return {"per_round": float(np.mean(np.diff(stamps[:-1])))}


def probe_seconds(rounds: int, workers: int, sampler: str = "divfl") -> list[float]:
    """``probe_seconds`` of rounds 1..R of a probing sampler on the inline engine."""
    items = overrides(5, rounds, ["engine=inline", f"engine.workers={workers}"])
    config = make_config([f"sampler={sampler}" if item == "sampler=random" else item for item in items])
    with tempfile.TemporaryDirectory() as run_dir:
        run_experiment(build_experiment(config), Path(run_dir) / "run")
        rows = _rows(Path(run_dir) / "run")
    return [row["probe_seconds"] for row in rows]


def main_probes(args: argparse.Namespace) -> None:
    """Probe seconds per round, 1 vs 2 workers (rounds 2..R: round 1 forks the workers)."""
    torch.set_num_threads(1)
    one = probe_seconds(args.rounds, 1)
    two = probe_seconds(args.rounds, 2)
    mean_one, mean_two = float(np.mean(one[1:])), float(np.mean(two[1:]))
    lines = [
        "| sampler | probe s/round, 1 worker | probe s/round, 2 workers | ratio |",
        "|---|---|---|---|",
        f"| divfl (ideal: 50 full-batch gradients) | {mean_one:.3f} | {mean_two:.3f} | {mean_two / mean_one:.3f}x |",
    ]
    print("\n".join(lines))
    command = "python benchmarks/engine_overhead.py " + " ".join(sys.argv[1:])
    note = (
        f"FMNIST setting 2, {args.rounds} rounds, rounds 2..R averaged; per-round values 1 worker {one}, "
        f"2 workers {two}. Load average at the end: {os.getloadavg()[0]:.2f} (2 shared cores)."
    )
    out = args.out if args.out != DEFAULT_OUT else Path("benchmarks/results/probe_parallel.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"Produced by: `{command}`\n\n{note}\n\n" + "\n".join(lines) + "\n")


DEFAULT_OUT = Path("benchmarks/results/engine_overhead.md")


def main() -> None:
    """Measure every engine for K = 5 and 10; print and save the ratios."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--ks", nargs="+", type=int, default=[5, 10])
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--probes", action="store_true", help="time DivFL probes with 1 and 2 workers instead")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    if args.probes:
        main_probes(args)
        return
    lines = [
        "| K | plain loop s/round | inline (1 worker) | inline (2 workers) | Ray (2 actors) | Ray vs inline 2 workers | start-up inline / Ray (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    cpu_lines = ["| K | engine | s/round | driver CPU s/round | client processes CPU s/round | "
                 "Ray's own processes CPU s/round |", "|---|---|---|---|---|---|"]
    for k in args.ks:
        inline = time_fedsim(k, args.rounds, ["engine=inline"])
        plain = time_plain_loop(k, args.rounds, inline["selected"])
        parallel = time_fedsim(k, args.rounds, ["engine=inline", "engine.workers=2"])
        ray = None if args.skip_ray else time_fedsim(k, args.rounds, ["engine=ray"])
        base = plain["per_round"]

        def ratio(result: dict | None) -> str:
            return "-" if result is None else f"{result['per_round']:.2f} s ({result['per_round'] / base:.2f}x)"

        ray_start = "-" if ray is None else f"{ray['startup']:.1f}"
        ray_vs_parallel = "-" if ray is None else f"{ray['per_round'] / parallel['per_round'] - 1:+.0%}"
        lines.append(
            f"| {k} | {base:.2f} s (1.00x) | {ratio(inline)} | {ratio(parallel)} | {ratio(ray)} | "
            f"{ray_vs_parallel} | {inline['startup']:.1f} / {ray_start} |"
        )
        print(lines[-1], flush=True)
        for name, result in (("inline, 1 worker", inline), ("inline, 2 workers", parallel), ("Ray, 2 actors", ray)):
            if result is not None:
                c = result["cpu"]
                cpu_lines.append(f"| {k} | {name} | {result['per_round']:.2f} | {c['driver']:.2f} | {c['clients']:.2f} | "
                                 f"{c['ray system']:.2f} |")
    command = "python benchmarks/engine_overhead.py " + " ".join(sys.argv[1:])
    note = (
        "Ratios are per-round wall time relative to the plain loop in the same run (rounds 2..R). "
        "The plain loop and inline engines use one torch thread per process."
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cpu_note = ("CPU seconds per round by process kind (rounds 2..R-1, from /proc): the driver runs the server "
                "(and, with one inline worker, the training itself); client processes are inline workers or Ray "
                "actors; Ray's own processes are the GCS, raylet and agents. Load average at the end: "
                f"{os.getloadavg()[0]:.2f} ({os.cpu_count()} cores).")
    args.out.write_text(f"Produced by: `{command}`\n\n{note}\n\n" + "\n".join(lines) + f"\n\n{cpu_note}\n\n"
                        + "\n".join(cpu_lines) + "\n")
    print("\n".join(cpu_lines))


if __name__ == "__main__":
    main()
